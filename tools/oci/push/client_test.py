"""The push client's decisions, with scripted registry answers (no network): how 401s
are answered, where credentials go, what is retried, and what an error message says."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest

from tools.oci.push.auth import Credentials
from tools.oci.push.client import (
    PushError,
    RetryPolicy,
    Session,
    put_manifest,
    upload_blob,
    with_retries,
)
from tools.oci.push.layout import Blob, read_layout
from tools.oci.push.reference import Endpoint, Repository
from tools.oci.push.sample_image import write_layout
from tools.oci.push.transport import Response, TransientError, proxy_for

REPO = Repository("registry.example.com", "fraud/producer")
ENDPOINT = Endpoint("https", "registry.example.com")
BASE = "https://registry.example.com"
UNAUTHORIZED = (
    b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":null}]}'
)


def answer(status: int, headers: Mapping[str, str] | None = None, body: bytes = b"") -> Response:
    return Response(status, "Reason", {k.lower(): v for k, v in (headers or {}).items()}, body)


@dataclass
class Sent:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes | Blob | None


@dataclass
class ScriptedTransport:
    """Answers requests in order and remembers what was sent."""

    answers: list[Response]
    sent: list[Sent] = field(default_factory=list)

    def send(self, method, url, headers, body=None) -> Response:
        self.sent.append(Sent(method, url, dict(headers), body))
        return self.answers.pop(0)


def session(transport: ScriptedTransport, creds: Credentials | None) -> Session:
    return Session(REPO, ENDPOINT, transport, lambda repo: creds, credential_files=["/cfg.json"])  # type: ignore[arg-type]


ALICE = Credentials("alice", "s3cret", "/cfg.json auths['registry.example.com']")


def test_basic_challenge_is_answered_once_then_reused():
    transport = ScriptedTransport(
        [
            answer(401, {"WWW-Authenticate": 'Basic realm="r"'}, UNAUTHORIZED),
            answer(200),
            answer(404),
        ]
    )
    s = session(transport, ALICE)
    assert s.request("GET", f"{BASE}/v2/").status == 200
    assert s.request("HEAD", f"{BASE}/v2/fraud/producer/blobs/sha256:x").status == 404
    assert "Authorization" not in transport.sent[0].headers
    expected = "Basic " + base64.b64encode(b"alice:s3cret").decode()
    assert [t.headers.get("Authorization") for t in transport.sent[1:]] == [expected, expected]


def test_rejected_credentials_are_named_never_shown():
    transport = ScriptedTransport(
        [answer(401, {"WWW-Authenticate": 'Basic realm="r"'}, UNAUTHORIZED)] * 2
    )
    with pytest.raises(PushError) as err:
        session(transport, ALICE).request("GET", f"{BASE}/v2/")
    message = str(err.value)
    assert message.startswith("registry.example.com/fraud/producer: ")
    assert "refused the credentials from /cfg.json auths['registry.example.com']" in message
    assert "HTTP 401 on GET /v2/: UNAUTHORIZED: authentication required" in message
    assert "s3cret" not in message


def test_basic_without_credentials_says_where_it_looked():
    transport = ScriptedTransport([answer(401, {"WWW-Authenticate": 'Basic realm="r"'})])
    with pytest.raises(
        PushError,
        match=r"no credentials for registry.example.com were found \(looked in /cfg.json\)",
    ):
        session(transport, None).request("GET", f"{BASE}/v2/")


def test_bearer_token_is_fetched_with_push_scope_and_sent():
    challenge = (
        'Bearer realm="https://auth.example.com/token",service="registry.example.com",'
        'scope="repository:fraud/producer:pull"'
    )
    transport = ScriptedTransport(
        [
            answer(401, {"WWW-Authenticate": challenge}),
            answer(200, body=b'{"access_token": "tok-1"}'),
            answer(200),
        ]
    )
    s = session(transport, ALICE)
    assert s.request("HEAD", f"{BASE}/v2/fraud/producer/blobs/sha256:x").status == 200
    token_call = transport.sent[1]
    assert token_call.url.startswith("https://auth.example.com/token?service=registry.example.com")
    assert "scope=repository%3Afraud%2Fproducer%3Apull%2Cpush" in token_call.url
    assert token_call.headers["Authorization"].startswith("Basic ")
    assert transport.sent[2].headers["Authorization"] == "Bearer tok-1"


def test_token_endpoint_refusal_is_clear():
    transport = ScriptedTransport(
        [
            answer(401, {"WWW-Authenticate": 'Bearer realm="https://auth.example.com/token"'}),
            answer(401, body=b'{"details":"incorrect username or password"}'),
        ]
    )
    with pytest.raises(PushError) as err:
        session(transport, ALICE).request("GET", f"{BASE}/v2/")
    assert (
        "token endpoint https://auth.example.com/token refused the credentials from /cfg.json"
        in str(err.value)
    )
    assert "HTTP 401" in str(err.value) and "incorrect username or password" in str(err.value)


def test_expired_token_is_renewed_once():
    bearer = {"WWW-Authenticate": 'Bearer realm="https://auth.example.com/token"'}
    transport = ScriptedTransport(
        [
            answer(401, bearer),
            answer(200, body=b'{"token": "old"}'),
            answer(200),
            answer(401, bearer),  # later: the token expired
            answer(200, body=b'{"token": "new"}'),
            answer(201),
        ]
    )
    s = session(transport, None)  # anonymous tokens
    s.request("GET", f"{BASE}/v2/")
    assert s.request("PUT", f"{BASE}/v2/fraud/producer/manifests/latest", body=b"{}").status == 201
    assert transport.sent[-1].headers["Authorization"] == "Bearer new"


def test_credentials_stay_at_the_registry_origin():
    transport = ScriptedTransport(
        [answer(401, {"WWW-Authenticate": 'Basic realm="r"'}), answer(200), answer(401)]
    )
    s = session(transport, ALICE)
    s.request("GET", f"{BASE}/v2/")
    response = s.request("PUT", "https://storage.example.com/upload?sig=1", body=b"x")
    assert "Authorization" not in transport.sent[-1].headers
    assert response.status == 401  # not ours to answer


def test_upload_puts_to_the_location_with_its_query_and_the_digest(tmp_path):
    sample = write_layout(tmp_path / "l", [{"a": b"x"}])
    blob = read_layout(sample.directory).layers[0]
    transport = ScriptedTransport(
        [
            answer(202, {"Location": "/v2/fraud/producer/blobs/uploads/u1?_state=abc"}),
            answer(201, {"Docker-Content-Digest": blob.digest}),
        ]
    )
    upload_blob(session(transport, None), blob)
    post, put = transport.sent
    assert (post.method, post.url, post.body) == (
        "POST",
        f"{BASE}/v2/fraud/producer/blobs/uploads/",
        b"",
    )
    assert put.method == "PUT" and put.body is blob
    assert put.url == (
        f"{BASE}/v2/fraud/producer/blobs/uploads/u1?_state=abc&digest="
        + blob.digest.replace(":", "%3A")
    )


def test_registry_errors_name_repository_request_status_and_body(tmp_path):
    sample = write_layout(tmp_path / "l", [{"a": b"x"}])
    image = read_layout(sample.directory)
    body = json.dumps(
        {
            "errors": [
                {
                    "code": "MANIFEST_BLOB_UNKNOWN",
                    "message": "blob unknown to registry",
                    "detail": "sha256:abc",
                }
            ]
        }
    ).encode()
    transport = ScriptedTransport([answer(400, body=body)])
    with pytest.raises(PushError) as err:
        put_manifest(session(transport, None), image, "v1")
    assert str(err.value) == (
        "registry.example.com/fraud/producer: PUT /v2/fraud/producer/manifests/v1: "
        "HTTP 400 Reason: "
        'MANIFEST_BLOB_UNKNOWN: blob unknown to registry ("sha256:abc")'
    )
    assert transport.sent[0].headers["Content-Type"] == image.media_type
    assert transport.sent[0].body == image.manifest


def test_manifest_digest_must_match_the_registrys(tmp_path):
    image = read_layout(write_layout(tmp_path / "l", [{"a": b"x"}]).directory)
    ok = ScriptedTransport([answer(201, {"Docker-Content-Digest": image.manifest_digest})])
    assert put_manifest(session(ok, None), image, "v1") == image.manifest_digest
    other = "sha256:" + "0" * 64
    bad = ScriptedTransport([answer(201, {"Docker-Content-Digest": other})])
    with pytest.raises(PushError, match=f"computed manifest digest {other} for tag v1"):
        put_manifest(session(bad, None), image, "v1")


def test_5xx_and_429_are_transient():
    s = session(ScriptedTransport([]), None)
    for status in (500, 503, 429):
        with pytest.raises(TransientError, match=f"HTTP {status}"):
            s.check(answer(status, body=b"busy"), {201}, "PUT x")


def test_retries_with_backoff_and_says_so():
    failures = [
        TransientError("HTTP 503 Service Unavailable"),
        TransientError("connection refused"),
    ]
    logged: list[str] = []
    slept: list[float] = []

    def flaky() -> str:
        if failures:
            raise failures.pop(0)
        return "done"

    assert (
        with_retries("blob x", flaky, RetryPolicy(attempts=4), logged.append, slept.append)
        == "done"
    )
    assert slept == [1.0, 2.0]
    assert logged == [
        "  blob x: HTTP 503 Service Unavailable; retrying in 1 s (attempt 2 of 4)",
        "  blob x: connection refused; retrying in 2 s (attempt 3 of 4)",
    ]


def test_gives_up_after_the_last_attempt():
    def down() -> None:
        raise TransientError("GET /v2/: Connection refused")

    with pytest.raises(
        PushError, match="API check failed after 3 attempts: GET /v2/: Connection refused"
    ):
        with_retries("API check", down, RetryPolicy(attempts=3), lambda _: None, lambda _: None)


def test_error_text_of_spec_errors_plain_text_and_long_bodies():
    assert answer(400, body=UNAUTHORIZED).error_text() == "UNAUTHORIZED: authentication required"
    assert (
        answer(502, body=b"<html>\n bad gateway \n</html>").error_text()
        == "<html> bad gateway </html>"
    )
    assert answer(500, body=b"").error_text() == "(empty body)"
    assert answer(500, body=b"x" * 1000).error_text(limit=10) == "x" * 10 + "..."


def test_proxy_choice():
    proxies = {
        "https": "http://user:p%40ss@proxy.lan:3128",
        "http": "proxy.lan:8080",
        "no": "internal.lan",
    }
    chosen = proxy_for("https://registry.example.com/v2/", proxies)
    assert chosen is not None and chosen.netloc == "proxy.lan:3128"
    assert chosen.authorization == "Basic " + base64.b64encode(b"user:p@ss").decode()
    assert "p@ss" not in repr(chosen)
    plain = proxy_for("http://registry.example.com/v2/", proxies)
    assert plain is not None and plain.netloc == "proxy.lan:8080"
    assert proxy_for("https://registry.internal.lan/v2/", proxies) is None
    assert proxy_for("http://127.0.0.1:5000/v2/", proxies) is None
    assert proxy_for("http://localhost:5000/v2/", proxies) is None
    assert proxy_for("https://registry.example.com/v2/", {}) is None
