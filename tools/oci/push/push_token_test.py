"""The push binary against docker-registry with Bearer token auth: a token server here
signs the JWTs the registry verifies. Covers credentials from docker's config, an
identity (refresh) token, anonymous tokens, `token` and `access_token` answers, and the
clear failures: wrong password, and a token without push access."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
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
    sample: SampleImage, repo: str, tmp_path: Path, auths: dict[str, object] | None
) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "docker"
    config.mkdir(exist_ok=True)
    (config / "config.json").write_text(json.dumps({"auths": auths or {}}))
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"REGISTRY_AUTH_FILE", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME"}
    }
    env.update(HOME=str(tmp_path), DOCKER_CONFIG=str(config))
    return subprocess.run(
        [PUSH_BIN, "--image", f"x={sample.directory}", "--repository", repo],
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
    assert "repository:fraud/bearer:pull,push" in ours[0].scopes
    # One token serves the whole push: the API check asks once, every blob reuses it.
    assert len([c for c in ours if "repository:fraud/bearer:pull,push" in c.scopes]) <= 2


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
    assert f"push: error: {repo}: token endpoint {tokens.realm} refused the credentials from " in (
        result.stderr
    )
    assert "HTTP 401 Unauthorized" in result.stderr
    assert "wrong-pw" not in result.stderr and "Traceback" not in result.stderr


def test_token_without_push_access_fails_clearly(tokens, reg, sample, tmp_path):
    tokens.anonymous_actions = ("pull",)
    repo = f"{reg.address}/fraud/readonly"
    result = push(sample, repo, tmp_path, None)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(
        f"push: error: {repo}: the registry refused the token from {tokens.realm} "
        "(no credentials); the account may lack push access to fraud/readonly: HTTP 401 on POST"
    ), result.stderr
    assert "UNAUTHORIZED" in last
