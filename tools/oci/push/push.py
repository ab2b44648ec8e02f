"""Push OCI image layouts to an OCI registry, with crane.

    push --image NAME=LAYOUT_DIR [--image NAME=LAYOUT_DIR ...]
         (--repository REGISTRY/PATH | --repository-prefix REGISTRY/PREFIX)
         [--tag TAG ...] [--insecure-registry HOST[:PORT] ...]
         [--token-realm-host HOST ...] [--digest-file FILE]

With one image and --repository R, the image goes to R; with --repository-prefix P, each
image goes to P/NAME (one command pushes every service image). Tags default to `latest`.
Blobs the registry already has are skipped. For each tag, one line goes to stdout:

    pushed REGISTRY/PATH:TAG@sha256:HEX

Credentials come from where `docker login` and `podman login` put them: $REGISTRY_AUTH_FILE,
$DOCKER_CONFIG/config.json, ~/.docker/config.json (with credHelpers/credsStore),
$XDG_RUNTIME_DIR/containers/auth.json, ~/.config/containers/auth.json: the first that
names the registry. They go only to the registry's host, or to a Bearer token realm over
HTTPS on that host (or one allowed by --token-realm-host); over plain HTTP only to
loopback. Registries named by --insecure-registry are reached without TLS verification
or over plain HTTP, and get no credentials unless they are loopback.

Why: our images are built as OCI layouts without a container engine; crane
(go-containerregistry, in the toolchain root) pushes them without one. This wrapper maps
the arguments, chooses the credential file and guards where credentials may go.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from libs.cli.flags import flag
from tools.oci.push import credentials, guard
from tools.oci.push.crane import Crane, CraneError, locate
from tools.oci.push.reference import (
    InvalidReference,
    Repository,
    canonical_registry,
    check_repository_length,
    check_tag,
    crane_tries_plain_http,
    is_loopback,
    parse_repository,
)

DEFAULT_TAG = "latest"
Log = Callable[[str], None]


class PushError(Exception):
    """A push that failed; the message names the repository and the reason."""


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
    token_realm_hosts: tuple[str, ...]
    digest_file: Path | None


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
        return [Target(name, layout, check_repository_length(parse_repository(repository)))]
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
        targets.append(Target(name, layout, check_repository_length(base.child(name))))
    return targets


def layout_digest(layout: Path) -> str:
    """The digest of the layout's one manifest (what crane will push), checked before
    anything is sent."""
    index_path = layout / "index.json"
    try:
        index = json.loads(index_path.read_text())
        manifests = index["manifests"]
        digest = manifests[0]["digest"] if len(manifests) == 1 else None
    except FileNotFoundError:
        raise PushError(f"{layout} is not an OCI image layout (no index.json)") from None
    except (OSError, ValueError, KeyError, TypeError, IndexError) as err:
        raise PushError(f"{index_path} is unreadable: {err}") from None
    if not isinstance(digest, str) or not digest.startswith("sha256:"):
        raise PushError(f"{index_path} must list exactly one sha256 manifest")
    if not (layout / "blobs" / "sha256" / digest.removeprefix("sha256:")).is_file():
        raise PushError(f"{layout}: the manifest {digest} is missing; rebuild the image")
    return digest


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
        help="registry to reach over plain HTTP or unverified TLS (crane --insecure); it "
        "gets no credentials unless it is loopback",
        default="none",
    )
    _repeated(
        parser,
        "--token-realm-host",
        env="FRAUD_PUSH_TOKEN_REALM_HOSTS",
        metavar="HOST",
        help="another host whose HTTPS token realm may receive the registry's credentials "
        "(e.g. gitlab.com for registry.gitlab.com)",
        default="the registry's own host",
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
    return parser


def _listed(given: list[str] | None, environ: Mapping[str, str], env: str) -> list[str]:
    return given if given is not None else split_list(environ.get(env, ""))


def parse_args(argv: Sequence[str] | None, environ: Mapping[str, str]) -> Config:
    """The command line, with each missing flag taken from its environment variable.
    --repository and --repository-prefix are one choice: a command-line one wins over
    both variables."""
    parser = build_parser(environ)
    ns = parser.parse_args(argv)
    try:
        images = [
            (name, resolve_layout(path, environ))
            for name, path in map(parse_image, _listed(ns.image, environ, "FRAUD_PUSH_IMAGES"))
        ]
        repository, prefix = ns.repository, ns.repository_prefix
        if repository is None and prefix is None:
            repository = environ.get("FRAUD_PUSH_REPOSITORY") or None
            prefix = environ.get("FRAUD_PUSH_REPOSITORY_PREFIX") or None
        targets = plan_targets(images, repository, prefix)
        tags = _listed(ns.tag, environ, "FRAUD_PUSH_TAGS")
        tags = [check_tag(tag) for tag in dict.fromkeys(tags or [DEFAULT_TAG])]
    except InvalidReference as err:
        parser.error(str(err))
    digest_file = None
    if ns.digest_file:
        digest_file = Path(ns.digest_file)
        if not digest_file.is_absolute() and environ.get("BUILD_WORKING_DIRECTORY"):
            digest_file = Path(environ["BUILD_WORKING_DIRECTORY"]) / digest_file
    return Config(
        targets=tuple(targets),
        tags=tuple(tags),
        insecure_registries=tuple(
            _listed(ns.insecure_registry, environ, "FRAUD_PUSH_INSECURE_REGISTRIES")
        ),
        token_realm_hosts=tuple(
            _listed(ns.token_realm_host, environ, "FRAUD_PUSH_TOKEN_REALM_HOSTS")
        ),
        digest_file=digest_file,
    )


def is_insecure(registry: str, listed: Sequence[str]) -> bool:
    return canonical_registry(registry) in {canonical_registry(r.strip()) for r in listed}


def choose_credentials(
    registry: str, config: Config, files: list[Path], log: Log, asker: guard.Asker = guard.ask
) -> credentials.Found | None:
    """The credential file crane may use for `registry`, after the realm guard; None
    for an anonymous push. Also refuses a private address or `.local` name (which crane
    would try over plain HTTP by itself) that answers only over plain HTTP, unless it is
    an --insecure-registry."""
    try:
        found = credentials.find(registry, files)
    except credentials.CredentialError as err:
        raise PushError(str(err)) from None
    insecure = is_insecure(registry, config.insecure_registries)
    loopback = is_loopback(registry)
    if found is not None and insecure and not loopback:
        log(
            f"push: {registry} is an --insecure-registry: pushing without the credentials "
            f"in {found.path} (they are never sent without verified TLS, except to loopback)"
        )
        found = None
    if found is None:
        if insecure or loopback or not crane_tries_plain_http(registry):
            return None
        try:
            answer = guard.probe(registry, False, asker=asker)
        except guard.Refused as err:
            raise PushError(f"{registry}: {err}") from None
        if answer.url.startswith("http:"):
            raise PushError(
                f"{registry} answers only over plain HTTP; name it with --insecure-registry "
                f"{registry} to push to it that way"
            )
        return None
    try:
        answer = guard.probe(registry, insecure or loopback, asker=asker)
        guard.check(registry, answer, config.token_realm_hosts)
    except guard.Refused as err:
        raise PushError(f"refusing to push with the credentials in {found.path}: {err}") from None
    return found


def explain(
    err: CraneError, registry: str, found: credentials.Found | None, files: list[Path]
) -> str:
    if not err.unauthorized:
        return str(err)
    if found is None:
        looked = ", ".join(str(path) for path in files)
        return f"no credentials for {registry} were found (looked in {looked}): {err}"
    return f"{registry} refused the credentials from {found.path}: {err}"


def push_target(
    target: Target,
    config: Config,
    files: list[Path],
    binary: str,
    environ: Mapping[str, str],
    log: Log,
) -> str:
    repo = target.repository
    expected = layout_digest(target.layout)
    found = choose_credentials(repo.registry, config, files, log)
    with credentials.crane_config(found) as docker_config:
        crane = Crane(
            binary,
            docker_config,
            environ,
            insecure=is_insecure(repo.registry, config.insecure_registries)
            or is_loopback(repo.registry),
            log=log,
        )
        first, *others = config.tags
        try:
            digest = crane.push(target.layout, f"{repo}:{first}")
            for tag in others:
                crane.tag(f"{repo}@{digest}", tag)
        except CraneError as err:
            raise PushError(f"{repo}: {explain(err, repo.registry, found, files)}") from None
    if digest != expected:
        raise PushError(f"{repo}: crane pushed {digest}, but the layout's manifest is {expected}")
    return digest


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    environ = os.environ if environ is None else environ
    config = parse_args(argv, environ)

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    home = Path(environ.get("HOME") or os.path.expanduser("~"))
    files = credentials.auth_files(environ, home)
    results: list[tuple[Target, str]] = []
    try:
        binary = locate(environ)
        for target in config.targets:  # every layout is checked before anything is sent
            layout_digest(target.layout)
        for target in config.targets:
            digest = push_target(target, config, files, binary, environ, log)
            for tag in config.tags:
                print(pushed_line(target.repository, tag, digest), flush=True)
            results.append((target, digest))
        if config.digest_file is not None:
            write_digest_file(config.digest_file, results)
    except (PushError, CraneError) as err:
        print(f"push: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("push: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
