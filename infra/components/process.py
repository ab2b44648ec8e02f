"""A child process we start, wait for, stop and supervise: the common part of every component.

Why: Kafka, PostgreSQL and Prometheus each need the same care: a log file to read when
they fail, a readiness check polled against a deadline (never a fixed sleep), a clear
error naming the component and the tail of its log, and a clean or brutal stop. A stack
of them (the local stack) also needs what an orchestrator gives: a child that crashes is
started again after a growing delay, and one that keeps crashing stops the stack with the
reason, instead of one failure taking everything down or a loop restarting forever.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from infra.components.wait import WaitTimeout, wait_until
from libs.runfiles.runfiles import ComponentError


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def ensure_port_free(port: int, what: str, host: str = "127.0.0.1") -> None:
    """Fail early and clearly when a fixed port is already taken."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as err:
            raise ComponentError(
                f"{what}: port {host}:{port} is already in use ({err.strerror}); "
                "stop whatever listens there or choose another port"
            ) from None


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def log_tail(path: Path, lines: int = 40) -> str:
    if path.exists() and not path.is_file():  # /dev/stdout in a container: already shown
        return f"(see {path})"
    try:
        text = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return "(no log written)"
    return "\n".join(text[-lines:])


@dataclass
class ManagedProcess:
    """One long-running child process with its output in `log_path`."""

    name: str
    args: Sequence[str]
    log_path: Path
    env: dict[str, str] | None = None
    cwd: Path | None = None
    preexec_fn: Callable[[], None] | None = None
    stop_signal: signal.Signals = signal.SIGTERM  # what `stop` and `terminate` send first
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            try:
                self.popen = subprocess.Popen(
                    list(self.args),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=self.env,
                    cwd=self.cwd,
                    start_new_session=True,  # our signals reach its whole process group
                    preexec_fn=self.preexec_fn,
                )
            except FileNotFoundError as err:
                raise ComponentError(f"{self.name}: cannot run {self.args[0]!r}: {err}") from None

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def wait_until(self, ready: Callable[[], bool], timeout: float, what: str) -> float:
        """Poll `ready` until it holds; returns seconds taken. Fails fast if the process
        dies; an exception from `ready` counts as "not yet" (the server is still starting)."""
        if self.popen is None:
            raise ComponentError(f"{self.name}: wait_until before start()")
        popen = self.popen

        def probe() -> bool:
            if popen.poll() is not None:
                raise ComponentError(
                    f"{self.name} exited with code {popen.returncode} before {what}; "
                    f"log {self.log_path}:\n{log_tail(self.log_path)}"
                )
            try:
                return bool(ready())
            except Exception:
                return False

        started = time.monotonic()
        try:
            wait_until(probe, timeout, what, interval=0.1)
        except WaitTimeout:
            raise ComponentError(
                f"{self.name}: not {what} after {timeout:.0f} s; "
                f"log {self.log_path}:\n{log_tail(self.log_path)}"
            ) from None
        return time.monotonic() - started

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM to the process itself (as an orchestrator would; it stops its own
        children, e.g. the detector its Spark JVM), then SIGKILL to the whole group if it
        has not exited by `timeout`."""
        if not self.running:
            return
        assert self.popen is not None
        self.terminate()
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def terminate(self) -> None:
        """`stop_signal` (SIGTERM unless set) to the main process only."""
        if self.popen is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.popen.pid, self.stop_signal)

    def kill(self, group_timeout: float = 10.0) -> None:
        """SIGKILL the whole process group, as a crash would, and wait (up to
        `group_timeout`) until no member is left: a restart must not meet the old one's
        children (PostgreSQL's backends holding its shared memory, a Spark JVM)."""
        if self.popen is None:
            return
        self._signal(signal.SIGKILL)
        self.popen.wait()
        deadline = time.monotonic() + group_timeout
        while time.monotonic() < deadline:
            try:
                os.killpg(self.popen.pid, 0)  # members (or their zombies) are left
            except (ProcessLookupError, PermissionError):
                return
            self._signal(signal.SIGKILL)
            time.sleep(0.05)

    def _signal(self, sig: signal.Signals) -> None:
        assert self.popen is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)


# --- supervision -------------------------------------------------------------------------


@dataclass(frozen=True)
class RestartPolicy:
    """When a crashed child is started again, and when we give up on it.

    The delay before a restart is `delay`, doubled for each further crash in a row, at
    most `max_delay`; a child that stayed up `reset_after` seconds starts the series over.
    A child that would need more than `max_restarts` restarts within `window` seconds is
    crash-looping: the supervisor gives up (0 restarts: give up at the first crash).
    """

    delay: float = 1.0
    max_delay: float = 30.0
    reset_after: float = 60.0
    max_restarts: int = 5
    window: float = 300.0

    def __post_init__(self) -> None:
        if not 0 < self.delay <= self.max_delay:
            raise ValueError(f"restart delay {self.delay} must be > 0 and <= {self.max_delay}")
        if self.max_restarts < 0 or self.window <= 0 or self.reset_after <= 0:
            raise ValueError(f"restart limits must be positive: {self}")


@dataclass(frozen=True)
class Verdict:
    """What to do about one crash: restart after `delay` s, or give up because `reason`."""

    restart: bool
    delay: float = 0.0
    streak: int = 0  # crashes in a row without `reset_after` s of uptime, this one included
    reason: str = ""


