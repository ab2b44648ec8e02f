"""The pinned closures really run: each set is unpacked into an empty root and used there.

Why: lock_test proves the lock is consistent with itself, not that Debian's declared
dependencies (minus what we exclude) are enough for a program to start. Here each set
(python; python + java; python + postgres) is unpacked with `dpkg-deb -x` into a fresh
directory laid out the way bookworm is installed (merged /usr: /bin, /lib, /lib64 and
/sbin are symlinks into /usr, and what packages ship there is moved into /usr), and the
programs the images run are started inside it with chroot. No maintainer script runs,
exactly as in an image.

Needs root (CAP_SYS_CHROOT; setuid to `nobody` for initdb), as tools/bazel runs tests.
"""

from __future__ import annotations

import ctypes
import json
import os
import pathlib
import subprocess
from collections.abc import Callable

import pytest

from tools.oci.debian import update

LOCK = update.read_lock(pathlib.Path(os.environ["DEBIAN_LOCK"]))
PACKAGES: dict[str, dict] = LOCK["DEBIAN_PACKAGES"]  # type: ignore[assignment]
MERGED = ("bin", "sbin", "lib", "lib64")
NOBODY = 65534
CLONE_NEWNS, MS_BIND, MS_REC, MS_PRIVATE = 0x20000, 0x1000, 0x4000, 0x40000
JAVA_HOME = "/usr/lib/jvm/java-17-openjdk-amd64"
PG_BIN = "/usr/lib/postgresql/15/bin"

# Symlink targets that maintainer scripts would create and the layer builder must: the CA
# bundle of `update-ca-certificates`, ca-certificates-java's keystore, and /etc/localtime
# (tzdata's postinst; /usr/share/zoneinfo/localtime points at it).
GENERATED = {
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/ssl/certs/java/cacerts",
    "/etc/localtime",
}
# Documentation links into excluded packages (postgresql-15's README.Debian.gz points
# into postgresql-common's docs) dangle harmlessly.
DOCS = "/usr/share/doc/"


def upstream(name: str) -> str:
    """The upstream part of a pinned version: 1:2.3-4+deb12u1 -> 2.3."""
    version = PACKAGES[name]["version"].split(":", 1)[-1]
    return version.rsplit("-", 1)[0].split("+", 1)[0]


def _merge_into(src: pathlib.Path, dst: pathlib.Path) -> None:
    """Move the tree `src` into `dst`; a path both ship is an error (dpkg would refuse)."""
    dst.mkdir(parents=True, exist_ok=True)
    for entry in sorted(src.iterdir()):
        target = dst / entry.name
        if entry.is_dir() and not entry.is_symlink() and target.is_dir():
            _merge_into(entry, target)
            entry.rmdir()
        elif target.exists() or target.is_symlink():
            raise AssertionError(f"/{entry} and /{target} are both shipped (merged-/usr clash)")
        else:
            entry.rename(target)


def unpack(debs: list[pathlib.Path], root: pathlib.Path) -> None:
    for deb in debs:
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    for top in MERGED:
        path = root / top
        if path.is_dir() and not path.is_symlink():
            _merge_into(path, root / "usr" / top)
            path.rmdir()
        (root / "usr" / top).mkdir(parents=True, exist_ok=True)
        path.symlink_to(f"usr/{top}")
    # What the image builder writes: users, and a world-writable /tmp.
    (root / "etc/passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n"
    )
    (root / "etc/group").write_text("root:x:0:\nnogroup:x:65534:\n")
    (root / "tmp").mkdir(mode=0o1777, exist_ok=True)
    (root / "tmp").chmod(0o1777)


