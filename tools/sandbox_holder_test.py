"""tools/bazel's sandbox holder (tools/sandbox_holder.sh, the code tools/bazel sources)
never trusts a stale pid file: after the holder is killed (as .ci/run does), and when the
file names a live process that is not this workspace's holder (a `sleep` under another
name, another workspace's holder), a new holder is started and entered, and the process
the file named is left alone. The launcher is empty here where tools/bazel gives bwrap:
the holder is the same `bash -c 'echo $$ >FILE; exec -a NAME sleep infinity'`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from pathlib import Path

import pytest

from infra.components.wait import wait_until

SCRIPT = Path(__file__).with_name("sandbox_holder.sh")


def sh(script: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `script` in bash with tools/sandbox_holder.sh sourced; args are $1, $2 ..."""
    return subprocess.run(
        ["bash", "-c", f'set -euo pipefail; source "{SCRIPT}"; {script}', "bash", *args],
        capture_output=True,
        text=True,
        check=check,
        timeout=60,
    )


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except FileNotFoundError:
        return ""


def gone(pid: int) -> bool:
    """Dead, or a zombie waiting for whoever inherited it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0] in "ZX"
    except FileNotFoundError:
        return True


def until(condition, what: str, timeout: float = 10.0) -> None:
    wait_until(condition, timeout, what, interval=0.02)


class Holders:
    """One workspace's holder: its pid file and name, as tools/bazel derives them."""

    def __init__(self, cache: Path, workspace: str, started: list[int]) -> None:
        tag = uuid.uuid4().hex[:12]  # the recipe hash's place: unique to this test run
        self.pidfile = cache / f"sandbox-{tag}-{workspace}.pid"
        self.name = f"fraud-bazel-sandbox-{tag}-{workspace}"
        self.started = started

    def pid(self) -> int | None:
        """sandbox_holder_pid: the trusted pid, or None when it refuses the file."""
        result = sh('sandbox_holder_pid "$1" "$2"', str(self.pidfile), self.name, check=False)
        return int(result.stdout) if result.returncode == 0 else None

    def start(self) -> int:
        """sandbox_holder_start with no launcher; the holder runs in this sandbox."""
        pid = int(sh('sandbox_holder_start "$1" "$2"', str(self.pidfile), self.name).stdout)
        self.started.append(pid)
        return pid

    def enter(self, pid: int) -> str:
        """sandbox_holder_enter, as tools/bazel runs Bazel in the sandbox."""
        script = 'sandbox_holder_enter "$1" / /usr/bin/bash -c \'echo "entered $PWD"\''
        return sh(script, str(pid)).stdout.strip()

    def refuses_then_replaces(self, stale: int) -> int:
        """The pid file names `stale`: refused, then a new holder is started and entered."""
        self.pidfile.write_text(f"{stale}\n")
        assert self.pid() is None, f"pid {stale} ({cmdline(stale)!r}) was trusted"
        new = self.start()
        assert new != stale
        assert cmdline(new) == f"{self.name} infinity "
        assert self.pidfile.read_text().strip() == str(new)
        assert self.pid() == new
        assert self.enter(new) == "entered /"
        return new


@pytest.fixture
def started():
    pids: list[int] = []
    yield pids
    for pid in pids:
        if cmdline(pid).startswith("fraud-bazel-sandbox-"):  # ours, still running
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def holders(tmp_path, started):
    return Holders(tmp_path, "ws1111111111", started)


def test_a_holder_is_started_once_and_reused(holders):
    assert holders.pid() is None  # no pid file yet
    first = holders.start()
    assert cmdline(first) == f"{holders.name} infinity "
    assert holders.start() == first
    assert holders.enter(first) == "entered /"


def test_a_killed_holder_is_replaced(holders):
    first = holders.start()
    # What .ci/run does: kill "$(cat "$holder")".
    subprocess.run(["bash", "-c", f'kill "$(cat "{holders.pidfile}")"'], check=True)
    until(lambda: gone(first), "the holder dies")
    assert holders.pid() is None
    second = holders.refuses_then_replaces(first)
    assert second != first


def test_an_unrelated_live_process_in_the_pid_file_is_refused_and_left_alone(holders, started):
    holders.start()
    unrelated = subprocess.Popen(
        ["bash", "-c", "exec -a some-other-sleep sleep infinity"], start_new_session=True
    )
    try:
        until(lambda: cmdline(unrelated.pid).startswith("some-other-sleep"), "the sleep runs")
        holders.refuses_then_replaces(unrelated.pid)
        assert unrelated.poll() is None, "the unrelated process was killed"
    finally:
        unrelated.kill()
        unrelated.wait()


def test_another_workspaces_holder_is_refused_and_left_alone(holders, tmp_path, started):
    other = Holders(tmp_path, "ws2222222222", started)
    theirs = other.start()
    ours = holders.refuses_then_replaces(theirs)
    assert other.pid() == theirs and not gone(theirs), "the other workspace lost its holder"
    assert ours != theirs


@pytest.mark.parametrize("content", ["", "not-a-pid\n", "-1\n", "999999999\n"])
def test_a_garbled_or_dead_pid_file_is_refused(holders, content):
    holders.pidfile.write_text(content)
    assert holders.pid() is None
    new = holders.start()
    assert holders.pid() == new


def test_concurrent_calls_start_one_holder(holders):
    argv = ["bash", "-c", f'source "{SCRIPT}"; sandbox_holder_start "$1" "$2"', "bash"]
    argv += [str(holders.pidfile), holders.name]
    calls = [subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) for _ in range(4)]
    pids = {int(call.communicate(timeout=60)[0]) for call in calls}
    holders.started.extend(pids)
    assert len(pids) == 1, pids
    running = [p for p in Path("/proc").iterdir() if p.name.isdigit()]
    named = [p for p in running if cmdline(int(p.name)).startswith(holders.name)]
    assert len(named) == 1, named


def test_stop_kills_only_a_verified_holder(holders):
    holder = holders.start()
    unrelated = subprocess.Popen(["sleep", "infinity"])
    try:
        holders.pidfile.write_text(f"{unrelated.pid}\n")
        sh('sandbox_holder_stop "$1" "$2"', str(holders.pidfile), holders.name)
        assert unrelated.poll() is None, "stop killed a process that is not the holder"
        holders.pidfile.write_text(f"{holder}\n")
        sh('sandbox_holder_stop "$1" "$2"', str(holders.pidfile), holders.name)
        until(lambda: gone(holder), "the holder stops")
    finally:
        unrelated.kill()
        unrelated.wait()
