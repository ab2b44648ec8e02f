"""Which credential file crane gets, and the private config directory it reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools.oci.push.credentials import (
    CredentialError,
    Found,
    auth_files,
    crane_config,
    find,
    holds,
)


def write(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def test_files_in_podman_then_docker_order(tmp_path):
    env = {
        "REGISTRY_AUTH_FILE": "/a/auth.json",
        "DOCKER_CONFIG": "/d",
        "XDG_RUNTIME_DIR": "/run/user/0",
    }
    assert auth_files(env, tmp_path) == [
        Path("/a/auth.json"),
        Path("/d/config.json"),
        tmp_path / ".docker" / "config.json",  # where tools/bazel binds $DOCKER_CONFIG
        Path("/run/user/0/containers/auth.json"),
        tmp_path / ".config" / "containers" / "auth.json",
    ]
    assert auth_files({}, tmp_path) == [
        tmp_path / ".docker" / "config.json",
        tmp_path / ".config" / "containers" / "auth.json",
    ]


@pytest.mark.parametrize(
    ("config", "registry", "how"),
    [
        ({"auths": {"r.example.com": {"auth": "eDp5"}}}, "r.example.com", "entry"),
        ({"auths": {"https://r.example.com/v1/": {}}}, "R.example.com", "entry"),
        ({"auths": {"https://index.docker.io/v1/": {}}}, "docker.io", "entry"),
        ({"credHelpers": {"127.0.0.1:5000": "pass"}}, "127.0.0.1:5000", "entry"),
        ({"auths": {"127.0.0.1:5000": {}}}, "127.0.0.1:5001", None),
        ({"auths": {"other.example.com": {}}, "credsStore": "pass"}, "r.example.com", "store"),
        ({}, "r.example.com", None),
    ],
)
def test_holds(config, registry, how):
    assert holds(config, registry) == how


def test_first_file_naming_the_registry_wins_over_a_store(tmp_path):
    store = write(tmp_path / "docker" / "config.json", {"credsStore": "desktop"})
    podman = write(tmp_path / "auth.json", {"auths": {"r.example.com": {"auth": "eDp5"}}})
    files = [tmp_path / "missing.json", store, podman]
    assert find("r.example.com", files) == Found(podman, "entry")
    assert find("other.example.com", files) == Found(store, "store")
    assert find("other.example.com", [podman]) is None


def test_unreadable_file_is_named(tmp_path):
    bad = tmp_path / "config.json"
    bad.write_text("{not json")
    with pytest.raises(CredentialError, match=str(bad)):
        find("r.example.com", [bad])


def test_crane_config_links_the_file_and_is_removed(tmp_path):
    source = write(tmp_path / "auth.json", {"auths": {"r.example.com": {"auth": "eDp5"}}})
    with crane_config(Found(source, "entry")) as directory:
        link = directory / "config.json"
        assert link.is_symlink() and link.resolve() == source.resolve()
        assert (directory.stat().st_mode & 0o077) == 0  # private to the user
    assert not directory.exists()
    with crane_config(None) as directory:
        assert json.loads((directory / "config.json").read_text()) == {}
