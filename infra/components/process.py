"""A child process we start, wait for, and stop: the common part of every component.

Why: Kafka, PostgreSQL and Prometheus each need the same care: a log file to read when
they fail, a readiness check polled against a deadline (never a fixed sleep), a clear
error naming the component and the tail of its log, and a clean or brutal stop.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

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
        """Poll `ready` until it holds; returns seconds taken. Fails fast if the process dies."""
        if self.popen is None:
            raise ComponentError(f"{self.name}: wait_until before start()")
        started = time.monotonic()
        deadline = started + timeout
        while True:
            if self.popen.poll() is not None:
                raise ComponentError(
                    f"{self.name} exited with code {self.popen.returncode} before {what}; "
                    f"log {self.log_path}:\n{log_tail(self.log_path)}"
                )
            try:
                if ready():
                    return time.monotonic() - started
            except Exception:
                pass
            if time.monotonic() > deadline:
                raise ComponentError(
                    f"{self.name}: not {what} after {timeout:.0f} s; "
                    f"log {self.log_path}:\n{log_tail(self.log_path)}"
                )
            time.sleep(0.1)

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

    def kill(self) -> None:
        """SIGKILL the whole process group, as a crash would."""
        if self.popen is None:
            return
        self._signal(signal.SIGKILL)
        self.popen.wait()

    def _signal(self, sig: signal.Signals) -> None:
        assert self.popen is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)
