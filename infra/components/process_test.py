"""Clear errors when a component cannot start (port taken, process dies, Java missing), and
the supervision of crashed children: the restart policy as a pure function, then real ones."""

from __future__ import annotations

import os
import re
import signal
import socket
import sys
import time
from pathlib import Path

import pytest

from infra.components.kafka import KafkaBroker
from infra.components.process import (
    ComponentError,
    ManagedProcess,
    RestartPolicy,
    Supervised,
    Supervisor,
    after_crash,
    ensure_port_free,
    exit_description,
    free_port,
    port_open,
)
from infra.components.wait import wait_until
from libs.runfiles.runfiles import java_home


@pytest.fixture
def listening_port():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield sock.getsockname()[1]
    sock.close()


def test_free_port_is_bindable():
    port = free_port()
    ensure_port_free(port, "test")  # does not raise
    assert not port_open(port)


def test_taken_port_is_named_in_the_error(listening_port):
    with pytest.raises(ComponentError, match=rf"Kafka: port 127.0.0.1:{listening_port} is already"):
        KafkaBroker(data_dir=Path("/nonexistent"), port=listening_port).start()


def test_process_that_dies_reports_exit_code_and_log(tmp_path):
    proc = ManagedProcess(
        "dying",
        [sys.executable, "-c", "import sys; print('boom: bad config'); sys.exit(3)"],
        tmp_path / "dying.log",
    )
    proc.start()
    with pytest.raises(ComponentError, match=r"(?s)dying exited with code 3.*boom: bad config"):
        proc.wait_until(lambda: False, timeout=30, what="ready")


def test_readiness_deadline_is_reported(tmp_path):
    proc = ManagedProcess(
        "sleeper", [sys.executable, "-c", "import time; time.sleep(60)"], tmp_path / "s.log"
    )
    proc.start()
    started = time.monotonic()
    with pytest.raises(ComponentError, match=r"sleeper: not ready after 1 s"):
        proc.wait_until(lambda: False, timeout=1, what="ready")
    assert time.monotonic() - started < 10
    proc.stop(timeout=5)
    assert not proc.running


def test_missing_command_is_a_component_error(tmp_path):
    with pytest.raises(ComponentError, match="cannot run '/no/such/binary'"):
        ManagedProcess("ghost", ["/no/such/binary"], tmp_path / "g.log").start()


def test_bad_java_home_is_explained(monkeypatch, tmp_path):
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    with pytest.raises(ComponentError, match="has no bin/java"):
        java_home()


def test_missing_java_is_explained(monkeypatch):
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ComponentError, match="Java 17\\+ is needed"):
        java_home()


# --- supervision: the policy as a pure function ----------------------------------------

POLICY = RestartPolicy(delay=1.0, max_delay=30.0, reset_after=60.0, max_restarts=5, window=300)


def test_quick_crashes_back_off_exponentially_up_to_the_cap():
    roomy = RestartPolicy(delay=1.0, max_delay=30.0, reset_after=60.0, max_restarts=100)
    delays, streak = [], 0
    for _ in range(7):
        verdict = after_crash(roomy, [], streak, uptime=2.0, now=1000.0)
        assert verdict.restart
        delays.append(verdict.delay)
        streak = verdict.streak
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def test_a_child_that_stayed_up_starts_the_delays_over():
    verdict = after_crash(POLICY, [900.0], streak=4, uptime=60.0, now=1000.0)
    assert (verdict.restart, verdict.delay, verdict.streak) == (True, 1.0, 1)
    verdict = after_crash(POLICY, [900.0], streak=4, uptime=59.9, now=1000.0)
    assert (verdict.restart, verdict.delay, verdict.streak) == (True, 16.0, 5)


def test_too_many_restarts_within_the_window_is_a_crash_loop():
    restarts = [800.0, 850.0, 900.0, 950.0, 999.0]  # 5 within the last 300 s
    verdict = after_crash(POLICY, restarts, streak=5, uptime=120.0, now=1000.0)
    assert not verdict.restart
    assert verdict.reason == "crash loop: 5 restarts within 300 s (limit 5)"
    # The oldest falls out of the window: one more restart is allowed.
    verdict = after_crash(POLICY, restarts, streak=5, uptime=120.0, now=1100.5)
    assert verdict.restart


def test_zero_restarts_gives_up_at_the_first_crash():
    policy = RestartPolicy(max_restarts=0)
    verdict = after_crash(policy, [], streak=0, uptime=1000.0, now=1000.0)
    assert not verdict.restart and verdict.reason == "restarts are disabled"


