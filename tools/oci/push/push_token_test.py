"""The push binary against docker-registry with Bearer token auth: a token server here
signs the JWTs the registry verifies. Covers credentials from docker's config, an
identity (refresh) token, anonymous tokens, `token` and `access_token` answers, the
clear failures (wrong password, a token without push access), and the realm guard:
credentials never go to a token realm on another host or over plain HTTP, which crane
alone would do."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from tools.oci.push import registry, token_server
from tools.oci.push.sample_image import SampleImage, write_layout

PUSH_BIN = os.environ.get("PUSH_BIN", "")
SERVICE = "fraud-test-registry"
USER, PASSWORD = "robot", "token-secret-pw"
IDENTITY_TOKEN = "refresh-4f1c"


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> tuple[token_server.TokenServer, registry.Registry]:
    work = tmp_path_factory.mktemp("token-auth")
    issuer = token_server.make_issuer(work / "issuer")
    server = token_server.TokenServer(
        issuer, SERVICE, users={USER: PASSWORD}, identity_tokens={IDENTITY_TOKEN: USER}
    )
    with server as tokens:
        auth = registry.TokenAuth(tokens.realm, SERVICE, issuer.name, issuer.cert)
        with registry.running_registry(work / "registry", token=auth) as reg:
            yield tokens, reg


@pytest.fixture
def tokens(setup) -> token_server.TokenServer:
    server, _ = setup
    server.calls.clear()
    server.anonymous_actions = ()
    server.token_field = "token"
    return server


@pytest.fixture
def reg(setup) -> registry.Registry:
    return setup[1]


@pytest.fixture
def sample(tmp_path) -> SampleImage:
    return write_layout(
        tmp_path / "layout", [{"a.txt": tmp_path.name.encode()}, {"b.txt": b"second layer"}]
    )


def push(
    sample: SampleImage,
    repo: str,
    tmp_path: Path,
    auths: dict[str, object] | None,
    *extra: str,
    binary: Sequence[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """The push binary (or `binary`, e.g. crane itself) with only `auths` as credentials."""
    config = tmp_path / "docker"
    config.mkdir(exist_ok=True)
    (config / "config.json").write_text(json.dumps({"auths": auths or {}}))
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"REGISTRY_AUTH_FILE", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME"}
    }
    env.update(HOME=str(tmp_path), DOCKER_CONFIG=str(config))
    command = binary or [PUSH_BIN, "--image", f"x={sample.directory}", "--repository", repo]
    return subprocess.run(
        [*command, *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def ok(result: subprocess.CompletedProcess[str], reg: registry.Registry) -> str:
    assert result.returncode == 0, f"{result.stderr}\n--- registry log ---\n{reg.log_tail()}"
    return result.stdout


def skopeo_digest(ref: str, tmp_path: Path) -> str:
    """skopeo does its own token dance against our token server."""
    result = subprocess.run(
        [
            shutil.which("skopeo") or "/usr/bin/skopeo",
            *("inspect", "--tls-verify=false", "--creds", f"{USER}:{PASSWORD}"),
            f"docker://{ref}",
        ],
        env={"HOME": str(tmp_path), "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["Digest"]


def pushes(scope: str, path: str) -> bool:
    """`repository:PATH:push,pull` (crane's order) or `...:pull,push`."""
    kind, _, rest = scope.partition(":")
    name, _, actions = rest.rpartition(":")
    return (kind, name) == ("repository", path) and set(actions.split(",")) == {"pull", "push"}


def basic(user: str, password: str) -> dict[str, str]:
    return {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_bearer_with_credentials_from_docker_config(tokens, reg, sample, tmp_path):
    repo = f"{reg.address}/fraud/bearer"
    result = push(sample, repo, tmp_path, {reg.address: basic(USER, PASSWORD)})
    assert ok(result, reg) == f"pushed {repo}:latest@{sample.manifest_digest}\n"
    assert skopeo_digest(f"{repo}:latest", tmp_path) == sample.manifest_digest
    ours = [call for call in tokens.calls if call.user == USER and call.method == "GET"]
    assert ours, tokens.calls
    assert ours[0].service == SERVICE
    assert any(pushes(scope, "fraud/bearer") for scope in ours[0].scopes), ours[0]
    # One token serves the whole push: crane asks once, every blob reuses it (skopeo's
    # inspect asks for pull only).
    assert len([c for c in ours if any(pushes(s, "fraud/bearer") for s in c.scopes)]) == 1


def test_anonymous_token_answered_as_access_token(tokens, reg, sample, tmp_path):
    tokens.anonymous_actions = ("pull", "push")
    tokens.token_field = "access_token"
    repo = f"{reg.address}/fraud/anonymous"
    result = push(sample, repo, tmp_path, None)
    assert ok(result, reg) == f"pushed {repo}:latest@{sample.manifest_digest}\n"
    assert tokens.calls and all(call.user is None for call in tokens.calls)


def test_identity_token_uses_the_refresh_grant(tokens, reg, sample, tmp_path):
    repo = f"{reg.address}/fraud/identity"
    result = push(sample, repo, tmp_path, {reg.address: {"identitytoken": IDENTITY_TOKEN}})
    assert ok(result, reg) == f"pushed {repo}:latest@{sample.manifest_digest}\n"
    assert tokens.calls[0].method == "POST"
    assert tokens.calls[0].grant_type == "refresh_token"
    assert tokens.calls[0].user == USER
    assert IDENTITY_TOKEN not in result.stderr


def test_wrong_password_is_refused_by_the_token_endpoint(tokens, reg, sample, tmp_path):
    repo = f"{reg.address}/fraud/wrong"
    result = push(sample, repo, tmp_path, {reg.address: basic(USER, "wrong-pw")})
    assert result.returncode == 1 and result.stdout == ""
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(
        f"push: error: {repo}: {reg.address} refused the credentials from "
        f"{tmp_path / 'docker' / 'config.json'}: "
    ), result.stderr
    assert tokens.realm in last and "401 Unauthorized" in last
    assert "wrong-pw" not in result.stderr and "Traceback" not in result.stderr


def test_token_without_push_access_fails_clearly(tokens, reg, sample, tmp_path):
    tokens.anonymous_actions = ("pull",)
    repo = f"{reg.address}/fraud/readonly"
    result = push(sample, repo, tmp_path, None)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(
        f"push: error: {repo}: no credentials for {reg.address} were found (looked in "
    ), result.stderr
    assert "UNAUTHORIZED" in last or "401 Unauthorized" in last


@pytest.fixture
def foreign(setup, tmp_path) -> Iterator[registry.Registry]:
    """A registry whose token realm is our token server under another name (localhost
    rather than 127.0.0.1): to the guard, a realm on another host."""
    tokens, _ = setup
    port = tokens.realm.removeprefix("http://127.0.0.1:").partition("/")[0]
    auth = registry.TokenAuth(
        f"http://localhost:{port}/token", SERVICE, tokens.issuer.name, tokens.issuer.cert
    )
    with registry.running_registry(tmp_path / "foreign-registry", token=auth) as reg:
        yield reg


def test_foreign_realm_gets_no_credentials(tokens, foreign, sample, tmp_path):
    repo = f"{foreign.address}/fraud/foreign"
    result = push(sample, repo, tmp_path, {foreign.address: basic(USER, PASSWORD)})
    assert result.returncode == 1 and result.stdout == ""
    assert (
        f"push: error: refusing to push with the credentials in "
        f"{tmp_path / 'docker' / 'config.json'}: {foreign.address} sends clients to the "
        f"token realm http://localhost:"
    ) in result.stderr
    assert "on another host (localhost)" in result.stderr
    assert "--token-realm-host localhost" in result.stderr
    assert tokens.calls == []  # nothing reached the realm, let alone the password


def test_an_allowed_realm_host_is_used(tokens, foreign, sample, tmp_path):
    repo = f"{foreign.address}/fraud/allowed"
    result = push(
        sample,
        repo,
        tmp_path,
        {foreign.address: basic(USER, PASSWORD)},
        "--token-realm-host",
        "localhost",
    )
    assert ok(result, foreign) == f"pushed {repo}:latest@{sample.manifest_digest}\n"
    assert [call.user for call in tokens.calls] == [USER]


def test_crane_alone_would_send_the_credentials_there(tokens, foreign, sample, tmp_path):
    """Why the guard exists: Debian's crane (0.20) hands the Basic credentials to any
    realm the registry names. If this starts failing, crane has learnt to refuse some
    realms itself; the guard stays, as it also refuses what crane still allows."""
    crane = os.environ.get("FRAUD_PUSH_CRANE") or shutil.which("crane") or "/usr/bin/crane"
    repo = f"{foreign.address}/fraud/leak"
    result = push(
        sample,
        repo,
        tmp_path,
        {foreign.address: basic(USER, PASSWORD)},
        binary=[crane, "push", str(sample.directory), f"{repo}:latest"],
    )
    assert result.returncode == 0, result.stderr
    assert USER in [call.user for call in tokens.calls]


def test_plain_http_realm_on_another_host_is_refused(sample, tmp_path, setup):
    tokens, _ = setup
    auth = registry.TokenAuth(
        "http://tokens.fraud-test.invalid/token", SERVICE, tokens.issuer.name, tokens.issuer.cert
    )
    with registry.running_registry(tmp_path / "plain-realm", token=auth) as reg:
        repo = f"{reg.address}/fraud/plain"
        result = push(
            sample,
            repo,
            tmp_path,
            {reg.address: basic(USER, PASSWORD)},
            *("--token-realm-host", "tokens.fraud-test.invalid"),  # allowing the host is not enough
        )
    assert result.returncode == 1
    assert (
        f"{reg.address} sends clients to the plain-HTTP token realm "
        "http://tokens.fraud-test.invalid/token; credentials are never sent over plain HTTP "
        "except to loopback"
    ) in result.stderr
