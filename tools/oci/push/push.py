"""Push OCI image layouts to an OCI registry.

    push --image NAME=LAYOUT_DIR [--image NAME=LAYOUT_DIR ...]
         (--repository REGISTRY/PATH | --repository-prefix REGISTRY/PREFIX)
         [--tag TAG ...] [--insecure-registry HOST[:PORT] ...] [--digest-file FILE]

With one image and --repository R, the image goes to R; with --repository-prefix P, each
image goes to P/NAME (one command pushes every service image). Tags default to `latest`.
Blobs the registry already has are skipped. For each tag, one line goes to stdout:

    pushed REGISTRY/PATH:TAG@sha256:HEX

Credentials come from where `docker login` and `podman login` put them: $REGISTRY_AUTH_FILE,
$DOCKER_CONFIG/config.json (or ~/.docker/config.json, with credHelpers/credsStore),
$XDG_RUNTIME_DIR/containers/auth.json, ~/.config/containers/auth.json. Loopback
registries (localhost, 127.0.0.1, [::1]) and those named by --insecure-registry are
reached over plain HTTP, every other one over HTTPS with the system's CA trust.

Why: our images are built as OCI layouts without a container engine, so pushing them
must not need one either: this speaks the OCI distribution API with the standard library.
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from libs.cli.flags import flag, non_negative_int, positive_float
from tools.oci.push.auth import auth_files, find_credentials, run_credential_helper
from tools.oci.push.client import PushError, RetryPolicy, Session, push_image
from tools.oci.push.layout import LayoutError, read_layout
from tools.oci.push.reference import (
    InvalidReference,
    Repository,
    check_tag,
    endpoint_for,
    parse_repository,
)
from tools.oci.push.transport import Transport

DEFAULT_TAG = "latest"


@dataclass(frozen=True)
class Target:
    """One image layout and the repository it goes to."""

    name: str
    layout: Path
    repository: Repository


@dataclass(frozen=True)
class Config:
    targets: tuple[Target, ...]
    tags: tuple[str, ...]
    insecure_registries: tuple[str, ...]
    digest_file: Path | None
    retry: RetryPolicy
    timeout: float


def split_list(text: str) -> list[str]:
    """An environment variable's list: items separated by spaces or commas."""
    return [item for item in re.split(r"[\s,]+", text) if item]


def parse_image(text: str) -> tuple[str, Path]:
    """`NAME=LAYOUT_DIR` → (NAME, path); a bare `LAYOUT_DIR` has the empty name."""
    name, sep, directory = text.partition("=")
    if not sep:
        return "", Path(text)
    if not directory:
        raise InvalidReference(f"--image {text!r}: expected NAME=LAYOUT_DIR")
    return name.strip(), Path(directory)


def resolve_layout(path: Path, environ: Mapping[str, str]) -> Path:
    """A relative layout path as given (the runfiles paths Bazel macros pass), or, under
    `bazel run`, relative to the caller's directory when only that exists."""
    caller = environ.get("BUILD_WORKING_DIRECTORY")
    if path.is_absolute() or path.exists() or not caller:
        return path
    candidate = Path(caller) / path
    return candidate if candidate.exists() else path


def plan_targets(
    images: Sequence[tuple[str, Path]], repository: str | None, prefix: str | None
) -> list[Target]:
    """Where each image goes: R itself (one image), or PREFIX/NAME for each."""
    if not images:
        raise InvalidReference("no image given: pass --image NAME=LAYOUT_DIR")
    if (repository is None) == (prefix is None):
        raise InvalidReference(
            "give exactly one of --repository REGISTRY/PATH (one image) and "
            "--repository-prefix REGISTRY/PREFIX (each image to PREFIX/NAME)"
        )
    if repository is not None:
        if len(images) > 1:
            names = ", ".join(name or str(path) for name, path in images)
            raise InvalidReference(
                f"--repository takes one image, got {len(images)} ({names}); "
                "use --repository-prefix to push each to PREFIX/NAME"
            )
        name, layout = images[0]
        return [Target(name, layout, parse_repository(repository))]
    assert prefix is not None
    base = parse_repository(prefix, allow_empty_path=True)
    targets: list[Target] = []
    seen: set[str] = set()
    for name, layout in images:
        if not name:
            raise InvalidReference(
                f"--image {layout}: --repository-prefix needs NAME=LAYOUT_DIR (NAME is "
                "the repository under the prefix)"
            )
        if name in seen:
            raise InvalidReference(f"--image name {name!r} is given twice")
        seen.add(name)
        targets.append(Target(name, layout, base.child(name)))
    return targets


def pushed_line(repository: Repository, tag: str, digest: str) -> str:
    return f"pushed {repository}:{tag}@{digest}"


def digest_file_text(results: Sequence[tuple[Target, str]]) -> str:
    """`sha256:HEX` for one image; `NAME sha256:HEX` per line for several."""
    if len(results) == 1:
        return results[0][1] + "\n"
    return "".join(f"{target.name} {digest}\n" for target, digest in results)