@pytest.mark.parametrize(
    "kwargs",
    [{"delay": 0}, {"delay": 5, "max_delay": 1}, {"max_restarts": -1}, {"window": 0}],
)
def test_a_nonsensical_policy_is_refused(kwargs):
    with pytest.raises(ValueError, match="restart"):
        RestartPolicy(**kwargs)


def test_exit_descriptions():
    assert exit_description(3) == "exit code 3"
    assert exit_description(-9) == "killed by SIGKILL"
    assert exit_description(None) == "still running"


# --- supervision: real child processes --------------------------------------------------


class Child:
    """A ManagedProcess started again by `restart`, as the stack does for a service."""

    def __init__(self, tmp_path: Path, name: str, code: str) -> None:
        self.name, self.code, self.log = name, code, tmp_path / f"{name}.log"
        self.proc: ManagedProcess | None = None
        self.restart()

    def restart(self) -> None:
        self.proc = ManagedProcess(self.name, [sys.executable, "-c", self.code], self.log)
        self.proc.start()

    def unit(self, **kwargs) -> Supervised:
        return Supervised(self.name, lambda: self.proc, self.restart, **kwargs)


def _poll(condition, timeout: float = 30.0):
    wait_until(condition, timeout, "the supervisor's reaction", interval=0.05)


@pytest.fixture
def supervisor():
    logged: list[str] = []
    failures: list[str] = []
    policy = RestartPolicy(delay=0.05, max_delay=0.2, reset_after=60, max_restarts=2, window=60)
    sup = Supervisor(policy, logged.append, failures.append, interval=0.02)
    sup.logged, sup.failures = logged, failures
    yield sup.start()
    sup.stop()


def test_a_killed_child_is_restarted_and_counted(supervisor, tmp_path):
    child = Child(tmp_path, "sleeper", "import time; time.sleep(60)")
    supervisor.watch(child.unit())
    first = child.proc
    os.kill(first.popen.pid, signal.SIGKILL)
    _poll(lambda: child.proc is not first and child.proc.running)
    assert supervisor.restarts == {"sleeper": 1}
    assert any("sleeper killed by SIGKILL" in m and "restarting in" in m for m in supervisor.logged)
    assert any(m.startswith("sleeper restarted (pid ") for m in supervisor.logged)
    supervisor.release("sleeper")
    child.proc.stop(5)
    assert supervisor.failure is None


def test_a_crash_loop_gives_up_naming_the_child_and_its_log(supervisor, tmp_path):
    child = Child(tmp_path, "crasher", "import sys; print('boom: bad config'); sys.exit(3)")
    supervisor.watch(child.unit())
    _poll(lambda: supervisor.failure is not None)
    assert supervisor.restarts == {"crasher": 2}
    assert supervisor.failures == [supervisor.failure]  # on_failure called once
    assert re.match(
        r"(?s)crasher keeps crashing, giving up \(crash loop: 2 restarts within 60 s "
        r"\(limit 2\)\); it last exit code 3 after .* s; log .*crasher.log:\n.*boom: bad config",
        supervisor.failure,
    ), supervisor.failure


def test_a_released_child_is_left_alone(supervisor, tmp_path):
    child = Child(tmp_path, "stopped", "import time; time.sleep(60)")
    supervisor.watch(child.unit())
    supervisor.release("stopped")
    first = child.proc
    first.stop(5)
    for _ in range(5):  # rounds of the supervisor's own: nothing may happen
        supervisor.check()
    assert child.proc is first and supervisor.restarts == {"stopped": 0}


def test_clean_exit_of_a_finite_child_is_not_a_crash(supervisor, tmp_path):
    child = Child(tmp_path, "finite", "print('done')")
    supervisor.watch(child.unit(restart_clean_exit=False))
    _poll(lambda: "finite finished (exit code 0)" in supervisor.logged)
    assert supervisor.restarts == {"finite": 0} and supervisor.failure is None


def test_a_child_that_cannot_start_again_counts_as_crashing(supervisor, tmp_path):
    child = Child(tmp_path, "unstartable", "import sys; sys.exit(1)")

    def broken() -> None:
        raise ComponentError("port 1234 is already in use")

    supervisor.watch(Supervised("unstartable", lambda: child.proc, broken))
    _poll(lambda: supervisor.failure is not None)
    assert "unstartable keeps crashing" in supervisor.failure
    assert "it last failed to start" in supervisor.failure
    assert any("did not start again: port 1234" in m for m in supervisor.logged)
