"""Runs our service images under podman (or docker) as if they were local processes.

Why: the images must be proven with the same pipeline, ports and checks as the local
stack, so a container is started as a `ManagedProcess` running `podman run` in the
foreground on the host network: its log, its readiness checks and its SIGTERM (passed
on to the service by `run`'s signal proxy) work exactly like a local binary's.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from infra.components.process import ComponentError

# Variables a service reads; the rest of the caller's environment stays outside.
FORWARDED_PREFIXES = ("FRAUD_", "KAFKA_", "SPARK_", "PG")


def engine() -> str:
    """The container engine: FRAUD_CONTAINER_ENGINE, else podman, else docker.

    Also puts the sbin folders on PATH if missing (Bazel tests run with a short one):
    podman's network helper runs iptables from there."""
    path = os.environ.get("PATH", "").split(os.pathsep)
    missing = [d for d in ("/usr/local/sbin", "/usr/sbin", "/sbin") if d not in path]
    if missing:
        os.environ["PATH"] = os.pathsep.join(path + missing)
    chosen = os.environ.get("FRAUD_CONTAINER_ENGINE")
    for candidate in [chosen] if chosen else ["podman", "docker"]:
        path = shutil.which(candidate)
        if path:
            return path
    raise ComponentError(
        "no container engine: install podman and runc (apt-get install podman runc; "
        "tools/bazel's toolchain root has them) or set FRAUD_CONTAINER_ENGINE"
    )


def image_id(tarball: Path) -> str:
    """The image ID (config digest) a loaded tarball will have; tags play no part."""
    with tarfile.open(tarball) as tar:
        [entry] = json.load(tar.extractfile("manifest.json"))
    return entry["Config"].rsplit("/", 1)[1]


def load(tarball: Path) -> str:
    """Loads an image tarball; returns its image ID."""
    result = subprocess.run(
        [engine(), "load", "-i", str(tarball)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise ComponentError(f"loading {tarball.name} failed: {result.stderr.strip()[-2000:]}")
    return image_id(tarball)


def run_argv(
    name: str,
    image: str,
    env: Mapping[str, str],
    args: Sequence[str] = (),
    volumes: Mapping[Path, str] | None = None,
) -> list[str]:
    """`podman run` in the foreground, on the host network, removed when it stops."""
    argv = [engine(), "run", "--rm", "--name", name, "--network", "host", "--stop-timeout", "30"]
    for key, value in sorted(env.items()):
        if key.startswith(FORWARDED_PREFIXES):
            argv += ["--env", f"{key}={value}"]
    for host, inside in (volumes or {}).items():
        argv += ["--volume", f"{host}:{inside}"]
    return [*argv, image, *args]


def remove(name: str) -> None:
    """Removes a container left behind by a killed test (no error if there is none)."""
    subprocess.run([engine(), "rm", "--force", "--ignore", name], capture_output=True, check=False)
