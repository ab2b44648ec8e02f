"""A webhook receiver on loopback for tests: records every POST (path, headers, JSON
body) and can be switched to answer 503, as a receiver that is down would.

Why: Alertmanager's webhooks and the notifier's webhook and Slack destinations are all
"POST JSON to a URL"; one small real HTTP server stands in for each of them.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: Any  # the decoded JSON (or the raw text when it is not JSON)
    at: float  # time.time() when it arrived


class WebhookReceiver:
    """`with WebhookReceiver() as hook:` ... `hook.url`, `hook.received()`; `hook.down =
    True` makes it answer 503 (and record nothing) until set back."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self.down = False
        self.refused = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:

                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if receiver.down:
                    with receiver._lock:
                        receiver.refused += 1
                    self.send_response(503)
                    self.end_headers()
                    return
                try:
                    body: Any = json.loads(raw)
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                with receiver._lock:
                    receiver._received.append(
                        Received(self.path, dict(self.headers.items()), body, time.time())
                    )
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *_args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def received(self, path: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self._received if path is None or r.path == path]

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
