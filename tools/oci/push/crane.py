"""Running crane: finding the binary, pushing one layout, adding tags, and turning its
failures into one clear line.

Why: crane (go-containerregistry) speaks the distribution API, streams blobs, skips the
ones a registry has and answers Basic and Bearer auth; the push only has to call it with
the right arguments and environment. Its progress (`pushed blob: ...`, `existing blob:
...`) goes through to stderr as it comes.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

DEFAULT_BINARY = "/usr/bin/crane"  # Debian's package, in the toolchain root
DIGEST_RE = re.compile(r"@(sha256:[0-9a-f]{64})\s*$")


class CraneError(Exception):
    """crane failed or is missing; the message is its own last error line."""

    def __init__(self, message: str, unauthorized: bool = False) -> None:
        super().__init__(message)
        self.unauthorized = unauthorized


def locate(environ: Mapping[str, str]) -> str:
    """$FRAUD_PUSH_CRANE, else `crane` on PATH, else Debian's /usr/bin/crane."""
    found = environ.get("FRAUD_PUSH_CRANE") or shutil.which("crane", path=environ.get("PATH"))
    found = found or (DEFAULT_BINARY if Path(DEFAULT_BINARY).exists() else None)
    if not found:
        raise CraneError(
            "crane is not installed: tools/bazel's toolchain root has it (Debian sid's "
            "`crane`); elsewhere `go install github.com/google/go-containerregistry/cmd/"
            "crane@v0.20.7`, or set FRAUD_PUSH_CRANE to the binary"
        )
    return found


@dataclass(frozen=True)
class Crane:
    binary: str
    docker_config: Path  # crane's $DOCKER_CONFIG
    environ: Mapping[str, str]
    insecure: bool = False  # --insecure: plain HTTP allowed, TLS not verified
    log: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True)

    def run(self, args: Sequence[str]) -> str:
        """crane ARGS; its stdout; stderr goes through to `log` line by line."""
        env = {k: v for k, v in self.environ.items() if k != "REGISTRY_AUTH_FILE"}
        env["DOCKER_CONFIG"] = str(self.docker_config)
        command = [self.binary, *(["--insecure"] if self.insecure else []), *args]
        try:
            process = subprocess.Popen(
                command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        except OSError as err:
            raise CraneError(f"cannot run {self.binary}: {err.strerror}") from None
        assert process.stderr is not None and process.stdout is not None
        errors: list[str] = []
        for line in process.stderr:
            line = line.rstrip("\n")
            self.log(f"  crane: {line}")
            if line.startswith("Error: "):
                errors.append(line.removeprefix("Error: "))
        out = process.stdout.read()
        if process.wait() != 0:
            message = errors[-1] if errors else f"crane exited with {process.returncode}"
            unauthorized = "UNAUTHORIZED" in message or "401 Unauthorized" in message
            raise CraneError(message, unauthorized)
        return out

    def push(self, layout: Path, reference: str) -> str:
        """Push the layout's one image to REGISTRY/PATH:TAG; the manifest digest."""
        out = self.run(["push", str(layout), reference])
        match = DIGEST_RE.search(out)
        if match is None:
            raise CraneError(f"crane push printed no digest: {out.strip()!r}")
        return match.group(1)

    def tag(self, image: str, tag: str) -> None:
        """Tag REGISTRY/PATH@DIGEST (already pushed) as TAG as well."""
        self.run(["tag", image, tag])