def debs(set_name: str) -> list[pathlib.Path]:
    paths = [pathlib.Path(p) for p in os.environ[f"{set_name.upper()}_DEBS"].split()]
    assert paths, f"no .debs for set {set_name}"
    return paths


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], pathlib.Path]:
    """A root with the python set and, when named, one set on top of it (unpacked once)."""
    made: dict[str, pathlib.Path] = {}

    def make(top: str) -> pathlib.Path:
        if top not in made:
            root = tmp_path_factory.mktemp(f"root-{top}")
            root.chmod(0o755)  # nobody must traverse it
            names = ["python"] if top == "python" else ["python", top]
            unpack([deb for name in names for deb in debs(name)], root)
            made[top] = root
        return made[top]

    return make


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def run_in(
    root: pathlib.Path, argv: list[str], uid: int = 0, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """`argv` run in `root` as a container runtime would: its own mount namespace with
    /proc and /dev mounted (the dynamic loader reads /proc/self/exe for Java's $ORIGIN
    RPATH; shells want /dev/null), chroot, a minimal environment, as `uid`."""
    libc = ctypes.CDLL(None, use_errno=True)
    for mountpoint in ("proc", "dev"):
        (root / mountpoint).mkdir(exist_ok=True)

    def enter() -> None:
        _check(libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
        _check(libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "make / private")
        _check(libc.mount(b"proc", bytes(root / "proc"), b"proc", 0, None), "mount /proc")
        _check(libc.mount(b"/dev", bytes(root / "dev"), None, MS_BIND | MS_REC, None), "bind /dev")
        os.chroot(root)
        os.chdir("/")
        if uid:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)

    env = {"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "LANG": "C.UTF-8", "HOME": "/tmp"}
    proc = subprocess.run(
        argv, input=stdin, capture_output=True, text=True, env=env, preexec_fn=enter, timeout=120
    )
    assert proc.returncode == 0, f"{argv} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}"
    return proc


def test_runs_as_root() -> None:
    """A clear failure when not root: chroot and mounting /proc need CAP_SYS_CHROOT and
    CAP_SYS_ADMIN, which tools/bazel gives tests when it is run as root."""
    assert os.geteuid() == 0, "closure_test must run as root (run tools/bazel as root)"


PYTHON_CHECK = """
import bz2, ctypes, datetime, decimal, hashlib, json, locale, lzma, pathlib, socket
import sqlite3, ssl, sys, uuid, zlib, zoneinfo
locale.setlocale(locale.LC_ALL, "")
paris = datetime.datetime(2024, 7, 1, tzinfo=zoneinfo.ZoneInfo("Europe/Paris"))
certs = pathlib.Path("/usr/share/ca-certificates").rglob("*.crt")
print(json.dumps({
    "version": sys.version.split()[0],
    "openssl": ssl.OPENSSL_VERSION,
    "tls_context": type(ssl.create_default_context()).__name__,
    "sqlite": sqlite3.connect(":memory:").execute("select sqlite_version()").fetchone()[0],
    "strlen": ctypes.CDLL("libc.so.6").strlen(b"fraud"),
    "lzma": lzma.decompress(lzma.compress(b"lzma")).decode(),
    "bz2": bz2.decompress(bz2.compress(b"bz2")).decode(),
    "zlib": zlib.decompress(zlib.compress(b"zlib")).decode(),
    "decimal": str(decimal.Decimal("0.1") + decimal.Decimal("0.2")),
    "uuid": uuid.uuid4().version,
    "sha256": hashlib.sha256(b"").hexdigest()[:12],
    "paris": paris.utcoffset().total_seconds(),
    "https": socket.getservbyname("https", "tcp"),
    "locale": locale.getlocale(locale.LC_CTYPE)[1],
    "fs_encoding": sys.getfilesystemencoding(),
    "certificates": sum(1 for _ in certs),
}))
"""


def test_python(rootfs: Callable[[str], pathlib.Path]) -> None:
    proc = run_in(rootfs("python"), ["/usr/bin/python3.11", "-c", PYTHON_CHECK])
    result = json.loads(proc.stdout)
    assert result["version"] == upstream("python3.11-minimal")
    assert result["openssl"].startswith(f"OpenSSL {upstream('libssl3')} ")
    assert result["tls_context"] == "SSLContext"
    assert result["sqlite"] == upstream("libsqlite3-0")
    assert result["strlen"] == 5
    assert (result["lzma"], result["bz2"], result["zlib"]) == ("lzma", "bz2", "zlib")
    assert result["decimal"] == "0.3"
    assert result["uuid"] == 4
    assert result["sha256"] == "e3b0c44298fc"
    assert result["paris"] == 7200  # CEST, from tzdata
    assert result["https"] == 443  # /etc/services, from netbase
    assert result["locale"] == "UTF-8"  # C.UTF-8, from libc-bin
    assert result["fs_encoding"] == "utf-8"
    assert result["certificates"] > 100
    assert proc.stderr == ""


def test_java(rootfs: Callable[[str], pathlib.Path]) -> None:
    root = rootfs("java")
    proc = run_in(root, [f"{JAVA_HOME}/bin/java", "-version"])
    version = upstream("openjdk-17-jre-headless")
    assert f'openjdk version "{version}"' in proc.stderr
    assert "OpenJDK 64-Bit Server VM" in proc.stderr
    properties = run_in(root, [f"{JAVA_HOME}/bin/java", "-XshowSettings:properties", "-version"])
    assert f"java.home = {JAVA_HOME}" in properties.stderr


def test_bash_and_coreutils_for_spark_scripts(rootfs: Callable[[str], pathlib.Path]) -> None:
    # Spark's launch scripts start with `#!/usr/bin/env bash` and use coreutils.
    script = 'echo "$BASH_VERSION"; dirname /opt/spark/bin/spark-class; uname -s; nproc'
    proc = run_in(rootfs("java"), ["/usr/bin/env", "bash", "-c", script])
    bash_version, dirname, system, cpus = proc.stdout.split("\n")[:4]
    assert bash_version.startswith(upstream("bash"))
    assert (dirname, system) == ("/opt/spark/bin", "Linux")
    assert int(cpus) >= 1


def test_postgres_versions(rootfs: Callable[[str], pathlib.Path]) -> None:
    root = rootfs("postgres")
    version = upstream("postgresql-15")
    server = run_in(root, [f"{PG_BIN}/postgres", "--version"])
    assert server.stdout.startswith(f"postgres (PostgreSQL) {version} (Debian ")
    initdb = run_in(root, [f"{PG_BIN}/initdb", "--version"])
    assert initdb.stdout.startswith(f"initdb (PostgreSQL) {version} (Debian ")


def test_postgres_initdb_and_a_query(rootfs: Callable[[str], pathlib.Path]) -> None:
    # initdb finds `postgres` through /bin/sh (popen), hence dash in the postgres set.
    root = rootfs("postgres")
    init = run_in(
        root,
        [
            f"{PG_BIN}/initdb",
            *("-D", "/tmp/pgdata", "-U", "postgres", "--auth=trust"),
            *("--encoding=UTF8", "--locale=C.UTF-8", "--no-sync"),
        ],
        uid=NOBODY,
    )
    assert "Success." in init.stdout
    query = run_in(
        root,
        [f"{PG_BIN}/postgres", "--single", "-D", "/tmp/pgdata", "-j", "postgres"],
        uid=NOBODY,
        stdin="select upper('fraud') || ' ' || (6 * 7)::text as answer;",
    )
    assert 'answer = "FRAUD 42"' in query.stdout


DANGLING_CHECK = """
import json, os
dangling = {}
for folder, dirs, files in os.walk("/"):
    if folder == "/":
        dirs[:] = [d for d in dirs if d not in ("proc", "dev")]
    for name in dirs + files:
        path = os.path.join(folder, name)
        if os.path.islink(path) and not os.path.exists(path):
            dangling[path] = os.path.realpath(path)
print(json.dumps(dangling, sort_keys=True))
"""


@pytest.mark.parametrize("top", ["python", "java", "postgres"])
def test_only_generated_files_are_missing(rootfs: Callable[[str], pathlib.Path], top: str) -> None:
    """Dangling symlinks point only at files the layer builder must generate."""
    proc = run_in(rootfs(top), ["/usr/bin/python3.11", "-c", DANGLING_CHECK])
    dangling = {
        link: target
        for link, target in json.loads(proc.stdout).items()
        if not (link.startswith(DOCS) and target.startswith(DOCS))
    }
    assert set(dangling.values()) <= GENERATED, f"dangling symlinks: {dangling}"
