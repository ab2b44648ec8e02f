"""An HTTP proxy for tests that sits in front of a registry and fails chosen requests once:
answers 503, or drops the connection without an answer.

Why: the push's retries must be seen working against the real registry behind it, on
the failures networks and busy registries really produce.
"""

from __future__ import annotations

import http.client
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from tools.oci.push.loopback import LoopbackServer

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade"}


@dataclass
class Fault:
    """Fail the next request whose method matches and whose path contains `path_part`."""

    method: str
    path_part: str
    action: str  # "503" or "drop"


@dataclass
class FaultProxy(LoopbackServer):
    upstream: str  # host:port of the registry
    faults: list[Fault] = field(default_factory=list)
    injected: list[str] = field(default_factory=list)  # "METHOD path -> action", in order
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def address(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"{host}:{port}"

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.method == method and fault.path_part in path:
                    self.faults.remove(fault)
                    self.injected.append(f"{method} {path} -> {fault.action}")
                    return fault
        return None

    def start(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, like a real registry

            def _relay(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                fault = owner._take_fault(self.command, self.path)
                if fault is not None and fault.action == "drop":
                    self.close_connection = True
                    return
                if fault is not None:
                    data = b'{"errors":[{"code":"UNAVAILABLE","message":"injected by test"}]}'
                    self.send_response(503)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                upstream = http.client.HTTPConnection(owner.upstream, timeout=60)
                try:
                    upstream.putrequest(
                        self.command, self.path, skip_host=True, skip_accept_encoding=True
                    )
                    for name, value in self.headers.items():
                        if name.lower() not in _HOP_BY_HOP:
                            upstream.putheader(name, value)  # Host too: Locations stay here
                    upstream.endheaders(body or None)
                    answer = upstream.getresponse()
                    data = answer.read()
                    self.send_response(answer.status, answer.reason)
                    for name, value in answer.getheaders():
                        if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                            self.send_header(name, value)
                    length_header = answer.getheader("Content-Length")
                    self.send_header(
                        "Content-Length",
                        length_header
                        if self.command == "HEAD" and length_header
                        else str(len(data)),
                    )
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                finally:
                    upstream.close()

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _relay

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.serve(Handler)
