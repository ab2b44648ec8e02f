"""Where an image goes: repository names, registry endpoints and the distribution API's URLs.

Why: the push client and its tests must agree on one reading of `REGISTRY/PATH`, on when
plain HTTP is allowed, and on how an upload's Location becomes the URL that completes it.
These are pure functions, tested without a network.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

# The distribution spec's grammar for a repository path and a tag.
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
PATH_RE = re.compile(rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*")
TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")

# Docker Hub answers the API on another host than its name.
_DOCKER_HUB_NAMES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
DOCKER_HUB_API_HOST = "registry-1.docker.io"


class InvalidReference(ValueError):
    """A repository, tag or image name that cannot be used; the message says why."""


@dataclass(frozen=True)
class Repository:
    """`registry/path`: `registry` is host[:port] as written, `path` the repository."""

    registry: str
    path: str

    def __str__(self) -> str:
        return f"{self.registry}/{self.path}"

    def child(self, name: str) -> Repository:
        """This repository as a prefix: `registry/path/name`."""
        check_path(name, what="image name")
        return Repository(self.registry, f"{self.path}/{name}" if self.path else name)


def looks_like_registry(component: str) -> bool:
    """Docker's rule: the first component is a registry when it has a dot or a port, or
    is localhost (or an IPv6 literal in brackets)."""
    return "." in component or ":" in component or component == "localhost"


def parse_repository(text: str, *, allow_empty_path: bool = False) -> Repository:
    """`REGISTRY/PATH` → Repository. A prefix (for --repository-prefix) may be a bare
    registry when `allow_empty_path`."""
    text = text.strip()
    for scheme in ("https://", "http://"):
        if text.startswith(scheme):
            raise InvalidReference(
                f"{text!r}: write the repository without a scheme "
                f"(e.g. {text[len(scheme) :]!r}); plain HTTP is chosen by --insecure-registry"
            )
    registry, _, path = text.partition("/")
    if not registry or not looks_like_registry(registry):
        raise InvalidReference(
            f"{text!r} does not start with a registry host; expected REGISTRY/PATH, "
            "e.g. registry.example.com/fraud/producer or 127.0.0.1:5000/producer"
        )
    path = path.strip("/")
    if path or not allow_empty_path:
        check_path(path, what=f"repository path in {text!r}")
    return Repository(registry, path)


def check_path(path: str, *, what: str) -> None:
    if not PATH_RE.fullmatch(path):
        raise InvalidReference(
            f"{what} {path!r} is invalid: expected lowercase letters, digits and "
            "separators (. _ __ -) in components joined by '/'"
        )


def check_tag(tag: str) -> str:
    if not TAG_RE.fullmatch(tag):
        raise InvalidReference(
            f"tag {tag!r} is invalid: expected up to 128 of [A-Za-z0-9_.-], "
            "not starting with '.' or '-'"
        )
    return tag


def split_host_port(registry: str) -> tuple[str, str | None]:
    """`host:port`, `[v6]:port`, `host` → (host without brackets, port or None)."""
    if registry.startswith("["):
        host, _, rest = registry[1:].partition("]")
        return host, rest[1:] if rest.startswith(":") else None
    host, sep, port = registry.rpartition(":")
    return (host, port) if sep else (registry, None)


def is_loopback(registry: str) -> bool:
    host, _ = split_host_port(registry)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def canonical_registry(registry: str) -> str:
    """The name credentials are filed under: Docker Hub's aliases become `docker.io`."""
    lowered = registry.lower()
    return "docker.io" if lowered in _DOCKER_HUB_NAMES else lowered


@dataclass(frozen=True)
class Endpoint:
    """Where a registry's API answers: `scheme://netloc/v2/...`."""

    scheme: str
    netloc: str

    @property
    def base(self) -> str:
        return f"{self.scheme}://{self.netloc}"


def endpoint_for(registry: str, insecure: Iterable[str] = ()) -> Endpoint:
    """Plain HTTP for loopback registries and those named insecure, HTTPS otherwise."""
    netloc = DOCKER_HUB_API_HOST if canonical_registry(registry) == "docker.io" else registry
    insecure_names = {canonical_registry(name.strip()) for name in insecure if name.strip()}
    plain = is_loopback(registry) or canonical_registry(registry) in insecure_names
    return Endpoint("http" if plain else "https", netloc)


def blob_url(endpoint: Endpoint, repo: Repository, digest: str) -> str:
    return f"{endpoint.base}/v2/{repo.path}/blobs/{digest}"


def upload_start_url(endpoint: Endpoint, repo: Repository) -> str:
    return f"{endpoint.base}/v2/{repo.path}/blobs/uploads/"


def manifest_url(endpoint: Endpoint, repo: Repository, reference: str) -> str:
    return f"{endpoint.base}/v2/{repo.path}/manifests/{reference}"


def upload_finish_url(location: str, request_url: str, digest: str) -> str:
    """The upload session's Location (relative or absolute, maybe with a query of its
    own, e.g. `_state=`) with `digest=` added: where the monolithic PUT goes."""
    if not location:
        raise InvalidReference("the registry started an upload but sent no Location header")
    absolute = urljoin(request_url, location)
    parts = urlsplit(absolute)
    digest_param = "digest=" + quote(digest, safe="")
    query = f"{parts.query}&{digest_param}" if parts.query else digest_param
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def same_origin(url: str, endpoint: Endpoint) -> bool:
    """Credentials go only to the registry itself, never to a storage redirect."""
    parts = urlsplit(url)
    return parts.scheme == endpoint.scheme and parts.netloc.lower() == endpoint.netloc.lower()
