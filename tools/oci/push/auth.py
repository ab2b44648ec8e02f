"""Registry authentication: reading challenges, finding credentials, asking for tokens.

Why: a push must work with the credentials people already have (`docker login`,
`podman login`, credential helpers) against registries that use Basic or Bearer token
auth, without a third-party client. Everything here is pure except the credential-helper
call, which is passed in so tests need neither a network nor a helper. Secrets never
appear in a repr or a message: only where they came from.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from tools.oci.push.reference import Repository, canonical_registry

CLIENT_ID = "fraud-oci-push"


class AuthError(Exception):
    """Authentication failed or could not be attempted; the message says which registry,
    which credential source and what to do."""


# --- WWW-Authenticate (RFC 9110 §11.6.1) -------------------------------------------------

_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_SCHEME_RE = re.compile(_TOKEN)
_QUOTED = r'"((?:[^"\\]|\\.)*)"'
_QUOTED_RE = re.compile(_QUOTED)
# A bare value is a token by the RFC; be lenient and take anything up to a comma.
_PARAM_RE = re.compile(rf'({_TOKEN})[ \t]*=[ \t]*(?:{_QUOTED}|([^\s,"]+))')
_TOKEN68_RE = re.compile(r"[A-Za-z0-9._~+/-]+=*(?=[ \t]*(?:,|$))")


@dataclass(frozen=True)
class Challenge:
    """One challenge of a WWW-Authenticate header: scheme (lowercase) and parameters
    (names lowercase)."""

    scheme: str
    params: Mapping[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        shown = ", ".join(f'{k}="{v}"' for k, v in self.params.items())
        return f"{self.scheme.capitalize()} {shown}".strip()


def parse_www_authenticate(header: str) -> list[Challenge]:
    """All challenges in `header`, e.g. `Bearer realm="https://a/token",service="a",
    scope="repository:x:pull,push"`. Commas inside quoted values are kept."""
    challenges: list[Challenge] = []
    pos, end = 0, len(header)
    while True:
        while pos < end and header[pos] in " \t,":
            pos += 1
        if pos >= end:
            return challenges
        scheme = _SCHEME_RE.match(header, pos)
        if scheme is None:  # not a scheme: skip it rather than fail the push
            stray = _QUOTED_RE.match(header, pos)
            pos = stray.end() if stray else pos + 1
            continue
        pos = scheme.end()
        params: dict[str, str] = {}
        while True:
            resume = pos
            while pos < end and header[pos] in " \t,":
                pos += 1
            param = _PARAM_RE.match(header, pos)
            if param is not None:
                name, quoted, bare = param.groups()
                value = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare
                params[name.lower()] = value
                pos = param.end()
                continue
            token68 = _TOKEN68_RE.match(header, pos) if not params else None
            if token68 is not None and header[resume:pos].strip(" \t") == "":
                params["token68"] = token68.group()
                pos = token68.end()
                continue
            pos = resume  # the next challenge starts here
            break
        challenges.append(Challenge(scheme.group().lower(), params))


def choose_challenge(challenges: Sequence[Challenge]) -> Challenge | None:
    """Bearer when offered (scoped, short-lived), else Basic; None if neither."""
    for scheme in ("bearer", "basic"):
        for challenge in challenges:
            if challenge.scheme == scheme:
                return challenge
    return None


# --- Credentials -------------------------------------------------------------------------


@dataclass(frozen=True)
class Credentials:
    """A username and password (or an identity token) and where they were found."""

    username: str
    password: str = field(repr=False)
    source: str = ""
    identity_token: str | None = field(default=None, repr=False)

    def basic_header(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")


# (helper name, server URL) -> (username, secret), or None when it has none for the server.
HelperRunner = Callable[[str, str], tuple[str, str] | None]


def auth_files(environ: Mapping[str, str], home: Path) -> list[Path]:
    """The files credentials are looked up in, first match wins: podman's
    $REGISTRY_AUTH_FILE, docker's $DOCKER_CONFIG/config.json (or ~/.docker/config.json),
    podman's $XDG_RUNTIME_DIR/containers/auth.json and ~/.config/containers/auth.json."""
    files: list[Path] = []
    if environ.get("REGISTRY_AUTH_FILE"):
        files.append(Path(environ["REGISTRY_AUTH_FILE"]))
    docker_dir = (
        Path(environ["DOCKER_CONFIG"]) if environ.get("DOCKER_CONFIG") else home / ".docker"
    )
    files.append(docker_dir / "config.json")
    if environ.get("XDG_RUNTIME_DIR"):
        files.append(Path(environ["XDG_RUNTIME_DIR"]) / "containers" / "auth.json")
    config_home = Path(environ.get("XDG_CONFIG_HOME") or home / ".config")
    files.append(config_home / "containers" / "auth.json")
    return list(dict.fromkeys(files))


