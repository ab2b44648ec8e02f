"""HTTP for the push: kept-alive stdlib connections, streamed bodies, errors sorted into
worth-retrying and not.

Why: urllib cannot stream a verified file body with a fixed Content-Length and hand back
4xx answers as plain responses, and the push must tell a dropped connection (retry) from
an untrusted certificate or a plain-HTTP registry reached over TLS (stop and explain).
Proxies come from the usual variables (https_proxy, http_proxy, no_proxy); loopback
registries are always reached directly.
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import ssl
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from tools.oci.push.layout import Blob, LayoutError
from tools.oci.push.reference import is_loopback

BLOCK_SIZE = 1024 * 1024  # bytes handed to the socket at a time when streaming a blob
USER_AGENT = "fraud-oci-push/1.0 (python http.client)"


class TransientError(Exception):
    """A failure worth retrying: a dropped connection, a timeout, a 5xx or 429 answer."""


class PermanentError(Exception):
    """A failure retrying will not fix; the message says what to change."""


@dataclass(frozen=True)
class Response:
    status: int
    reason: str
    headers: Mapping[str, str] = field(repr=False)  # names lowercase
    body: bytes = field(repr=False)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def error_text(self, limit: int = 600) -> str:
        """The registry's error body, shortened: `CODE: message (detail)` for the spec's
        `{"errors": [...]}`, else the text as sent."""
        try:
            errors = json.loads(self.body).get("errors")
            parts = [
                f"{e.get('code')}: {e.get('message')}"
                + (f" ({json.dumps(e['detail'])})" if e.get("detail") else "")
                for e in errors
            ]
            text = "; ".join(parts)
        except (ValueError, AttributeError, TypeError):
            text = self.body.decode(errors="replace").strip()
        text = " ".join(text.split())
        return (text[:limit] + "...") if len(text) > limit else (text or "(empty body)")


@dataclass(frozen=True)
class Proxy:
    netloc: str
    authorization: str | None = field(default=None, repr=False)


def proxy_for(url: str, environ_proxies: Mapping[str, str]) -> Proxy | None:
    """The proxy `url` goes through, given urllib's view of the environment's proxies
    (scheme -> proxy URL, plus `no`); None for direct, always for loopback."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if is_loopback(parts.netloc) or not environ_proxies.get(parts.scheme):
        return None
    if urllib.request.proxy_bypass_environment(host, environ_proxies):
        return None
    proxy = urlsplit(environ_proxies[parts.scheme])
    if not proxy.hostname:
        proxy = urlsplit("http://" + environ_proxies[parts.scheme])
    netloc = proxy.hostname or ""
    if ":" in netloc:
        netloc = f"[{netloc}]"
    if proxy.port:
        netloc += f":{proxy.port}"
    authorization = None
    if proxy.username is not None:
        raw = f"{unquote(proxy.username)}:{unquote(proxy.password or '')}".encode()
        authorization = "Basic " + base64.b64encode(raw).decode("ascii")
    return Proxy(netloc, authorization)


class Transport:
    """One keep-alive connection per origin; requests are sequential."""

    def __init__(self, timeout: float, proxies: Mapping[str, str] | None = None) -> None:
        self.timeout = timeout
        self.proxies = urllib.request.getproxies_environment() if proxies is None else proxies
        self._tls = ssl.create_default_context()  # the system's CA trust
        self._connections: dict[tuple[str, str], http.client.HTTPConnection] = {}

    def send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | Blob | None = None,
    ) -> Response:
        """One request, its whole answer read. A kept-alive connection the server closed
        meanwhile is replaced once, silently; other failures raise Transient/PermanentError
        (or LayoutError when the blob being sent turns out corrupt)."""
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc)
        reused = key in self._connections
        try:
            return self._send_once(method, url, headers, body)
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            if not reused:
                raise TransientError(f"{method} {url}: connection closed by the server") from None
        try:
            return self._send_once(method, url, headers, body)
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as err:
            raise TransientError(f"{method} {url}: {_describe(err)}") from None

    def _send_once(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | Blob | None,
    ) -> Response:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise PermanentError(f"cannot {method} {url!r}: not an http(s) URL")
        key = (parts.scheme, parts.netloc)
        proxy = proxy_for(url, self.proxies)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if proxy is not None and parts.scheme == "http":
            target = f"http://{parts.netloc}{target}"  # absolute form, for the proxy
        all_headers = {"User-Agent": USER_AGENT, **headers}
        if proxy is not None and parts.scheme == "http" and proxy.authorization:
            all_headers["Proxy-Authorization"] = proxy.authorization
        reader = body.open() if isinstance(body, Blob) else None
        payload = reader if reader is not None else body
        if isinstance(body, Blob):
            all_headers["Content-Length"] = str(body.size)
        elif isinstance(body, bytes):
            all_headers["Content-Length"] = str(len(body))
        try:
            conn = self._connection(key, proxy)
            conn.request(method, target, body=payload, headers=all_headers)
            answer = conn.getresponse()
            data = answer.read()
        except LayoutError:
            self._drop(key)
            raise
        except ssl.SSLCertVerificationError as err:
            self._drop(key)
            raise PermanentError(
                f"TLS certificate of {parts.netloc} is not trusted ({err.verify_message}); "
                "add its CA to the system trust store (or SSL_CERT_FILE)"
            ) from None
        except ssl.SSLError as err:
            self._drop(key)
            hint = ""
            if "WRONG_VERSION_NUMBER" in str(err) or "record layer failure" in str(err):
                hint = (
                    f"; it seems to speak plain HTTP: pass --insecure-registry {parts.netloc} "
                    "if that is intended"
                )
            raise PermanentError(f"TLS to {parts.netloc} failed: {err.reason}{hint}") from None
        except socket.gaierror as err:
            self._drop(key)
            raise PermanentError(f"cannot resolve {parts.hostname}: {err.strerror}") from None
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            self._drop(key)
            raise
        except (OSError, http.client.HTTPException) as err:
            self._drop(key)
            raise TransientError(f"{method} {url}: {_describe(err)}") from None
        finally:
            if reader is not None:
                reader.close()
        if answer.will_close:
            self._drop(key)
        headers_out = {name.lower(): value for name, value in answer.getheaders()}
        return Response(answer.status, answer.reason, headers_out, data)

    def _connection(self, key: tuple[str, str], proxy: Proxy | None) -> http.client.HTTPConnection:
        conn = self._connections.get(key)
        if conn is not None:
            return conn
        scheme, netloc = key
        if scheme == "https":
            if proxy is not None:
                conn = http.client.HTTPSConnection(
                    proxy.netloc, timeout=self.timeout, context=self._tls, blocksize=BLOCK_SIZE
                )
                tunnel_headers = (
                    {"Proxy-Authorization": proxy.authorization} if proxy.authorization else None
                )
                conn.set_tunnel(netloc, headers=tunnel_headers)
            else:
                conn = http.client.HTTPSConnection(
                    netloc, timeout=self.timeout, context=self._tls, blocksize=BLOCK_SIZE
                )
        else:
            address = proxy.netloc if proxy is not None else netloc
            conn = http.client.HTTPConnection(address, timeout=self.timeout, blocksize=BLOCK_SIZE)
        self._connections[key] = conn
        return conn

    def _drop(self, key: tuple[str, str]) -> None:
        conn = self._connections.pop(key, None)
        if conn is not None:
            conn.close()

    def close(self) -> None:
        for key in list(self._connections):
            self._drop(key)


def _describe(err: BaseException) -> str:
    if isinstance(err, TimeoutError):
        return "timed out"
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return str(err) or type(err).__name__
