"""The local stack supervises its children: the real `//infra:local` (Kafka, PostgreSQL,
Prometheus, a Spark detector, the sink and the producer on free ports) has PostgreSQL and
Prometheus, then its alert sink SIGKILLed; each must come back and be counted in the
summary line, and alerts must keep reaching the table. The sink killed again with a
crash-loop limit of one restart, the stack must stop with an error naming the sink and the
tail of its log, and a report counting every restart.

One stack serves every assertion (it costs a Spark start); the policy itself and the
Supervisor on small processes are tested in //infra/components:process_test.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

from infra.components.wait import wait_until
from infra.e2e import harness
from libs.runfiles.runfiles import runfiles_root


def _text(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


class LocalStack:
    """`infra/local` as a child process, its stdout and stderr in files we poll."""

    def __init__(self, base: Path, *args: str) -> None:
        self.base, self.data = base, base / "stack"
        self.out, self.err = base / "local.out", base / "local.err"
        self.report = base / "report.json"
        binary = runfiles_root() / "_main" / "infra" / "local"
        argv = [str(binary), "--any-ports", "--base-dir", str(self.data)]
        argv += ["--report-file", str(self.report), "--summary-interval", "1", *args]
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL)

    def stdout(self) -> str:
        return _text(self.out)

    def stderr(self) -> str:
        return _text(self.err)

    def pid(self, name: str) -> int:
        return int((self.data / "run" / f"{name}.pid").read_text())

    def children(self) -> list[int]:
        return [int(p.read_text()) for p in (self.data / "run").glob("*.pid")]

    def running(self, what: str) -> None:
        """Fail with the stack's output if it exited meanwhile."""
        if self.proc.poll() is not None:
            raise AssertionError(
                f"local exited ({self.proc.returncode}) while waiting for {what}:\n"
                f"{self.stdout()[-3000:]}\n{self.stderr()[-3000:]}"
            )

    def close(self) -> None:
        """Whatever happened, leave no process behind (the children run in their own
        sessions, so killing `local` alone would orphan them)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(180)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pid in self.children():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        harness.keep_logs(self.data / "logs", "supervision")
        harness.keep_logs(self.base, "supervision-local")
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture
def local():
    base = Path(tempfile.mkdtemp(prefix="e2e-supervision-", dir="/tmp"))
    os.chmod(base, 0o755)  # PostgreSQL may run as `nobody` beneath it
    stack = LocalStack(
        base,
        "--rate=200",
        "--no-quality",
        "--shuffle-partitions=2",
        "--restart-delay=0.5",
        "--crash-loop-restarts=1",
        "--crash-loop-window=600",
    )
    yield stack
    stack.close()


def _rows(dsn: str) -> int:
    return len(harness.table_alerts(dsn))


def test_a_killed_sink_is_restarted_and_a_crash_loop_stops_the_stack(local):
    def until(condition, what: str, timeout: float = 300.0):
        def check():
            local.running(what)
            return condition()

        return wait_until(check, timeout, what, tolerate=Exception)

    banner = until(
        lambda: re.search(r'psql "(host=[^"]+)"', local.stdout()), "the stack running", 420
    )
    dsn = banner.group(1)
    until(lambda: _rows(dsn) > 0, "first alerts stored")

    # PostgreSQL (its postmaster alone: the supervisor clears the backends) and Prometheus.
    old = {name: local.pid(name) for name in ("postgres", "prometheus")}
    for pid in old.values():
        os.kill(pid, signal.SIGKILL)
    until(
        lambda: "| restarts: postgres 1, prometheus 1\n" in local.stdout(),
        "PostgreSQL and Prometheus restarts in the summary",
        120,
    )
    for name, pid in old.items():
        new = until(lambda n=name, p=pid: local.pid(n) != p and local.pid(n), f"{name} pid")
        assert _alive(new), name
    stored = _rows(dsn)  # PostgreSQL answers again
    until(lambda: _rows(dsn) > stored, "alerts stored after PostgreSQL's restart")

    first = local.pid("alert_sink")
    os.kill(first, signal.SIGKILL)  # the process alone, as a crash would
    until(lambda: "| restarts: alert_sink 1, postgres 1" in local.stdout(), "sink restart", 60)
    second = until(lambda: local.pid("alert_sink") != first and local.pid("alert_sink"), "new pid")
    assert _alive(second)
    assert f"supervisor: alert_sink restarted (pid {second}, restart 1)" in local.stderr()
    assert "supervisor: alert_sink killed by SIGKILL after" in local.stderr()
    stored = _rows(dsn)
    until(lambda: _rows(dsn) > stored, "alerts stored by the restarted sink")
    until(
        lambda: re.search(r"alerts stored [1-9].* restarts: alert_sink 1,", local.stdout()),
        "the summary line counting the restarted sink's alerts",
        60,
    )

    # The limit is one restart within 600 s: a second crash is a crash loop.
    os.kill(second, signal.SIGKILL)
    assert local.proc.wait(300) == 1
    err = local.stderr()
    assert re.search(
        r"error: alert_sink keeps crashing, giving up \(crash loop: 1 restarts within 600 s "
        r"\(limit 1\)\); it last killed by SIGKILL after [\d.]+ s; log \S+alert_sink.log:\n",
        err,
    ), err[-3000:]
    sink_log = _text(local.data / "logs" / "alert_sink.log").splitlines()
    assert sink_log and sink_log[-1] in err  # the tail of its log

    report = json.loads(local.report.read_text())
    assert report["restarts"] == {
        "alert_sink": 1,
        "alertmanager": 0,
        "detector": 0,
        "kafka": 0,
        "postgres": 1,
        "producer": 0,
        "prometheus": 1,
    }
    assert report["failure"].startswith("alert_sink keeps crashing")
    assert report["alerts_stored"] > 0
    assert "restarts: alert_sink 1, postgres 1, prometheus 1\n" in local.stdout()
    assert "stopped because alert_sink keeps crashing" in local.stdout()
    left = [pid for pid in local.children() if _alive(pid)]
    assert not left, f"children still running after the stack stopped: {left}"
