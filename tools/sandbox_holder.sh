# tools/sandbox_holder.sh: the long-lived sandbox "holder" of tools/bazel (sourced, not run).
#
# Why: as root, every tools/bazel call enters one long-lived sandbox per recipe and
# workspace (podman's network namespace mounts must outlive a single call), held by a
# `sleep` whose pid is kept in a file. That file outlives the process (a reboot, .ci/run
# killing it), and the kernel reuses pids, so a pid is trusted only if its process is
# still called by the holder's name, which carries the recipe and workspace hashes. These
# functions are the whole of that logic, so //tools:sandbox_holder_test runs the real code
# with a plain launcher where tools/bazel uses bwrap.

# sandbox_holder_pid PIDFILE NAME
#   Prints the pid in PIDFILE if that process is alive and named NAME; fails otherwise (no
#   file, not a number, a dead or zombie process, a pid now another process's, even
#   another workspace's holder).
sandbox_holder_pid() {
  local pidfile=$1 name=$2 pid
  pid="$(cat "$pidfile" 2>/dev/null)" || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -q "^$name " || return 1
  echo "$pid"
}

# sandbox_holder_start PIDFILE NAME [LAUNCHER...]
#   Prints the pid of the live holder, starting one first if there is none (under a lock,
#   so concurrent calls start one): in a new session, in the background,
#     LAUNCHER... /usr/bin/bash -c 'echo $$ >PIDFILE; exec -a NAME /usr/bin/sleep infinity'
#   tools/bazel's LAUNCHER is `bwrap BIND_ARGS...`; with none, the holder runs here.
#   Fails if the holder has not written its pid within 5 s.
sandbox_holder_start() {
  local pidfile=$1 name=$2 pid
  shift 2
  if pid="$(sandbox_holder_pid "$pidfile" "$name")"; then
    echo "$pid"
    return 0
  fi
  (
    flock 8
    if ! pid="$(sandbox_holder_pid "$pidfile" "$name")"; then
      rm -f "$pidfile"
      # 8>&-: the holder must not keep the lock for as long as it lives.
      setsid "$@" /usr/bin/bash -c \
        "echo \$\$ >'$pidfile'; exec -a $name /usr/bin/sleep infinity" \
        </dev/null >/dev/null 2>&1 8>&- &
      for _ in $(seq 100); do
        pid="$(sandbox_holder_pid "$pidfile" "$name")" && break
        sleep 0.05
      done
      [[ -n "${pid:-}" ]] || exit 1
    fi
    echo "$pid"
  ) 8>"$pidfile.lock"
}

# sandbox_holder_stop PIDFILE NAME
#   Stops the holder if PIDFILE still names it (never a process that merely got its pid).
sandbox_holder_stop() {
  local pid
  if pid="$(sandbox_holder_pid "$1" "$2")"; then
    kill "$pid" 2>/dev/null || true
  fi
}

# sandbox_holder_enter PID DIR COMMAND...
#   Runs COMMAND in the holder's mount namespace and root, in DIR (replaces this shell).
sandbox_holder_enter() {
  local pid=$1 dir=$2
  shift 2
  exec nsenter --target "$pid" --mount --root --wdns="$dir" -- "$@"
}