def find_credentials(
    repo: Repository, files: Sequence[Path], run_helper: HelperRunner
) -> Credentials | None:
    """The first credentials for `repo` in `files` (see `auth_files`)."""
    for path in files:
        try:
            config = json.loads(path.read_bytes())
        except FileNotFoundError:
            continue
        except OSError as err:
            raise AuthError(f"cannot read credentials file {path}: {err.strerror}") from None
        except ValueError as err:
            raise AuthError(f"credentials file {path} is not valid JSON: {err}") from None
        if not isinstance(config, dict):
            raise AuthError(f"credentials file {path}: expected a JSON object")
        found = credentials_from_config(config, repo, str(path), run_helper)
        if found is not None:
            return found
    return None


def normalize_auth_key(key: str) -> tuple[str, str]:
    """A config `auths`/`credHelpers` key → (registry, namespace).

    Docker writes URLs (`https://host/v1/`: the path is not a namespace); podman may key
    by `host/namespace` to keep credentials per repository subtree.
    """
    key = key.strip()
    had_scheme = False
    for scheme in ("https://", "http://"):
        if key.lower().startswith(scheme):
            key, had_scheme = key[len(scheme) :], True
    host, _, rest = key.strip("/").partition("/")
    namespace = "" if had_scheme or rest in ("v1", "v2") else rest
    return canonical_registry(host), namespace


def credentials_from_config(
    config: Mapping[str, Any], repo: Repository, source: str, run_helper: HelperRunner
) -> Credentials | None:
    """Docker's order: a credential helper for this registry, then the default store
    (`credsStore`), then the inline `auths` entry (most specific podman namespace first)."""
    registry = canonical_registry(repo.registry)
    server = _helper_server(registry)
    helpers = config.get("credHelpers")
    if isinstance(helpers, dict):
        for key, helper in helpers.items():
            if normalize_key_matches(key, registry, repo.path) and isinstance(helper, str):
                return _from_helper(helper, server, f"{source} credHelpers", run_helper)
    entry_key, entry = _best_auths_entry(config.get("auths"), registry, repo.path)
    store = config.get("credsStore")
    if isinstance(store, str) and store:
        found = _from_helper(store, entry_key or server, f"{source} credsStore", run_helper)
        if found is not None:
            return found
    if entry is not None:
        return _from_entry(entry, f"{source} auths[{entry_key!r}]")
    return None


def normalize_key_matches(key: str, registry: str, path: str) -> bool:
    host, namespace = normalize_auth_key(key)
    if host != registry:
        return False
    return not namespace or path == namespace or path.startswith(namespace + "/")


def _best_auths_entry(
    auths: Any, registry: str, path: str
) -> tuple[str | None, Mapping[str, Any] | None]:
    if not isinstance(auths, dict):
        return None, None
    best: tuple[int, str, Mapping[str, Any]] | None = None
    for key, entry in auths.items():
        if not isinstance(entry, dict) or not normalize_key_matches(key, registry, path):
            continue
        specificity = len(normalize_auth_key(key)[1])
        if best is None or specificity > best[0]:
            best = (specificity, key, entry)
    return (best[1], best[2]) if best else (None, None)


