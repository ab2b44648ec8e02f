"""Where an image goes: `REGISTRY/PATH` and tags, read one way by the command line, the
credential lookup and the realm guard.

Why: crane would accept `producer` as Docker Hub's `library/producer`; a push target must
name its registry, and the guard must know which hosts are loopback and which names crane
would try over plain HTTP. Pure functions, tested without a network.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

# The distribution spec's grammar for a repository path and a tag.
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
PATH_RE = re.compile(rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*")
TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")

DOCKER_HUB_NAMES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})


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


def check_repository_length(repository: Repository) -> Repository:
    """crane's own limit on a whole repository path: 2 to 255 characters."""
    if not 2 <= len(repository.path) <= 255:
        raise InvalidReference(
            f"repository path {repository.path!r} in {str(repository)!r} is invalid: "
            "crane takes 2 to 255 characters"
        )
    return repository


def check_tag(tag: str) -> str:
    if not TAG_RE.fullmatch(tag):
        raise InvalidReference(
            f"tag {tag!r} is invalid: expected up to 128 of [A-Za-z0-9_.-], "
            "not starting with '.' or '-'"
        )
    return tag


def host_of(netloc: str) -> str:
    """`host:port`, `[v6]:port`, `host` → the host, lowercase, without brackets."""
    if netloc.startswith("["):
        return netloc[1:].partition("]")[0].lower()
    host, sep, port = netloc.rpartition(":")
    return (host if sep and port.isdigit() else netloc).lower()


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def is_loopback(netloc: str) -> bool:
    host = host_of(netloc)
    ip = _ip(host)
    return host == "localhost" or (ip is not None and ip.is_loopback)


def crane_tries_plain_http(netloc: str) -> bool:
    """Whether crane (go-containerregistry 0.20) falls back to plain HTTP for this
    registry by itself: RFC 1918 addresses and `.local`/`.localhost` names, besides
    loopback (see name.Registry.Scheme)."""
    host = host_of(netloc)
    ip = _ip(host)
    private = ip is not None and any(
        ip in ipaddress.ip_network(block)
        for block in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
    )
    return private or host.endswith((".local", ".localhost"))


def canonical_registry(registry: str) -> str:
    """The name credentials are filed under: Docker Hub's aliases become `docker.io`."""
    lowered = registry.lower()
    return "docker.io" if lowered in DOCKER_HUB_NAMES else lowered
