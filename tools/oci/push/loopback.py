"""A threaded HTTP server on a free loopback port, started and stopped with its owner.

Why: the registry's test neighbours (the token service, the failure-injecting proxy)
are small HTTP servers that differ only in their handler; this is the part they share.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self


@dataclass
class LoopbackServer:
    """Subclasses define `start()` (build a handler, then `serve(handler)`)."""

    _server: ThreadingHTTPServer | None = field(default=None, repr=False, init=False)

    def serve(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
