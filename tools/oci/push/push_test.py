"""The push binary (our wrapper around crane) against a real docker-registry with
htpasswd (Basic) auth, read back by an independent client (skopeo): exact manifest
bytes, digests and blobs; skipped blobs on a second push; clear failures; retries; and,
through OCI_IMAGE_LAYOUTS, the project's real image layouts."""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from infra.components.process import free_port
from tools.oci.push import fault_proxy, registry
from tools.oci.push.sample_image import SampleImage, random_bytes, sha256, write_layout

PUSH_BIN = os.environ.get("PUSH_BIN", "")
USER, PASSWORD = "pusher", "p@ss:word with spaces"


@pytest.fixture(scope="module")
def reg(tmp_path_factory) -> registry.Registry:
    with registry.running_registry(
        tmp_path_factory.mktemp("registry"), users={USER: PASSWORD}
    ) as running:
        yield running


@pytest.fixture
def sample(tmp_path) -> SampleImage:
    """Two gzip layers (one 2 MB of incompressible bytes) + config + manifest."""
    return write_layout(
        tmp_path / "layout",
        [
            {"app/hello.txt": b"hello " + tmp_path.name.encode()},  # unique per test
            {"app/data.bin": random_bytes(2_000_000, seed=7)},
        ],
        cmd=("/app/hello",),
    )


def docker_config(directory: Path, auths: dict[str, dict[str, str]], **extra: object) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps({"auths": auths, **extra}))
    return directory


def basic_entry(user: str, password: str) -> dict[str, str]:
    return {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}


