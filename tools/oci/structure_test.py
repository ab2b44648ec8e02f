"""Structure of one built image (oci_structure_test in defs.bzl sets IMAGE_EXPECT):
entrypoint, non-root user, labels, the files it must have, the tools it must not have
(compilers, package managers, a shell where none is needed), ownership, set-id bits,
dangling symlinks, the app layer last and small, and a tarball docker/podman can load."""

from __future__ import annotations

import fnmatch
import json
import os
import tarfile
from pathlib import Path

import pytest

from tools.oci.image import Layout
from tools.oci.oci_fs import ImageFs, read_fs

# Names that mean a compiler, a package manager or a way to install more software.
FORBIDDEN = [
    "gcc*", "cc", "c++", "g++*", "clang*", "ld", "ld.bfd", "ld.gold", "as", "make",
    "apt", "apt-get", "apt-cache", "dpkg", "dpkg-deb", "rpm", "yum", "dnf", "apk",
    "pip", "pip3", "pip3.*", "easy_install*", "curl", "wget",
]  # fmt: skip
SHELLS = ["sh", "bash", "dash", "rbash"]
# Java links its CA store to /etc/ssl/certs/java/cacerts, which ca-certificates-java's
# maintainer script would create; Spark reads no TLS material, so it stays dangling.
# Package docs may link into documentation of packages left out (postgresql-common).
ALLOWED_DANGLING = ["*/lib/security/cacerts", "/usr/share/doc/*"]
REQUIRED_LABELS = [
    "org.opencontainers.image.title",
    "org.opencontainers.image.version",
    "org.opencontainers.image.revision",
    "org.opencontainers.image.source",
]


def _runfile(path: str) -> Path:
    return Path(os.environ["TEST_SRCDIR"]) / "_main" / path


EXPECT: dict = json.loads(os.environ["IMAGE_EXPECT"])
LAYOUT = Layout(_runfile(os.environ["IMAGE_LAYOUT"]))


@pytest.fixture(scope="module")
def fs() -> ImageFs:
    return read_fs(LAYOUT)


def test_runs_the_service_as_a_non_root_user(fs: ImageFs):
    runtime = LAYOUT.config()["config"]
    entrypoint = runtime["Entrypoint"]
    assert fs.exists(entrypoint[0]), f"entrypoint {entrypoint[0]} is not in the image"
    if entrypoint[1:2] == ["-m"]:  # python3.11 -m services.x.y: the module is there
        module = "/opt/app/" + entrypoint[2].replace(".", "/") + ".py"
        assert fs.exists(module), f"{module} (the entry module) is not in the image"
    user = runtime.get("User", "")
    assert user and user.split(":")[0] not in ("0", "root"), f"runs as {user!r}"
    assert runtime.get("ExposedPorts"), "the metrics port is not exposed"


def test_has_source_revision_and_version_labels():
    labels = LAYOUT.config()["config"].get("Labels", {})
    missing = [label for label in REQUIRED_LABELS if not labels.get(label)]
    assert not missing, f"labels missing: {missing} (have {labels})"


def test_user_exists_and_owns_its_home(fs: ImageFs):
    passwd = fs.members.get("/etc/passwd")
    assert passwd is not None, "no /etc/passwd"
    home = fs.resolve("/home/app")
    assert home is not None and home.uid == 65532, "home of the app user"
    assert fs.resolve("/tmp").mode & 0o1777 == 0o1777, "/tmp must be world-writable, sticky"


def test_has_the_files_the_service_needs(fs: ImageFs):
    missing = [path for path in EXPECT["files"] if not fs.exists(path)]
    assert not missing, f"missing from the image: {missing}"


def test_has_no_compilers_package_managers_or_unneeded_shells(fs: ImageFs):
    forbidden = FORBIDDEN + ([] if EXPECT.get("shell") else SHELLS)
    executables_dirs = ("/usr/bin/", "/usr/sbin/", "/usr/local/bin/", "/opt/app/site-packages/bin/")
    found = fs.find(
        lambda path, member: (
            path.startswith(executables_dirs)
            and any(fnmatch.fnmatch(path.rsplit("/", 1)[1], pattern) for pattern in forbidden)
        )
    )
    assert not found, f"the image should not contain {found}"
    assert not fs.exists("/usr/lib/python3.11/ensurepip"), "ensurepip can install pip"
    pip_packages = fs.find(lambda path, _: path.startswith("/opt/app/site-packages/pip/"))
    assert not pip_packages, "pip is installed in site-packages"


def test_files_are_root_owned_and_not_set_id(fs: ImageFs):
    # Only the app user's own folders (home, data volumes) may be anyone else's.
    foreign = fs.find(
        lambda _, m: (m.uid, m.gid) != (0, 0) and not (m.kind == "dir" and m.uid == m.gid == 65532)
    )
    assert not foreign, f"not owned by root: {foreign[:10]}"
    set_id = fs.find(lambda _, m: m.kind == "file" and m.mode & 0o6000)
    assert not set_id, f"set-uid/gid files: {set_id}"


def test_symlinks_resolve_inside_the_image(fs: ImageFs):
    dangling = [
        path
        for path in fs.dangling_symlinks()
        if not any(fnmatch.fnmatch(path, pattern) for pattern in ALLOWED_DANGLING)
    ]
    assert not dangling, f"dangling symlinks: {dangling[:20]}"


def test_app_code_is_the_last_and_a_small_layer(fs: ImageFs):
    app_files = fs.find(lambda path, m: path.startswith("/opt/app/") and m.kind == "file")
    if not EXPECT["python_app"]:  # e.g. Prometheus: a binary and its config, no /opt/app
        assert not app_files, f"unexpected Python application files: {app_files[:5]}"
        return
    own = [
        path
        for path in app_files
        if not path.startswith(("/opt/app/site-packages/", "/opt/app/external/"))
    ]
    last = len(fs.layer_sizes) - 1
    assert own and all(fs.members[path].layer == last for path in own)
    assert fs.layer_sizes[-1] < 1_000_000, f"app layer is {fs.layer_sizes[-1]} bytes"
    third_party = [path for path in app_files if path not in own]
    assert third_party and all(fs.members[path].layer == last - 1 for path in third_party)


def test_tarball_loads_as_docker_archive_and_oci_layout():
    tarball = _runfile(os.environ["IMAGE_TARBALL"])
    with tarfile.open(tarball) as tar:
        names = set(tar.getnames())
        docker = json.load(tar.extractfile("manifest.json"))
        index = json.load(tar.extractfile("index.json"))
    assert {"oci-layout", "index.json", "manifest.json"} <= names
    [entry] = docker
    assert entry["RepoTags"], "a loaded image needs a name"
    assert entry["Config"] == "blobs/sha256/" + LAYOUT.manifest()["config"]["digest"][7:]
    assert all(layer in names for layer in entry["Layers"])
    assert index["manifests"][0]["digest"] == LAYOUT.manifest_descriptor()["digest"]
