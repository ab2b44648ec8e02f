"""Challenges, credential lookup in docker/podman files and helpers, token requests."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tools.oci.push.auth import (
    AuthError,
    Challenge,
    Credentials,
    auth_files,
    choose_challenge,
    credentials_from_config,
    find_credentials,
    normalize_auth_key,
    parse_token_response,
    parse_www_authenticate,
    run_credential_helper,
    scopes_for,
    token_request,
)
from tools.oci.push.reference import Repository

REPO = Repository("registry.example.com", "fraud/producer")


def no_helper(helper: str, server: str) -> tuple[str, str] | None:
    raise AssertionError(f"no helper expected, asked {helper} for {server}")


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# --- WWW-Authenticate ---


def test_bearer_challenge_with_commas_inside_the_scope():
    header = (
        'Bearer realm="https://auth.example.com/token",service="registry.example.com",'
        'scope="repository:fraud/producer:pull,push"'
    )
    assert parse_www_authenticate(header) == [
        Challenge(
            "bearer",
            {
                "realm": "https://auth.example.com/token",
                "service": "registry.example.com",
                "scope": "repository:fraud/producer:pull,push",
            },
        )
    ]


def test_several_challenges_case_escapes_and_bare_values():
    header = (
        'Basic Realm="a \\"quoted\\" realm", '
        'BEARER realm=https://t/x , service="s",error=insufficient_scope'
    )
    basic, bearer = parse_www_authenticate(header)
    assert basic == Challenge("basic", {"realm": 'a "quoted" realm'})
    assert bearer == Challenge(
        "bearer", {"realm": "https://t/x", "service": "s", "error": "insufficient_scope"}
    )


def test_token68_and_garbage_do_not_break_parsing():
    assert parse_www_authenticate("Negotiate abc+/==") == [
        Challenge("negotiate", {"token68": "abc+/=="})
    ]
    assert parse_www_authenticate("") == []
    assert parse_www_authenticate('Basic realm="x", "stray"') == [
        Challenge("basic", {"realm": "x"})
    ]


def test_choose_prefers_bearer_then_basic():
    basic, bearer, other = Challenge("basic"), Challenge("bearer", {"realm": "r"}), Challenge("x")
    assert choose_challenge([basic, bearer]) is bearer
    assert choose_challenge([other, basic]) is basic
    assert choose_challenge([other]) is None


# --- credentials ---


def test_credentials_never_show_their_secret():
    creds = Credentials("alice", "s3cret", "config.json", identity_token="tok3n")
    assert "s3cret" not in repr(creds) and "tok3n" not in repr(creds)
    assert creds.basic_header() == "Basic " + b64("alice:s3cret")


@pytest.mark.parametrize(
    ("key", "normalized"),
    [
        ("registry.example.com", ("registry.example.com", "")),
        ("https://registry.example.com", ("registry.example.com", "")),
        ("https://registry.example.com/v1/", ("registry.example.com", "")),
        ("http://127.0.0.1:5000/", ("127.0.0.1:5000", "")),
        ("registry.example.com/v2/", ("registry.example.com", "")),
        ("https://index.docker.io/v1/", ("docker.io", "")),
        ("quay.io/fraud", ("quay.io", "fraud")),
        ("Registry.Example.com/fraud/producer", ("registry.example.com", "fraud/producer")),
    ],
)
def test_normalize_auth_key(key, normalized):
    assert normalize_auth_key(key) == normalized


@pytest.mark.parametrize(
    "key",
    [
        "registry.example.com",
        "https://registry.example.com",
        "https://registry.example.com/v1/",
        "http://registry.example.com/v2",
    ],
)
def test_auths_entry_under_any_key_spelling(key):
    config = {"auths": {key: {"auth": b64("alice:pa:ss")}}}
    found = credentials_from_config(config, REPO, "cfg.json", no_helper)
    assert found is not None
    assert (found.username, found.password) == ("alice", "pa:ss")  # password may hold ':'
    assert found.source == f"cfg.json auths[{key!r}]"


def test_username_password_fields_and_other_registries_ignored():
    config = {
        "auths": {
            "other.example.com": {"auth": b64("mallory:x")},
            "registry.example.com": {"username": "bob", "password": "pw"},
        }
    }
    found = credentials_from_config(config, REPO, "cfg", no_helper)
    assert found is not None and (found.username, found.password) == ("bob", "pw")
    assert credentials_from_config(config, Repository("third.io", "x"), "cfg", no_helper) is None


def test_podman_namespace_keys_most_specific_wins():
    config = {
        "auths": {
            "registry.example.com": {"auth": b64("host:1")},
            "registry.example.com/fraud": {"auth": b64("ns:2")},
            "registry.example.com/fraud/other": {"auth": b64("other:3")},
            "registry.example.com/fra": {"auth": b64("prefix-only:4")},
        }
    }
    found = credentials_from_config(config, REPO, "auth.json", no_helper)
    assert found is not None and found.username == "ns"
    elsewhere = credentials_from_config(config, Repository(REPO.registry, "x"), "a", no_helper)
    assert elsewhere is not None and elsewhere.username == "host"


def test_cred_helper_for_the_registry_comes_first():
    asked = []

    def helper(name: str, server: str) -> tuple[str, str]:
        asked.append((name, server))
        return "helper-user", "helper-secret"

    config = {
        "credHelpers": {"registry.example.com": "ecr-login"},
        "auths": {"registry.example.com": {"auth": b64("file:pw")}},
    }
    found = credentials_from_config(config, REPO, "cfg", helper)
    assert asked == [("ecr-login", "registry.example.com")]
    assert found == Credentials(
        "helper-user", "helper-secret", "cfg credHelpers (docker-credential-ecr-login)"
    )


def test_creds_store_then_inline_auths_when_the_store_has_none():
    asked = []

    def empty_store(name: str, server: str) -> None:
        asked.append((name, server))
        return None

    config = {
        "credsStore": "desktop",
        "auths": {"https://registry.example.com/v1/": {"auth": b64("file:pw")}},
    }
    found = credentials_from_config(config, REPO, "cfg", empty_store)
    assert asked == [("desktop", "https://registry.example.com/v1/")]  # the key it was stored under
    assert found is not None and found.username == "file"
    assert (
        credentials_from_config({"credsStore": "desktop", "auths": {}}, REPO, "c", empty_store)
        is None
    )


def test_identity_tokens_from_file_and_helper():
    config = {"auths": {"registry.example.com": {"identitytoken": "refresh-me"}}}
    found = credentials_from_config(config, REPO, "cfg", no_helper)
    assert found is not None and found.identity_token == "refresh-me"

    def token_helper(name: str, server: str) -> tuple[str, str]:
        return "<token>", "helper-refresh"

    found = credentials_from_config({"credsStore": "x"}, REPO, "cfg", token_helper)
    assert found is not None and found.identity_token == "helper-refresh"


def test_placeholder_entry_gives_nothing_and_bad_auth_is_named_not_shown():
    assert (
        credentials_from_config({"auths": {"registry.example.com": {}}}, REPO, "c", no_helper)
        is None
    )
    config = {"auths": {"registry.example.com": {"auth": "!!not-base64-secret!!"}}}
    with pytest.raises(AuthError, match="auths") as err:
        credentials_from_config(config, REPO, "cfg", no_helper)
    assert "secret" not in str(err.value)


def test_auth_files_order_and_environment(tmp_path):
    home = tmp_path / "home"
    assert auth_files({}, home) == [
        home / ".docker" / "config.json",
        home / ".config" / "containers" / "auth.json",
    ]
    env = {
        "REGISTRY_AUTH_FILE": "/a/auth.json",
        "DOCKER_CONFIG": "/d",
        "XDG_RUNTIME_DIR": "/run/user/0",
        "XDG_CONFIG_HOME": "/cfg",
    }
    assert auth_files(env, home) == [
        Path("/a/auth.json"),
        Path("/d/config.json"),
        Path("/run/user/0/containers/auth.json"),
        Path("/cfg/containers/auth.json"),
    ]


def test_find_credentials_first_file_with_an_entry_wins(tmp_path):
    missing = tmp_path / "missing.json"
    first = tmp_path / "first.json"
    first.write_text(json.dumps({"auths": {"other.io": {"auth": b64("o:p")}}}))
    second = tmp_path / "second.json"
    second.write_text(json.dumps({"auths": {"registry.example.com": {"auth": b64("s:p")}}}))
    third = tmp_path / "third.json"
    third.write_text(json.dumps({"auths": {"registry.example.com": {"auth": b64("t:p")}}}))
    found = find_credentials(REPO, [missing, first, second, third], no_helper)
    assert found is not None and found.username == "s" and str(second) in found.source
    assert find_credentials(REPO, [missing, first], no_helper) is None
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(AuthError, match=r"broken\.json is not valid JSON"):
        find_credentials(REPO, [broken], no_helper)


def _helper_script(bin_dir: Path, name: str, body: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / f"docker-credential-{name}"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


def test_run_credential_helper_protocol(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    _helper_script(
        bin_dir,
        "good",
        'read server; printf \'{"ServerURL":"%s","Username":"u-%s","Secret":"s"}\' '
        '"$server" "$server"\n',
    )
    _helper_script(bin_dir, "empty", "echo 'credentials not found in native keychain'; exit 1\n")
    _helper_script(bin_dir, "broken", "echo 'keychain locked' >&2; exit 3\n")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    assert run_credential_helper("good", "r.example.com") == ("u-r.example.com", "s")
    assert run_credential_helper("empty", "r.example.com") is None
    with pytest.raises(
        AuthError, match=r"docker-credential-broken failed .*exit 3.*keychain locked"
    ):
        run_credential_helper("broken", "r.example.com")
    with pytest.raises(AuthError, match=r"docker-credential-absent .* is not on PATH"):
        run_credential_helper("absent", "r.example.com")


# --- tokens ---


def test_scopes_add_push_to_what_the_challenge_asks():
    challenge = Challenge("bearer", {"realm": "r", "scope": "repository:fraud/producer:pull"})
    assert scopes_for(challenge, "fraud/producer") == [
        "repository:fraud/producer:pull",
        "repository:fraud/producer:pull,push",
    ]
    assert scopes_for(Challenge("bearer", {"realm": "r"}), "a") == ["repository:a:pull,push"]


def test_token_request_with_basic_credentials():
    challenge = Challenge("bearer", {"realm": "https://auth.example.com/token", "service": "reg"})
    ask = token_request(
        challenge, ["repository:a:pull,push", "repository:b:pull"], Credentials("u", "p")
    )
    parts = urlsplit(ask.url)
    assert ask.method == "GET" and parts.netloc == "auth.example.com" and parts.path == "/token"
    assert parse_qs(parts.query) == {
        "service": ["reg"],
        "scope": ["repository:a:pull,push", "repository:b:pull"],
        "account": ["u"],
    }
    assert ask.headers == {"Authorization": "Basic " + b64("u:p")}
    assert "Basic" not in repr(ask)


def test_anonymous_token_request_and_realm_with_a_query():
    challenge = Challenge("bearer", {"realm": "https://a.example.com/token?x=1"})
    ask = token_request(challenge, ["repository:a:pull,push"], None)
    assert ask.url == "https://a.example.com/token?x=1&scope=repository%3Aa%3Apull%2Cpush"
    assert ask.headers == {}


def test_identity_token_uses_the_oauth2_refresh_grant():
    challenge = Challenge("bearer", {"realm": "https://a.example.com/token", "service": "reg"})
    creds = Credentials("<token>", "", "cfg", identity_token="refresh-xyz")
    ask = token_request(challenge, ["repository:a:pull,push", "repository:b:pull"], creds)
    assert ask.method == "POST" and ask.url == "https://a.example.com/token"
    assert ask.body is not None
    assert parse_qs(ask.body.decode()) == {
        "grant_type": ["refresh_token"],
        "refresh_token": ["refresh-xyz"],
        "client_id": ["fraud-oci-push"],
        "service": ["reg"],
        "scope": ["repository:a:pull,push repository:b:pull"],
    }


def test_challenge_without_realm_is_refused():
    with pytest.raises(AuthError, match="no realm"):
        token_request(Challenge("bearer", {"service": "s"}), [], None)


def test_token_response_token_or_access_token():
    assert parse_token_response(b'{"token": "t1", "expires_in": 60}', "r") == "t1"
    assert parse_token_response(b'{"access_token": "t2"}', "r") == "t2"
    with pytest.raises(AuthError, match="without a token"):
        parse_token_response(b'{"details": "nope"}', "https://realm")
    with pytest.raises(AuthError, match="other than JSON"):
        parse_token_response(b"<html>", "https://realm")
