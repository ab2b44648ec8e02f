"""A Bearer token server for tests: issues the RS256-signed JWTs docker-registry's token
auth accepts, for chosen users, identity tokens and anonymous callers.

Why: registries in the wild (Docker Hub, GHCR, Harbor, GitLab...) mostly use the token
protocol, so the push's Bearer path is tested against docker-registry configured for it.
Keys, the certificate and signatures come from the `openssl` command (no Python crypto
package needed); the server records every request so tests can check what was asked.
"""

from __future__ import annotations

import base64
import json
import secrets
import shutil
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from infra.components.process import ComponentError
from tools.oci.push.loopback import LoopbackServer


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class Issuer:
    """A self-signed RSA key pair that signs tokens; the registry trusts `cert`."""

    name: str
    key: Path
    cert: Path
    cert_der: bytes = field(repr=False)

    def sign(self, claims: Mapping[str, object]) -> str:
        header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(self.cert_der).decode()]}
        signing_input = (
            f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        )
        signature = subprocess.run(
            ["openssl", "dgst", "-sha256", "-sign", str(self.key)],
            input=signing_input.encode(),
            capture_output=True,
            check=True,
        ).stdout
        return f"{signing_input}.{_b64url(signature)}"


def make_issuer(workdir: Path, name: str = "fraud-test-issuer") -> Issuer:
    if shutil.which("openssl") is None:
        raise ComponentError("openssl is not installed; the token server needs it to sign")
    workdir.mkdir(parents=True, exist_ok=True)
    key, cert = workdir / "issuer.key", workdir / "issuer.crt"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
            *("-subj", f"/CN={name}", "-keyout", str(key), "-out", str(cert)),
        ],
        capture_output=True,
        check=True,
    )
    der = subprocess.run(
        ["openssl", "x509", "-in", str(cert), "-outform", "DER"], capture_output=True, check=True
    ).stdout
    return Issuer(name, key, cert, der)


@dataclass(frozen=True)
class TokenCall:
    """What one request to the token server asked for (never the password)."""

    method: str
    service: str | None
    scopes: tuple[str, ...]
    user: str | None
    grant_type: str | None = None


@dataclass
class TokenServer(LoopbackServer):
    """Serves GET /token (Basic or anonymous) and POST /token (refresh-token grant)."""

    issuer: Issuer
    service: str
    users: Mapping[str, str] = field(default_factory=dict, repr=False)
    identity_tokens: Mapping[str, str] = field(default_factory=dict, repr=False)  # token -> user
    anonymous_actions: tuple[str, ...] = ()  # what a caller without credentials may do
    token_field: str = "token"  # or "access_token", as OAuth2 endpoints answer
    calls: list[TokenCall] = field(default_factory=list)

    @property
    def realm(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/token"

    def start(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                user = owner._basic_user(self.headers.get("Authorization"))
                call = TokenCall(
                    "GET",
                    (query.get("service") or [None])[0],
                    tuple(query.get("scope", [])),
                    user if isinstance(user, str) else None,
                )
                owner.calls.append(call)
                if user is False:
                    self._answer(401, {"details": "incorrect username or password"})
                    return
                self._answer(200, owner._grant(user, call.scopes))

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode())
                user = owner.identity_tokens.get((form.get("refresh_token") or [""])[0])
                scopes = tuple(" ".join(form.get("scope", [])).split())
                owner.calls.append(
                    TokenCall(
                        "POST",
                        (form.get("service") or [None])[0],
                        scopes,
                        user,
                        (form.get("grant_type") or [None])[0],
                    )
                )
                if user is None:
                    self._answer(401, {"error": "invalid_grant"})
                    return
                self._answer(200, owner._grant(user, scopes))

            def _answer(self, status: int, body: Mapping[str, object]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.serve(Handler)

    def _basic_user(self, header: str | None) -> str | bool | None:
        """The authenticated user, None when anonymous, False when the password is wrong."""
        if not header or not header.lower().startswith("basic "):
            return None
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return user if self.users.get(user) == password else False

    def _grant(self, user: str | None, scopes: tuple[str, ...]) -> dict[str, object]:
        allowed = ("pull", "push") if user else self.anonymous_actions
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            granted = [a for a in actions.split(",") if a in allowed]
            if kind == "repository" and name:
                access.append({"type": kind, "name": name, "actions": granted})
        now = int(time.time())
        claims = {
            "iss": self.issuer.name,
            "sub": user or "",
            "aud": self.service,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        return {self.token_field: self.issuer.sign(claims), "expires_in": 300}