def _from_entry(entry: Mapping[str, Any], source: str) -> Credentials | None:
    identity = entry.get("identitytoken")
    if isinstance(identity, str) and identity:
        username = entry.get("username")
        return Credentials(
            username if isinstance(username, str) and username else "<token>",
            "",
            source,
            identity_token=identity,
        )
    encoded = entry.get("auth")
    if isinstance(encoded, str) and encoded:
        try:
            decoded = base64.b64decode(encoded, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise AuthError(f"{source}: 'auth' is not base64 of 'user:password'") from None
        username, sep, password = decoded.partition(":")
        if not sep:
            raise AuthError(f"{source}: 'auth' decodes to no 'user:password' pair")
        return Credentials(username, password, source)
    username, password = entry.get("username"), entry.get("password")
    if isinstance(username, str) and isinstance(password, str) and username:
        return Credentials(username, password, source)
    return None  # e.g. `{}`: a placeholder for a credential store


def _helper_server(registry: str) -> str:
    """What docker passes its helpers: the host, or Docker Hub's historical URL."""
    return "https://index.docker.io/v1/" if registry == "docker.io" else registry


def _from_helper(
    helper: str, server: str, source: str, run_helper: HelperRunner
) -> Credentials | None:
    found = run_helper(helper, server)
    if found is None:
        return None
    username, secret = found
    where = f"{source} (docker-credential-{helper})"
    if username == "<token>":  # helpers hand out identity tokens this way
        return Credentials(username, "", where, identity_token=secret)
    return Credentials(username, secret, where)


def run_credential_helper(helper: str, server: str) -> tuple[str, str] | None:
    """`docker-credential-HELPER get` with the server on stdin (the helper protocol)."""
    executable = f"docker-credential-{helper}"
    try:
        proc = subprocess.run(
            [executable, "get"], input=server.encode(), capture_output=True, timeout=60
        )
    except FileNotFoundError:
        raise AuthError(
            f"credential helper {executable} (configured for {server}) is not on PATH"
        ) from None
    except subprocess.TimeoutExpired:
        raise AuthError(f"credential helper {executable} did not answer in 60 s") from None
    if proc.returncode != 0:
        said = (proc.stdout + proc.stderr).decode(errors="replace").strip()
        if "credentials not found" in said.lower():
            return None
        raise AuthError(
            f"credential helper {executable} failed for {server} "
            f"(exit {proc.returncode}): {said[:300]}"
        )
    try:
        answer = json.loads(proc.stdout)
        return str(answer["Username"]), str(answer["Secret"])
    except (ValueError, KeyError, TypeError):
        raise AuthError(
            f"credential helper {executable} answered without Username and Secret"
        ) from None


# --- Bearer tokens (the distribution token protocol) -------------------------------------


@dataclass(frozen=True)
class TokenRequest:
    """The HTTP request that asks a token endpoint for a token."""

    method: str
    url: str
    headers: Mapping[str, str] = field(repr=False)
    body: bytes | None = field(default=None, repr=False)


def scopes_for(challenge: Challenge, repo_path: str) -> list[str]:
    """What the challenge asks for plus what a push needs: pull and push on the repo."""
    asked = challenge.params.get("scope", "").split()
    return list(dict.fromkeys([*asked, f"repository:{repo_path}:pull,push"]))


def token_request(
    challenge: Challenge, scopes: Sequence[str], credentials: Credentials | None
) -> TokenRequest:
    """GET realm?service=&scope= (Basic credentials if any), or, with an identity token,
    the OAuth2 refresh-token POST."""
    realm = challenge.params.get("realm")
    if not realm:
        raise AuthError(f"the registry's Bearer challenge has no realm: {challenge}")
    service = challenge.params.get("service")
    if credentials is not None and credentials.identity_token:
        form = [("grant_type", "refresh_token"), ("refresh_token", credentials.identity_token)]
        form += [("client_id", CLIENT_ID)]
        if service:
            form.append(("service", service))
        if scopes:
            form.append(("scope", " ".join(scopes)))
        return TokenRequest(
            "POST",
            realm,
            {"Content-Type": "application/x-www-form-urlencoded"},
            urlencode(form).encode(),
        )
    query: list[tuple[str, str]] = []
    if service:
        query.append(("service", service))
    query += [("scope", scope) for scope in scopes]
    headers: dict[str, str] = {}
    if credentials is not None:
        query.append(("account", credentials.username))
        headers["Authorization"] = credentials.basic_header()
    separator = "&" if "?" in realm else "?"
    url = f"{realm}{separator}{urlencode(query)}" if query else realm
    return TokenRequest("GET", url, headers)


def parse_token_response(body: bytes, realm: str) -> str:
    """The token from a token endpoint's JSON answer (`token`, or OAuth2 `access_token`)."""
    try:
        answer = json.loads(body)
    except ValueError:
        raise AuthError(f"token endpoint {realm} answered with something other than JSON") from None
    for key in ("token", "access_token"):
        token = answer.get(key) if isinstance(answer, dict) else None
        if isinstance(token, str) and token:
            return token
    raise AuthError(f"token endpoint {realm} answered without a token or access_token")
