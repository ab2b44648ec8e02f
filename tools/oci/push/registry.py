"""A real OCI registry for tests: Debian's `docker-registry` (CNCF distribution) on a free
loopback port, storing on disk in a temporary directory.

Why: the push client must be proved against a registry that really implements the
distribution API and its authentication (htpasswd Basic, or Bearer tokens from a token
server), not a fake that shares our reading of the spec. Started as a child process with
a readiness check against a deadline; its log is shown when it fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from infra.components.process import ComponentError, ManagedProcess, free_port, log_tail

DEFAULT_BINARY = "/usr/bin/docker-registry"


@dataclass(frozen=True)
class TokenAuth:
    """Bearer token auth: where clients get tokens and what the registry trusts."""

    realm: str
    service: str
    issuer: str
    root_cert_bundle: Path


@dataclass
class Registry:
    """A running registry; `address` is `127.0.0.1:PORT` as clients write it."""

    address: str
    root: Path
    process: ManagedProcess = field(repr=False)
    users: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def log_tail(self, lines: int = 60) -> str:
        return log_tail(self.process.log_path, lines)

    def stop(self) -> None:
        self.process.stop(timeout=10)


def registry_binary() -> str:
    found = os.environ.get("DOCKER_REGISTRY_BIN") or shutil.which("docker-registry")
    found = found or (DEFAULT_BINARY if Path(DEFAULT_BINARY).exists() else None)
    if not found:
        raise ComponentError(
            "docker-registry is not installed (expected /usr/bin/docker-registry): "
            "apt-get install docker-registry, or set DOCKER_REGISTRY_BIN"
        )
    return found


def bcrypt_hash(password: str, cost: int = 4) -> str:
    """A bcrypt hash as htpasswd files hold them (the only kind docker-registry accepts),
    from the C library's crypt(3) (libxcrypt). The registry checks it on every request,
    so tests use the cheapest cost (4: well under a millisecond; the default 12 costs
    about 0.2 s a request)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # crypt leaves Python in 3.13
        import crypt

        hashed = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=2**cost))
    if not hashed or not hashed.startswith("$2"):
        raise ComponentError(f"this system's crypt(3) cannot make bcrypt hashes (got {hashed!r})")
    return hashed


def write_htpasswd(path: Path, users: Mapping[str, str]) -> None:
    path.write_text("".join(f"{user}:{bcrypt_hash(pw)}\n" for user, pw in users.items()))


def registry_config(
    port: int,
    storage: Path,
    *,
    htpasswd: Path | None = None,
    token: TokenAuth | None = None,
    relative_urls: bool = False,
) -> str:
    """The registry's configuration as JSON (which its YAML parser reads as is)."""
    config: dict[str, object] = {
        "version": "0.1",
        "log": {"level": "info", "formatter": "text", "accesslog": {"disabled": False}},
        "storage": {
            "filesystem": {"rootdirectory": str(storage)},
            "delete": {"enabled": True},
            "maintenance": {"uploadpurging": {"enabled": False}},
        },
        "http": {
            "addr": f"127.0.0.1:{port}",
            "secret": "test-only-upload-state-secret",
            "relativeurls": relative_urls,
        },
        "health": {"storagedriver": {"enabled": False}},
    }
    if htpasswd is not None and token is not None:
        raise ValueError("choose htpasswd or token auth, not both")
    if htpasswd is not None:
        config["auth"] = {"htpasswd": {"realm": "fraud-test-registry", "path": str(htpasswd)}}
    if token is not None:
        config["auth"] = {
            "token": {
                "realm": token.realm,
                "service": token.service,
                "issuer": token.issuer,
                "rootcertbundle": str(token.root_cert_bundle),
            }
        }
    return json.dumps(config, indent=2)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/v2/", timeout=2):
            return True
    except urllib.error.HTTPError as err:
        return err.code == 401  # up, and asking for credentials
    except OSError:
        return False


def start_registry(
    workdir: Path,
    *,
    users: Mapping[str, str] | None = None,
    token: TokenAuth | None = None,
    relative_urls: bool = False,
    timeout: float = 30.0,
) -> Registry:
    """Start a registry whose files live under `workdir`; htpasswd auth when `users`."""
    workdir.mkdir(parents=True, exist_ok=True)
    htpasswd = None
    if users:
        htpasswd = workdir / "htpasswd"
        write_htpasswd(htpasswd, users)
    port = free_port()
    config_path = workdir / "config.yml"
    config_path.write_text(
        registry_config(
            port,
            workdir / "storage",
            htpasswd=htpasswd,
            token=token,
            relative_urls=relative_urls,
        )
    )
    # REGISTRY_* variables would override the file (podman's REGISTRY_AUTH_FILE too).
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    process = ManagedProcess(
        name="docker-registry",
        args=[registry_binary(), "serve", str(config_path)],
        log_path=workdir / "registry.log",
        env=env,
    )
    process.start()
    registry = Registry(f"127.0.0.1:{port}", workdir, process, dict(users or {}))
    try:
        process.wait_until(lambda: _answers(registry.url), timeout, "answering on /v2/")
    except BaseException:
        process.stop(timeout=5)
        raise
    return registry


@contextlib.contextmanager
def running_registry(
    workdir: Path,
    *,
    users: Mapping[str, str] | None = None,
    token: TokenAuth | None = None,
    relative_urls: bool = False,
    timeout: float = 30.0,
) -> Iterator[Registry]:
    """`start_registry`, stopped on exit; when the body fails, the registry's log goes to
    stderr (pytest shows it with the failure)."""
    registry = start_registry(
        workdir, users=users, token=token, relative_urls=relative_urls, timeout=timeout
    )
    try:
        yield registry
    except BaseException:
        print(f"--- docker-registry log ({registry.process.log_path}) ---", file=sys.stderr)
        print(registry.log_tail(), file=sys.stderr)
        raise
    finally:
        registry.stop()