def write_digest_file(path: Path, results: Sequence[tuple[Target, str]]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(digest_file_text(results))
    except OSError as err:
        raise PushError(
            f"pushed, but cannot write the digest file {path}: {err.strerror}"
        ) from None


def _repeated(
    parser: argparse.ArgumentParser, name: str, *, env: str, metavar: str, help: str, default: str
) -> None:
    parser.add_argument(
        name,
        action="append",
        metavar=metavar,
        help=f"{help}; repeatable [env {env}, space-separated; default: {default}]",
    )


def build_parser(environ: Mapping[str, str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="push", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    _repeated(
        parser,
        "--image",
        env="FRAUD_PUSH_IMAGES",
        metavar="NAME=LAYOUT_DIR",
        help="an OCI image layout directory and its name (the repository under the prefix)",
        default="none",
    )
    parser.add_argument(
        "--repository",
        metavar="REGISTRY/PATH",
        help="push the one image here [env FRAUD_PUSH_REPOSITORY]",
    )
    parser.add_argument(
        "--repository-prefix",
        metavar="REGISTRY/PREFIX",
        help="push each image to PREFIX/NAME [env FRAUD_PUSH_REPOSITORY_PREFIX]",
    )
    _repeated(
        parser,
        "--tag",
        env="FRAUD_PUSH_TAGS",
        metavar="TAG",
        help="tag to push the manifest under",
        default=DEFAULT_TAG,
    )
    _repeated(
        parser,
        "--insecure-registry",
        env="FRAUD_PUSH_INSECURE_REGISTRIES",
        metavar="HOST[:PORT]",
        help="registry to reach over plain HTTP (loopback ones always are)",
        default="none",
    )
    flag(
        parser,
        "--digest-file",
        env="FRAUD_PUSH_DIGEST_FILE",
        default=None,
        help="also write the manifest digest here (`sha256:HEX`; `NAME sha256:HEX` lines "
        "for several images); relative to the caller's directory under `bazel run`",
        environ=environ,
    )
    flag(
        parser,
        "--retries",
        env="FRAUD_PUSH_RETRIES",
        default=3,
        type=non_negative_int,
        help="retries of a request after a connection error, 5xx or 429 (backoff 1, 2, 4 s...)",
        environ=environ,
    )
    flag(
        parser,
        "--timeout",
        env="FRAUD_PUSH_TIMEOUT",
        default=120.0,
        type=positive_float,
        help="seconds without progress on a connection before it counts as failed",
        environ=environ,
    )
    return parser


def parse_args(argv: Sequence[str] | None, environ: Mapping[str, str]) -> Config:
    """The command line, with each missing flag taken from its environment variable.
    --repository and --repository-prefix are one choice: a command-line one wins over
    both variables."""
    parser = build_parser(environ)
    ns = parser.parse_args(argv)
    try:
        image_args = (
            ns.image if ns.image is not None else split_list(environ.get("FRAUD_PUSH_IMAGES", ""))
        )
        images = [
            (name, resolve_layout(path, environ))
            for name, path in (parse_image(text) for text in image_args)
        ]
        repository, prefix = ns.repository, ns.repository_prefix
        if repository is None and prefix is None:
            repository = environ.get("FRAUD_PUSH_REPOSITORY") or None
            prefix = environ.get("FRAUD_PUSH_REPOSITORY_PREFIX") or None
        targets = plan_targets(images, repository, prefix)
        tags = ns.tag if ns.tag is not None else split_list(environ.get("FRAUD_PUSH_TAGS", ""))
        tags = [check_tag(tag) for tag in dict.fromkeys(tags or [DEFAULT_TAG])]
    except InvalidReference as err:
        parser.error(str(err))
    insecure = (
        ns.insecure_registry
        if ns.insecure_registry is not None
        else split_list(environ.get("FRAUD_PUSH_INSECURE_REGISTRIES", ""))
    )
    digest_file = None
    if ns.digest_file:
        digest_file = Path(ns.digest_file)
        if not digest_file.is_absolute() and environ.get("BUILD_WORKING_DIRECTORY"):
            digest_file = Path(environ["BUILD_WORKING_DIRECTORY"]) / digest_file
    return Config(
        targets=tuple(targets),
        tags=tuple(tags),
        insecure_registries=tuple(insecure),
        digest_file=digest_file,
        retry=RetryPolicy(attempts=ns.retries + 1),
        timeout=ns.timeout,
    )


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    environ = os.environ if environ is None else environ
    config = parse_args(argv, environ)

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    home = Path(environ.get("HOME") or os.path.expanduser("~"))
    files = auth_files(environ, home)
    lookup = functools.partial(find_credentials, files=files, run_helper=run_credential_helper)
    transport = Transport(timeout=config.timeout)
    results: list[tuple[Target, str]] = []
    try:
        # Every layout is read (structure, blobs present at their sizes) before anything
        # is sent; blob digests are checked as they stream.
        images = [(target, read_layout(target.layout)) for target in config.targets]
        for target, image in images:
            repo = target.repository
            session = Session(
                repo,
                endpoint_for(repo.registry, config.insecure_registries),
                transport,
                lookup,
                files,
            )
            digest = push_image(session, image, config.tags, config.retry, log)
            for tag in config.tags:
                print(pushed_line(repo, tag, digest), flush=True)
            results.append((target, digest))
        if config.digest_file is not None:
            write_digest_file(config.digest_file, results)
    except (LayoutError, PushError) as err:
        print(f"push: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("push: interrupted", file=sys.stderr)
        return 130
    finally:
        transport.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
