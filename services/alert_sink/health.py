"""The sink's HTTP endpoint: Prometheus metrics on every path, and `/healthz`.

Why a health endpoint beside the metrics: an orchestrator (compose healthcheck, k8s
readiness probe) needs a yes/no it can act on without parsing Prometheus text. `/healthz`
answers 200 when the sink can do its work, 503 when the database or the Kafka broker is
unreachable, with a small JSON body saying which. The same verdict is the gauge
`fraud_sink_ready`, so dashboards and alerts see it too.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

HEALTH_PATH = "/healthz"


@dataclass(frozen=True, slots=True)
class Health:
    database: bool  # the last database attempt or probe got an answer from the server
    kafka: bool  # the last broker probe got an answer

    @property
    def ready(self) -> bool:
        return self.database and self.kafka


def health_app(
    registry: CollectorRegistry, health: Callable[[], Health]
) -> Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]:
    """A WSGI app: `/healthz` from `health()`, the metrics of `registry` elsewhere."""
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != HEALTH_PATH:
            return metrics(environ, start_response)
        now = health()
        body = json.dumps({"ready": now.ready, **asdict(now)}).encode()
        status = "200 OK" if now.ready else "503 Service Unavailable"
        start_response(
            status,
            [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
        )
        return [body]

    return app


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # a scrape every few seconds is not news


def serve(
    port: int, registry: CollectorRegistry, health: Callable[[], Health], addr: str = "0.0.0.0"
) -> WSGIServer | None:
    """Serve metrics and `/healthz` on a daemon thread; a taken port is a clear startup
    error. Port 0: none."""
    if port == 0:
        return None
    try:
        server = make_server(
            addr, port, health_app(registry, health), _Server, handler_class=_QuietHandler
        )
    except OSError as err:
        raise SystemExit(
            f"error: cannot serve metrics on {addr}:{port}: {err.strerror}; "
            "choose another port with --metrics-port"
        ) from None
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server
