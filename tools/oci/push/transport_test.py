"""HTTP transport against small servers on loopback: streamed bodies with a fixed length,
kept-alive connections, and failures sorted into retry (refused, dropped) and stop with
advice (TLS to a plain-HTTP registry, an untrusted certificate)."""

from __future__ import annotations

import hashlib
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from infra.components.process import free_port
from tools.oci.push.layout import LayoutError, read_layout
from tools.oci.push.sample_image import random_bytes, write_layout
from tools.oci.push.token_server import make_issuer
from tools.oci.push.transport import PermanentError, TransientError, Transport


class Recorder(BaseHTTPRequestHandler):
    """Answers 201 with the sha256 of the body; remembers what arrived."""

    protocol_version = "HTTP/1.1"
    seen: list[dict[str, str]] = []  # noqa: RUF012 (reset per server by the fixture)
    close_after_answer = False

    def do_PUT(self) -> None:
        length = int(self.headers["Content-Length"])
        body = self.rfile.read(length)
        if len(body) < length:  # the client gave up mid-body
            self.close_connection = True
            return
        type(self).seen.append(
            {
                "client_port": str(self.client_address[1]),
                "length": self.headers["Content-Length"],
                "transfer_encoding": self.headers.get("Transfer-Encoding", ""),
                "user_agent": self.headers.get("User-Agent", ""),
                "sha256": "sha256:" + hashlib.sha256(body).hexdigest(),
            }
        )
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()
        if self.close_after_answer:  # says keep-alive, closes anyway (idle timeouts do)
            self.close_connection = True

    do_GET = do_PUT

    def log_message(self, format: str, *args: object) -> None:
        pass


def serve(handler: type[BaseHTTPRequestHandler], tls: ssl.SSLContext | None = None):
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server


@pytest.fixture
def recorder() -> Iterator[tuple[str, type[Recorder]]]:
    handler = type("Handler", (Recorder,), {"seen": []})
    server = serve(handler)
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


@pytest.fixture
def blob(tmp_path):
    sample = write_layout(tmp_path / "l", [{"big": random_bytes(3_000_000, seed=5)}])
    return read_layout(sample.directory).layers[0]


def test_blob_is_streamed_with_its_length_over_one_kept_alive_connection(recorder, blob):
    url, handler = recorder
    transport = Transport(timeout=10)
    assert transport.send("PUT", f"{url}/upload", {}, blob).status == 201
    assert transport.send("PUT", f"{url}/again", {}, b"small").status == 201
    first, second = handler.seen
    assert first["length"] == str(blob.size) and first["transfer_encoding"] == ""
    assert first["sha256"] == blob.digest
    assert first["user_agent"].startswith("fraud-oci-push/")
    assert first["client_port"] == second["client_port"]  # the same connection
    transport.close()


def test_a_closed_kept_alive_connection_is_replaced_silently(recorder, blob):
    url, handler = recorder
    handler.close_after_answer = True
    transport = Transport(timeout=10)
    for _ in range(3):
        assert transport.send("PUT", f"{url}/upload", {}, blob).status == 201
    assert len({seen["client_port"] for seen in handler.seen}) == 3
    transport.close()


def test_corrupt_blob_stops_the_request(recorder, blob):
    url, handler = recorder
    content = bytearray(blob.path.read_bytes())
    content[-1] ^= 0xFF
    blob.path.write_bytes(bytes(content))
    with pytest.raises(LayoutError, match="hashes to"):
        Transport(timeout=10).send("PUT", f"{url}/upload", {}, blob)
    assert handler.seen == []  # the server never got a complete body


def test_refused_connection_is_transient():
    port = free_port()
    with pytest.raises(
        TransientError, match=f"GET http://127.0.0.1:{port}/v2/: Connection refused"
    ):
        Transport(timeout=5).send("GET", f"http://127.0.0.1:{port}/v2/", {})


def test_tls_to_a_plain_http_server_suggests_insecure_registry(recorder):
    url, _ = recorder
    netloc = url.removeprefix("http://")
    with pytest.raises(PermanentError, match=f"plain HTTP: pass --insecure-registry {netloc}"):
        Transport(timeout=5).send("GET", f"https://{netloc}/v2/", {})


def test_untrusted_certificate_is_named(tmp_path):
    issuer = make_issuer(tmp_path / "tls", name="127.0.0.1")
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(issuer.cert, issuer.key)
    handler = type("Handler", (Recorder,), {"seen": []})
    server = serve(handler, tls)
    try:
        untrusted = r"TLS certificate of 127\.0\.0\.1:\d+ is not trusted"
        with pytest.raises(PermanentError, match=untrusted):
            Transport(timeout=5).send("GET", f"https://127.0.0.1:{server.server_address[1]}/", {})
    finally:
        server.shutdown()
        server.server_close()
