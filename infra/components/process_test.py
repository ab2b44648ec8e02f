"""Clear errors when a component cannot start: port taken, process dies, Java missing."""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

import pytest

from infra.components.kafka import KafkaBroker
from infra.components.process import (
    ComponentError,
    ManagedProcess,
    ensure_port_free,
    free_port,
    port_open,
)
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
