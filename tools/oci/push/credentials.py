"""Which credential file crane gets: the first of docker's and podman's files that has an
entry for the registry, handed over as crane's $DOCKER_CONFIG.

Why: crane reads one docker config (with `auths`, `credHelpers`, `credsStore`), and only
looks at podman's files when no docker config exists at all. People log in with either
tool, so the push looks through all the usual files itself, in the order podman and
docker do, and gives crane a private config directory whose config.json is the file it
chose (a symlink: no secret is copied), or an empty one when nothing may be sent.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools.oci.push.reference import canonical_registry


@dataclass(frozen=True)
class Found:
    """The file crane will read for a registry and how it holds the registry's secret:
    `entry` (auths or credHelpers name it) or `store` (only a credsStore, which may)."""

    path: Path
    how: str


def auth_files(environ: Mapping[str, str], home: Path) -> list[Path]:
    """The files credentials are looked up in, in order: podman's $REGISTRY_AUTH_FILE,
    docker's $DOCKER_CONFIG/config.json and ~/.docker/config.json, podman's
    $XDG_RUNTIME_DIR/containers/auth.json and ~/.config/containers/auth.json."""
    files: list[Path] = []
    if environ.get("REGISTRY_AUTH_FILE"):
        files.append(Path(environ["REGISTRY_AUTH_FILE"]))
    if environ.get("DOCKER_CONFIG"):
        files.append(Path(environ["DOCKER_CONFIG"]) / "config.json")
    # Also where tools/bazel binds the caller's docker config ($DOCKER_CONFIG included)
    # inside its sandbox, in which the caller's $DOCKER_CONFIG path may not exist.
    files.append(home / ".docker" / "config.json")
    if environ.get("XDG_RUNTIME_DIR"):
        files.append(Path(environ["XDG_RUNTIME_DIR"]) / "containers" / "auth.json")
    config_home = Path(environ.get("XDG_CONFIG_HOME") or home / ".config")
    files.append(config_home / "containers" / "auth.json")
    return list(dict.fromkeys(files))


def _key_registry(key: str) -> str:
    """An `auths` key as docker writes them (`host`, `https://host/v1/`) → the host."""
    for scheme in ("https://", "http://"):
        key = key.removeprefix(scheme)
    return canonical_registry(key.split("/", 1)[0])


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        raise CredentialError(f"cannot read the credential file {path}: {err}") from None
    if not isinstance(data, dict):
        raise CredentialError(f"the credential file {path} is not a JSON object")
    return data


class CredentialError(Exception):
    """A credential file exists but cannot be used; the message names it."""


def holds(config: Mapping[str, Any], registry: str) -> str | None:
    """`entry`, `store` or None: whether `config` has the registry's secret."""
    wanted = canonical_registry(registry)
    for section in ("auths", "credHelpers"):
        keys = config.get(section) or {}
        if isinstance(keys, dict) and any(_key_registry(k) == wanted for k in keys):
            return "entry"
    return "store" if config.get("credsStore") else None


def find(registry: str, files: list[Path]) -> Found | None:
    """The first file naming the registry; else the first with a credsStore; else None."""
    store: Found | None = None
    for path in files:
        config = _read(path)
        if config is None:
            continue
        how = holds(config, registry)
        if how == "entry":
            return Found(path, how)
        if how == "store" and store is None:
            store = Found(path, how)
    return store


@contextmanager
def crane_config(found: Found | None) -> Iterator[Path]:
    """A private directory for crane's $DOCKER_CONFIG: config.json is `found` (a symlink)
    or `{}`; removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="fraud-push-docker-") as directory:
        target = Path(directory) / "config.json"
        if found is None:
            target.write_text("{}\n")
        else:
            os.symlink(found.path.resolve(), target)
        yield Path(directory)