def run_push(
    args: list[str], tmp_path: Path, wrapper: tuple[str, ...] = (), **env: str
) -> subprocess.CompletedProcess[str]:
    """The push binary (run by `wrapper` if any) with a clean credential environment
    plus `env`."""
    assert PUSH_BIN, "PUSH_BIN is not set: run through `bazel test`"
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DOCKER_CONFIG", "REGISTRY_AUTH_FILE", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME"}
    }
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return subprocess.run(
        [*wrapper, PUSH_BIN, *args],
        env={**base, "HOME": str(home), **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def ok(result: subprocess.CompletedProcess[str], reg: registry.Registry) -> str:
    assert result.returncode == 0, (
        f"push failed ({result.returncode}):\n{result.stderr}\n"
        f"--- registry log ---\n{reg.log_tail()}"
    )
    assert "Traceback" not in result.stderr
    return result.stdout


def skopeo(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[bytes]:
    binary = shutil.which("skopeo") or "/usr/bin/skopeo"
    home = tmp_path / "skopeo-home"
    home.mkdir(exist_ok=True)
    result = subprocess.run(
        [binary, *args],
        env={"HOME": str(home), "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        capture_output=True,
        timeout=180,
    )
    assert result.returncode == 0, f"skopeo {' '.join(args)}: {result.stderr.decode()}"
    return result


def pull_manifest(ref: str, tmp_path: Path) -> tuple[bytes, str]:
    """(raw manifest bytes, digest skopeo reports) for docker://ref."""
    creds = ("--tls-verify=false", "--creds", f"{USER}:{PASSWORD}")
    raw = skopeo("inspect", "--raw", *creds, f"docker://{ref}", tmp_path=tmp_path).stdout
    info = json.loads(skopeo("inspect", *creds, f"docker://{ref}", tmp_path=tmp_path).stdout)
    return raw, info["Digest"]


def creds_env(tmp_path: Path, reg: registry.Registry) -> dict[str, str]:
    config = docker_config(tmp_path / "docker", {reg.address: basic_entry(USER, PASSWORD)})
    return {"DOCKER_CONFIG": str(config)}


def registry_has(reg: registry.Registry, path: str, method: str = "HEAD") -> bool:
    request = urllib.request.Request(f"{reg.url}{path}", method=method)
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    request.add_header("Accept", "application/vnd.oci.image.manifest.v1+json")
    try:
        with urllib.request.urlopen(request, timeout=10):
            return True
    except urllib.error.HTTPError as err:
        if err.code == 404:
            return False
        raise


def test_help_names_the_environment_variables(tmp_path):
    result = run_push(["--help"], tmp_path)
    assert result.returncode == 0, result.stderr
    for variable in (
        "FRAUD_PUSH_REPOSITORY",
        "FRAUD_PUSH_REPOSITORY_PREFIX",
        "FRAUD_PUSH_TAGS",
        "FRAUD_PUSH_TOKEN_REALM_HOSTS",
    ):
        assert variable in result.stdout


def test_push_two_tags_and_pull_back_exactly(reg, sample, tmp_path):
    repo = f"{reg.address}/fraud/sample"
    digest_file = tmp_path / "out" / "digest"
    result = run_push(
        [
            *("--image", f"sample={sample.directory}", "--repository", repo),
            *("--tag", "v1", "--tag", "latest", "--digest-file", str(digest_file)),
        ],
        tmp_path,
        **creds_env(tmp_path, reg),
    )
    digest = sample.manifest_digest
    assert ok(result, reg).splitlines() == [
        f"pushed {repo}:v1@{digest}",
        f"pushed {repo}:latest@{digest}",
    ]
    for blob in [*sample.layer_digests, sample.config_digest]:
        assert f"pushed blob: {blob}" in result.stderr  # crane's progress, passed through
    assert result.stderr.count("pushed blob: ") == 3
    assert digest_file.read_text() == digest + "\n"

    for tag in ("v1", "latest"):
        raw, reported = pull_manifest(f"{repo}:{tag}", tmp_path)
        assert raw == sample.manifest  # the exact bytes, not a re-serialization
        assert reported == digest

    copy = tmp_path / "copy"
    skopeo(
        "--insecure-policy",
        "copy",
        "--src-tls-verify=false",
        "--src-creds",
        f"{USER}:{PASSWORD}",
        f"docker://{repo}:v1",
        f"oci:{copy}:v1",
        tmp_path=tmp_path,
    )
    index = json.loads((copy / "index.json").read_text())
    assert [m["digest"] for m in index["manifests"]] == [digest]
    for blob_digest, content in sample.blobs.items():
        copied = copy / "blobs" / "sha256" / blob_digest.removeprefix("sha256:")
        assert copied.read_bytes() == content, f"blob {blob_digest} differs after the round trip"


def test_second_push_skips_every_blob(reg, sample, tmp_path):
    repo = f"{reg.address}/fraud/again"
    args = ["--image", f"again={sample.directory}", "--repository", repo]
    env = creds_env(tmp_path, reg)
    first = ok(run_push(args, tmp_path, **env), reg)
    second = run_push(args, tmp_path, **env)
    assert ok(second, reg) == first == f"pushed {repo}:latest@{sample.manifest_digest}\n"
    assert f"existing manifest: latest@{sample.manifest_digest}" in second.stderr
    assert "pushed blob" not in second.stderr
    # A new tag of the same image: the manifest is new there, every blob is not.
    third = run_push([*args, "--tag", "v2"], tmp_path, **env)
    assert ok(third, reg) == f"pushed {repo}:v2@{sample.manifest_digest}\n"
    assert third.stderr.count("existing blob: ") == 3
    assert "pushed blob" not in third.stderr


def test_large_layer_is_streamed_not_loaded(reg, tmp_path):
    layer = 48_000_000
    big = write_layout(tmp_path / "big", [{"big.bin": random_bytes(layer, seed=3)}])
    measure = (
        "import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(code)"
    )
    repo = f"{reg.address}/fraud/big"
    result = run_push(
        ["--image", f"big={big.directory}", "--repository", repo],
        tmp_path,
        wrapper=(sys.executable, "-c", measure),
        **creds_env(tmp_path, reg),
    )
    *pushed, peak_kib = ok(result, reg).splitlines()
    assert pushed == [f"pushed {repo}:latest@{big.manifest_digest}"]
    print(f"peak RSS pushing a {layer / 1e6:.0f} MB layer: {int(peak_kib) / 1024:.0f} MiB")
    # Python itself is ~20 MiB; holding the layer would add all of its 48 MB.
    assert int(peak_kib) * 1024 < layer, "the push seems to hold the layer in memory"


def test_wrong_password_fails_clearly(reg, sample, tmp_path):
    config = docker_config(
        tmp_path / "docker", {reg.address: basic_entry(USER, "not-the-password")}
    )
    repo = f"{reg.address}/fraud/denied"
    result = run_push(
        ["--image", f"x={sample.directory}", "--repository", repo],
        tmp_path,
        DOCKER_CONFIG=str(config),
    )
    assert result.returncode == 1
    assert result.stdout == ""
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith(
        f"push: error: {repo}: {reg.address} refused the credentials from "
        f"{config / 'config.json'}: "
    )
    assert "401 Unauthorized" in message
    assert "Traceback" not in result.stderr
    assert "not-the-password" not in result.stderr


def test_no_credentials_says_where_it_looked(reg, sample, tmp_path):
    empty = tmp_path / "empty-docker"
    empty.mkdir()
    result = run_push(
        ["--image", f"x={sample.directory}", "--repository", f"{reg.address}/fraud/anon"],
        tmp_path,
        DOCKER_CONFIG=str(empty),
    )
    assert result.returncode == 1
    assert f"no credentials for {reg.address} were found (looked in {empty}/config.json" in (
        result.stderr
    )


def test_repository_prefix_pushes_each_image(reg, tmp_path):
    images = {
        "producer": write_layout(tmp_path / "p", [{"a": b"producer"}, {"b": b"shared"}]),
        "alert-sink": write_layout(tmp_path / "s", [{"a": b"sink"}, {"b": b"shared"}]),
    }
    args = [arg for name, s in images.items() for arg in ("--image", f"{name}={s.directory}")]
    digest_file = tmp_path / "digests"
    result = run_push(
        [*args, "--repository-prefix", f"{reg.address}/fraud", "--digest-file", str(digest_file)],
        tmp_path,
        **creds_env(tmp_path, reg),
    )
    assert ok(result, reg).splitlines() == [
        f"pushed {reg.address}/fraud/{name}:latest@{s.manifest_digest}"
        for name, s in images.items()
    ]
    assert digest_file.read_text() == "".join(
        f"{name} {s.manifest_digest}\n" for name, s in images.items()
    )
    for name, s in images.items():
        raw, reported = pull_manifest(f"{reg.address}/fraud/{name}:latest", tmp_path)
        assert (raw, reported) == (s.manifest, s.manifest_digest)


def test_podman_auth_file(reg, sample, tmp_path):
    auth_file = tmp_path / "auth.json"
    auth_file.write_text(json.dumps({"auths": {reg.address: basic_entry(USER, PASSWORD)}}))
    # A docker config without an entry for this registry does not hide podman's file.
    other = docker_config(tmp_path / "docker", {"other.example.com": basic_entry("a", "b")})
    result = run_push(
        ["--image", f"x={sample.directory}", "--repository", f"{reg.address}/team/app"],
        tmp_path,
        REGISTRY_AUTH_FILE=str(auth_file),
        DOCKER_CONFIG=str(other),
    )
    assert f"{reg.address}/team/app:latest@{sample.manifest_digest}" in ok(result, reg)


def test_insecure_loopback_registry_still_gets_credentials(reg, sample, tmp_path):
    repo = f"{reg.address}/fraud/insecure"
    result = run_push(
        [
            *("--image", f"x={sample.directory}", "--repository", repo),
            *("--insecure-registry", reg.address),
        ],
        tmp_path,
        **creds_env(tmp_path, reg),
    )
    assert ok(result, reg) == f"pushed {repo}:latest@{sample.manifest_digest}\n"


def test_credential_helper(reg, sample, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    asked = tmp_path / "helper-asked"
    helper = bin_dir / "docker-credential-fraudtest"
    helper.write_text(
        "#!/bin/sh\n"
        f'read server; echo "$server" > {asked}\n'
        f"printf '%s' '{json.dumps({'Username': USER, 'Secret': PASSWORD})}'\n"
    )
    helper.chmod(helper.stat().st_mode | stat.S_IEXEC)
    config = docker_config(
        tmp_path / "docker", {reg.address: {}}, credHelpers={reg.address: "fraudtest"}
    )
    result = run_push(
        ["--image", f"x={sample.directory}", "--repository", f"{reg.address}/fraud/helped"],
        tmp_path,
        DOCKER_CONFIG=str(config),
        PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    ok(result, reg)
    assert asked.read_text().strip() == reg.address


def test_corrupt_layout_is_refused_and_nothing_lands(reg, sample, tmp_path):
    big = sample.blob_path(sample.layer_digests[1])
    content = bytearray(big.read_bytes())
    content[len(content) // 2] ^= 0x01
    big.write_bytes(bytes(content))
    repo_path = "fraud/corrupt"
    result = run_push(
        ["--image", f"x={sample.directory}", "--repository", f"{reg.address}/{repo_path}"],
        tmp_path,
        **creds_env(tmp_path, reg),
    )
    assert result.returncode == 1
    assert result.stdout == ""
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"push: error: {reg.address}/{repo_path}: "), result.stderr
    assert "DIGEST_INVALID" in last  # the registry checks what crane streamed
    assert "Traceback" not in result.stderr
    assert not registry_has(reg, f"/v2/{repo_path}/blobs/{sample.layer_digests[1]}")
    actual = sha256(bytes(content))
    assert not registry_has(reg, f"/v2/{repo_path}/blobs/{actual}")
    assert not registry_has(reg, f"/v2/{repo_path}/manifests/latest")


def test_retries_5xx_and_dropped_connections(reg, sample, tmp_path):
    proxy = fault_proxy.FaultProxy(
        reg.address,
        faults=[
            fault_proxy.Fault("PUT", "/blobs/uploads/", "503"),
            fault_proxy.Fault("PUT", "/manifests/latest", "drop"),
        ],
    )
    with proxy as running:
        repo = f"{running.address}/fraud/flaky"
        result = run_push(
            ["--image", f"x={sample.directory}", "--repository", repo],
            tmp_path,
            DOCKER_CONFIG=str(
                docker_config(tmp_path / "docker", {running.address: basic_entry(USER, PASSWORD)})
            ),
        )
        assert ok(result, reg) == f"pushed {repo}:latest@{sample.manifest_digest}\n"
        assert len(running.injected) == 2, running.injected
    raw, reported = pull_manifest(f"{reg.address}/fraud/flaky:latest", tmp_path)
    assert (raw, reported) == (sample.manifest, sample.manifest_digest)


def test_unreachable_registry_gives_a_clear_error(sample, tmp_path):
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    result = run_push(
        ["--image", f"x={sample.directory}", "--repository", f"{address}/xx"], tmp_path
    )
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"push: error: {address}/xx: "), result.stderr
    assert f"http://{address}/v2/" in last and "connection refused" in last


def test_unreachable_registry_with_credentials_fails_before_crane(sample, tmp_path):
    address = f"127.0.0.1:{free_port()}"
    config = docker_config(tmp_path / "docker", {address: basic_entry(USER, PASSWORD)})
    result = run_push(
        ["--image", f"x={sample.directory}", "--repository", f"{address}/xx"],
        tmp_path,
        DOCKER_CONFIG=str(config),
    )
    assert result.returncode == 1
    assert (
        f"push: error: refusing to push with the credentials in {config / 'config.json'}: "
        f"cannot reach the registry: GET https://{address}/v2/: "
    ) in result.stderr
    assert "crane:" not in result.stderr


def test_relative_locations_and_an_open_registry(sample, tmp_path):
    with registry.running_registry(tmp_path / "open-registry", relative_urls=True) as open_reg:
        repo = f"{open_reg.address}/fraud/relative"
        result = run_push(["--image", f"x={sample.directory}", "--repository", repo], tmp_path)
        assert ok(result, open_reg) == f"pushed {repo}:latest@{sample.manifest_digest}\n"
        assert "Location: /v2/" in _upload_location_sample(open_reg)


def _upload_location_sample(reg: registry.Registry) -> str:
    """Proof the registry really answered with a relative Location."""
    request = urllib.request.Request(f"{reg.url}/v2/fraud/probe/blobs/uploads/", method="POST")
    with urllib.request.urlopen(request, timeout=10) as answer:
        return f"Location: {answer.headers['Location']}"


def real_layouts() -> list[tuple[str, Path]]:
    """`OCI_IMAGE_LAYOUTS="name=rootpath ..."`, set in BUILD with the layouts in `data`."""
    pairs = os.environ.get("OCI_IMAGE_LAYOUTS", "").split()
    return [(name, Path(path)) for name, _, path in (p.partition("=") for p in pairs)]


def test_real_image_layouts(reg, tmp_path):
    layouts = real_layouts()
    assert layouts, "no real image layouts wired in (OCI_IMAGE_LAYOUTS in BUILD.bazel)"
    args = [arg for name, path in layouts for arg in ("--image", f"{name}={path}")]
    result = run_push(
        [*args, "--repository-prefix", f"{reg.address}/real", "--tag", "test"],
        tmp_path,
        **creds_env(tmp_path, reg),
    )
    lines = ok(result, reg).splitlines()
    for (name, path), line in zip(layouts, lines, strict=True):
        index = json.loads((path / "index.json").read_text())
        digest = index["manifests"][0]["digest"]
        ref = f"{reg.address}/real/{name}:test"
        assert line == f"pushed {ref}@{digest}"
        raw, reported = pull_manifest(ref, tmp_path)
        assert sha256(raw) == digest and reported == digest
