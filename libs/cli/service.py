"""What every long-running service needs at its edge: a shutdown signal and a metrics port.

Why: SIGTERM (Kubernetes, compose, the local stack) and Ctrl-C must both end a service
cleanly, finishing or handing back in-flight work; and a metrics port that is taken must
fail loudly at start, not silently serve nothing.
"""

from __future__ import annotations

import signal
import threading

from prometheus_client import CollectorRegistry, start_http_server


class Shutdown:
    """Set when SIGTERM or SIGINT arrives; loops poll `requested` or wait on it."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.signal_name: str | None = None

    def install(self) -> Shutdown:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, _frame: object) -> None:
        self.signal_name = signal.Signals(signum).name
        self._event.set()

    def request(self) -> None:
        self._event.set()

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float) -> bool:
        return self._event.wait(timeout)


def serve_metrics(port: int, registry: CollectorRegistry | None = None, addr: str = "0.0.0.0"):
    """Start the Prometheus endpoint; a taken port is a clear startup error. Port 0: none."""
    if port == 0:
        return None
    kwargs = {"registry": registry} if registry is not None else {}
    try:
        server, _thread = start_http_server(port, addr=addr, **kwargs)
    except OSError as err:
        raise SystemExit(
            f"error: cannot serve metrics on {addr}:{port}: {err.strerror}; "
            "choose another port with --metrics-port"
        ) from None
    return server