def after_crash(
    policy: RestartPolicy, restarts: Sequence[float], streak: int, uptime: float, now: float
) -> Verdict:
    """The policy as a pure function. `restarts`: times (on `now`'s clock) of this child's
    earlier restarts; `streak`: the previous verdict's; `uptime`: how long it last ran."""
    recent = sum(1 for t in restarts if now - t < policy.window)
    if recent >= policy.max_restarts:
        if policy.max_restarts == 0:
            return Verdict(False, reason="restarts are disabled")
        return Verdict(
            False,
            reason=f"crash loop: {recent} restarts within {policy.window:.0f} s "
            f"(limit {policy.max_restarts})",
        )
    streak = 1 if uptime >= policy.reset_after else streak + 1
    delay = min(policy.max_delay, policy.delay * 2.0 ** min(streak - 1, 64))
    return Verdict(True, delay, streak)


def exit_description(code: int | None) -> str:
    """'exit code 3', 'killed by SIGKILL' (Popen's negative codes are signals)."""
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


@dataclass
class Supervised:
    """One child the supervisor watches: `current()` is its process now (None before the
    first start), `restart()` starts it again (raising ComponentError if it cannot).
    `restart_clean_exit`: False for a child whose exit code 0 means its work is done."""

    name: str
    current: Callable[[], ManagedProcess | None]
    restart: Callable[[], object]
    restart_clean_exit: bool = True


@dataclass
class _Watch:
    unit: Supervised
    started: float
    restarts: list[float] = field(default_factory=list)
    streak: int = 0
    due: float | None = None  # a restart is scheduled for then


class Supervisor:
    """A thread that restarts crashed children by a RestartPolicy and counts it.

    Every restart and every give-up goes to `log`; after a give-up `failure` holds the
    message (child, reason, last exit, tail of its log) and `on_failure` is called once.
    A child stopped on purpose must be `release`d first, or it would be restarted.
    """

    def __init__(
        self,
        policy: RestartPolicy,
        log: Callable[[str], None],
        on_failure: Callable[[str], None] | None = None,
        interval: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy
        self.log = log
        self.on_failure = on_failure
        self.interval = interval
        self.clock = clock
        self.failure: str | None = None
        self._watches: dict[str, _Watch] = {}
        self._counts: dict[str, int] = {}
        self._lock = threading.RLock()  # a restart may call back into watch()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(self, unit: Supervised) -> None:
        """Supervise `unit` from now on (its process is running or about to be)."""
        with self._lock:
            if unit.name in self._watches:
                return
            self._watches[unit.name] = _Watch(unit, self.clock())
            self._counts.setdefault(unit.name, 0)

    def release(self, name: str) -> None:
        """Stop supervising `name` (before stopping it on purpose); waits for a restart
        of it that is under way."""
        with self._lock:
            self._watches.pop(name, None)

    @property
    def restarts(self) -> dict[str, int]:
        """Restarts so far per child ever watched (0 included)."""
        with self._lock:
            return dict(self._counts)

    def start(self) -> Supervisor:
        self._thread = threading.Thread(target=self._run, name="supervisor", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.check()

    def check(self) -> None:
        """One round: notice crashes, start what is due. (The thread calls it; tests may.)"""
        with self._lock:
            for name in list(self._watches):
                if self._stop.is_set() or self.failure is not None:
                    return
                watch = self._watches.get(name)
                if watch is not None:
                    self._check_one(watch)

    def _check_one(self, watch: _Watch) -> None:
        unit, now = watch.unit, self.clock()
        if watch.due is not None:
            if now >= watch.due:
                self._restart(watch)
            return
        proc = unit.current()
        if proc is None or proc.running:
            return
        code = proc.popen.returncode if proc.popen else None
        if code == 0 and not unit.restart_clean_exit:
            self.log(f"{unit.name} finished (exit code 0)")
            del self._watches[unit.name]
            return
        self._crashed(watch, exit_description(code), now - watch.started, proc.log_path)

    def _crashed(self, watch: _Watch, how: str, uptime: float, log_path: Path | None) -> None:
        name, now = watch.unit.name, self.clock()
        verdict = after_crash(self.policy, watch.restarts, watch.streak, uptime, now)
        if not verdict.restart:
            tail = log_tail(log_path, 20) if log_path else "(no log)"
            self.failure = (
                f"{name} keeps crashing, giving up ({verdict.reason}); it last {how} "
                f"after {uptime:.1f} s; log {log_path}:\n{tail}"
            )
            del self._watches[name]
            self.log(f"{name} {how} after {uptime:.1f} s up; giving up: {verdict.reason}")
            if self.on_failure is not None:
                self.on_failure(self.failure)
            return
        watch.streak, watch.due = verdict.streak, now + verdict.delay
        self.log(
            f"{name} {how} after {uptime:.1f} s up; restarting in {verdict.delay:.1f} s "
            f"(restart {self._counts[name] + 1})"
        )

    def _restart(self, watch: _Watch) -> None:
        unit = watch.unit
        old = unit.current()
        if old is not None:
            old.kill()  # whatever the crashed process left in its group (a Spark JVM)
        watch.due, watch.started = None, self.clock()
        watch.restarts.append(watch.started)
        self._counts[unit.name] += 1
        try:
            unit.restart()
        except Exception as err:  # any failure to start counts as one more crash
            self.log(f"{unit.name} did not start again: {err}")
            failed = unit.current()
            log_path = failed.log_path if failed is not None else None
            self._crashed(watch, "failed to start", self.clock() - watch.started, log_path)
            return
        new = unit.current()
        pid = new.popen.pid if new is not None and new.popen is not None else "?"
        self.log(f"{unit.name} restarted (pid {pid}, restart {self._counts[unit.name]})")
