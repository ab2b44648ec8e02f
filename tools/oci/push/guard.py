"""Before crane gets credentials: ask the registry how it authenticates and refuse to
let them go anywhere but the registry itself or a token realm we trust.

Why: crane 0.20 (Debian's) sends the Basic credentials, or the identity token, to
whatever token realm a registry's `WWW-Authenticate: Bearer realm=...` names, on any
host and over plain HTTP too, and it tries plain HTTP by itself for private addresses
and `.local` names. So, with credentials in hand, this module makes the same anonymous
`GET /v2/` crane will make and allows the push only when:
  - the registry answered over HTTPS, or over plain HTTP on loopback;
  - a Bearer realm is HTTPS (plain HTTP only on loopback) on the registry's own host,
    Docker Hub's auth.docker.io for Docker Hub, or a host the user allowed with
    --token-realm-host.
What it cannot close: a registry that names another realm to crane a moment later than
to us. Over HTTPS only the registry itself could do that, and it is the party the
credentials are for.
"""

from __future__ import annotations

import re
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from tools.oci.push.reference import (
    canonical_registry,
    crane_tries_plain_http,
    host_of,
    is_loopback,
)

_PARAM_RE = re.compile(r'([!#$%&\'*+.^_`|~0-9A-Za-z-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]+))')
DOCKER_HUB_REALM_HOST = "auth.docker.io"


class Refused(Exception):
    """The push would hand credentials to a place it must not; the message says why and
    what the user can do."""


@dataclass(frozen=True)
class Challenge:
    """The first Basic or Bearer challenge of a WWW-Authenticate header."""

    scheme: str  # "basic", "bearer" or "" (no auth asked)
    params: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Answer:
    """How the registry answered the anonymous `GET /v2/`."""

    url: str
    status: int
    challenge: Challenge


def parse_challenge(header: str) -> Challenge:
    """`Bearer realm="https://a/token",service="a"` → Challenge("bearer", {...}); of
    several challenges, the first Basic or Bearer one (as crane picks)."""
    for part in re.split(r",?\s*(?=\b(?:basic|bearer)\b\s)", header, flags=re.IGNORECASE):
        scheme, _, rest = part.strip().partition(" ")
        if scheme.lower() in ("basic", "bearer"):
            params = {
                name.lower(): re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare
                for name, quoted, bare in _PARAM_RE.findall(rest)
            }
            return Challenge(scheme.lower(), params)
    return Challenge("")


def schemes_for(registry: str, insecure: bool) -> list[str]:
    """The schemes crane tries, in its order."""
    plain = insecure or is_loopback(registry) or crane_tries_plain_http(registry)
    return ["https", "http"] if plain else ["https"]


def ask(url: str, timeout: float) -> tuple[int, str]:
    """(status, WWW-Authenticate) of an anonymous GET, verifying TLS."""
    request = urllib.request.Request(url, headers={"User-Agent": "fraud-oci-push"})
    context = ssl.create_default_context()
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as answer:
            return answer.status, answer.headers.get("WWW-Authenticate", "")
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("WWW-Authenticate", "")


Asker = Callable[[str, float], tuple[int, str]]


def probe(registry: str, insecure: bool, *, timeout: float = 30.0, asker: Asker = ask) -> Answer:
    """The registry's answer to `GET /v2/` on the first scheme that answers."""
    errors: list[str] = []
    host = "index.docker.io" if canonical_registry(registry) == "docker.io" else registry
    for scheme in schemes_for(registry, insecure):
        url = f"{scheme}://{host}/v2/"
        try:
            status, header = asker(url, timeout)
        except (OSError, ValueError) as err:
            reason = getattr(err, "reason", None) or err
            errors.append(f"GET {url}: {getattr(reason, 'strerror', None) or reason}")
            continue
        return Answer(url, status, parse_challenge(header))
    raise Refused(f"cannot reach the registry: {'; '.join(errors)}")


def check(registry: str, answer: Answer, allowed_realm_hosts: Iterable[str] = ()) -> None:
    """Raise Refused unless credentials may follow `answer`'s challenge."""
    scheme = urlsplit(answer.url).scheme
    if scheme == "http" and not is_loopback(registry):
        raise Refused(
            f"{registry} answered only over plain HTTP; credentials are sent over plain "
            "HTTP to loopback registries only"
        )
    if answer.challenge.scheme != "bearer":
        return  # Basic (crane sends it to the registry's host only) or no auth
    realm = answer.challenge.params.get("realm", "")
    parts = urlsplit(realm)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise Refused(f"{registry} names an unusable token realm {realm!r}")
    realm_host = host_of(parts.netloc)
    if parts.scheme == "http" and not is_loopback(parts.netloc):
        raise Refused(
            f"{registry} sends clients to the plain-HTTP token realm {realm}; credentials "
            "are never sent over plain HTTP except to loopback"
        )
    if realm_host == host_of(registry):
        return
    if canonical_registry(registry) == "docker.io" and realm_host == DOCKER_HUB_REALM_HOST:
        return
    allowed = {host_of(h.strip()) for h in allowed_realm_hosts if h.strip()}
    if realm_host not in allowed:
        raise Refused(
            f"{registry} sends clients to the token realm {realm}, on another host "
            f"({realm_host}); credentials are not sent there unless you allow it with "
            f"--token-realm-host {realm_host}"
        )
