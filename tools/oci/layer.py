"""Builds one OCI image layer (a gzip tar) from a JSON spec, byte for byte reproducibly.

Why our own: rules_oci and rules_pkg's pkg_tar are not available offline here, and an
image digest is only worth pinning if the same inputs always give the same bytes. So
every entry is normalised: sorted paths, a fixed mtime, root (or the spec's) owner with
no user or group names, modes from the spec or the source's exec bit, parents created,
and gzip with no timestamp or file name. Nothing about the machine or the time leaks in.

Spec (JSON), entries applied in order; a later entry may not change an earlier file:
    {"entries": [
      {"kind": "deb", "src": "x.deb"},                   # a Debian package's data.tar
      {"kind": "file", "src": "a.py", "dest": "/opt/app/a.py"},
      {"kind": "dir", "dest": "/tmp", "mode": "1777", "uid": 0, "gid": 0},
      {"kind": "symlink", "dest": "/bin", "target": "usr/bin"},
      {"kind": "content", "dest": "/etc/passwd", "text": "...", "mode": "0644"}],
     "ca_bundle": true,      # write /etc/ssl/certs/ca-certificates.crt from the CA files
     "dpkg_status": true,    # record each package in /var/lib/dpkg/status.d (scanners)
     "created_by": "..."}    # the image history's line for this layer

Usage: layer.py SPEC OUT.tar.gz OUT.json   (OUT.json: digest, diff_id, size)
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import lzma
import posixpath
import sys
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

# 2000-01-01T00:00:00Z: the same fixed time rules_pkg uses, newer than 0 so tools that
# treat the epoch as "unset" stay quiet.
MTIME = 946684800
# Debian packages still ship files under /bin, /lib, ...; the image has merged /usr.
USR_MERGED = ("bin", "lib", "lib32", "lib64", "libx32", "sbin")
GZIP_LEVEL = 6
CA_BUNDLE = "etc/ssl/certs/ca-certificates.crt"
CA_SOURCES = ("usr/share/ca-certificates/", "usr/local/share/ca-certificates/")


class LayerError(Exception):
    """A spec that cannot be built: names the entry and what is wrong."""


@dataclass
class Entry:
    """One member of the layer: its header and, for regular files, where its bytes are."""

    info: tarfile.TarInfo
    data: Callable[[], bytes] | None = None
    source: str = ""


@dataclass
class Layer:
    entries: dict[str, Entry] = field(default_factory=dict)
    packages: list[tuple[str, bytes]] = field(default_factory=list)  # (name, control)

    def add(self, entry: Entry) -> None:
        path = entry.info.name
        existing = self.entries.get(path)
        if existing is not None and not _same(existing, entry):
            if existing.info.isdir() and entry.info.isdir():
                return  # the first mode wins for a directory named twice
            raise LayerError(
                f"{path}: given twice with different contents"
                f" ({existing.source} and {entry.source})"
            )
        self.entries[path] = entry
        self._parents(path)

    def _parents(self, path: str) -> None:
        parent = posixpath.dirname(path)
        while parent and parent not in self.entries:
            self.entries[parent] = Entry(_header(parent, tarfile.DIRTYPE, 0o755), source="parent")
            parent = posixpath.dirname(parent)


def _same(a: Entry, b: Entry) -> bool:
    ia, ib = a.info, b.info
    if (ia.type, ia.mode, ia.linkname, ia.uid, ia.gid) != (
        ib.type,
        ib.mode,
        ib.linkname,
        ib.uid,
        ib.gid,
    ):
        return False
    return a.data is None or b.data is None or a.data() == b.data()


def normalise(path: str, merge_usr: bool = True) -> str:
    """An archive path: relative, no `.`/`..`, and (unless told not to) /bin, /lib, ...
    moved under /usr, where the image's merged-/usr symlinks point."""
    clean = posixpath.normpath("/" + path).lstrip("/")
    if clean in ("", ".") or clean.startswith(".."):
        raise LayerError(f"{path!r} is not a path inside the image")
    if merge_usr and clean.partition("/")[0] in USR_MERGED:
        clean = f"usr/{clean}"
    return clean


def _header(path: str, kind: bytes, mode: int, uid: int = 0, gid: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(path)
    info.type = kind
    info.mode = mode
    info.uid, info.gid = uid, gid
    info.uname = info.gname = ""
    info.mtime = MTIME
    return info


def _parse_mode(value: str | int | None, default: int) -> int:
    if value is None:
        return default
    return value if isinstance(value, int) else int(value, 8)


def _file_entry(src: Path, dest: str, mode: int | None) -> Entry:
    if not src.is_file():
        raise LayerError(f"{src}: not a file (for {dest})")
    if mode is None:
        mode = 0o755 if src.stat().st_mode & 0o111 else 0o644
    info = _header(normalise(dest), tarfile.REGTYPE, mode)
    info.size = src.stat().st_size
    return Entry(info, data=src.read_bytes, source=str(src))


def _ar_members(blob: bytes, deb: Path) -> Iterator[tuple[str, bytes]]:
    """Members of a Debian package (an `ar` archive)."""
    if not blob.startswith(b"!<arch>\n"):
        raise LayerError(f"{deb}: not a Debian package (no ar header)")
    pos = 8
    while pos + 60 <= len(blob):
        header = blob[pos : pos + 60]
        name = header[:16].decode().strip().rstrip("/")
        size = int(header[48:58].decode().strip())
        yield name, blob[pos + 60 : pos + 60 + size]
        pos += 60 + size + (size % 2)


def _open_tar(name: str, payload: bytes, deb: Path) -> tarfile.TarFile:
    if name.endswith(".xz"):
        payload = lzma.decompress(payload)
    elif name.endswith(".gz"):
        payload = gzip.decompress(payload)
    elif not name.endswith(".tar"):
        raise LayerError(f"{deb}: {name} is compressed in a way this tool does not read")
    return tarfile.open(fileobj=io.BytesIO(payload), mode="r:")


def add_deb(layer: Layer, deb: Path) -> None:
    """Merges a package's files into the layer, as dpkg would unpack them (no scripts run)."""
    members = dict(_ar_members(deb.read_bytes(), deb))
    data_name = next((n for n in members if n.startswith("data.tar")), None)
    control_name = next((n for n in members if n.startswith("control.tar")), None)
    if data_name is None or control_name is None:
        raise LayerError(f"{deb}: no data.tar or control.tar member ({sorted(members)})")
    with _open_tar(control_name, members[control_name], deb) as control_tar:
        control = control_tar.extractfile("./control").read()
    package = next(
        line.split(":", 1)[1].strip()
        for line in control.decode().splitlines()
        if line.startswith("Package:")
    )
    layer.packages.append((package, control))
    with _open_tar(data_name, members[data_name], deb) as data:
        for member in data.getmembers():
            if member.name in (".", "./"):
                continue
            path = normalise(member.name)
            if member.isdir():
                kind = tarfile.DIRTYPE
            elif member.issym():
                kind = tarfile.SYMTYPE
            elif member.islnk():
                kind = tarfile.LNKTYPE
            elif member.isreg():
                kind = tarfile.REGTYPE
            else:
                raise LayerError(f"{deb}: {member.name} is a device or fifo; not supported")
            # Owned by root: the few Debian paths with another group (/var/local: staff)
            # would name groups the image's /etc/group does not have. No set-uid/gid
            # bits (su, ...): nothing in a container should gain privileges.
            info = _header(path, kind, member.mode & 0o1777)
            if member.issym():
                info.linkname = member.linkname
            elif member.islnk():
                info.linkname = normalise(member.linkname)
            entry = Entry(info, source=f"{deb.name}")
            if member.isreg():
                content = data.extractfile(member).read()
                info.size = len(content)
                entry.data = lambda content=content: content
            layer.add(entry)


def add_ca_bundle(layer: Layer) -> None:
    """What update-ca-certificates would write: every CA certificate, concatenated."""
    certs = sorted(
        path
        for path, entry in layer.entries.items()
        if path.startswith(CA_SOURCES) and path.endswith(".crt") and entry.data is not None
    )
    if not certs:
        raise LayerError("ca_bundle: no CA certificates in the layer (ca-certificates missing?)")
    bundle = b"".join(layer.entries[path].data().rstrip(b"\n") + b"\n" for path in certs)
    add_content(layer, "/" + CA_BUNDLE, bundle, 0o644)


def add_dpkg_status(layer: Layer) -> None:
    """distroless-style package records, so image scanners can list what is inside."""
    for package, control in layer.packages:
        text = control.rstrip(b"\n") + b"\nStatus: install ok installed\n"
        add_content(layer, f"/var/lib/dpkg/status.d/{package}", text, 0o644)


def add_content(layer: Layer, dest: str, content: bytes, mode: int, uid: int = 0, gid: int = 0):
    info = _header(normalise(dest), tarfile.REGTYPE, mode, uid, gid)
    info.size = len(content)
    layer.add(Entry(info, data=lambda: content, source="content"))


def build(spec: dict, base_dir: Path = Path(".")) -> Layer:
    layer = Layer()
    for item in spec.get("entries", []):
        kind = item.get("kind")
        try:
            if kind == "deb":
                add_deb(layer, base_dir / item["src"])
            elif kind == "file":
                mode = _parse_mode(item.get("mode"), None) if "mode" in item else None
                layer.add(_file_entry(base_dir / item["src"], item["dest"], mode))
            elif kind == "dir":
                info = _header(
                    normalise(item["dest"]),
                    tarfile.DIRTYPE,
                    _parse_mode(item.get("mode"), 0o755),
                    item.get("uid", 0),
                    item.get("gid", 0),
                )
                path = info.name
                layer.entries.pop(path, None)  # an explicit directory sets its own owner
                layer.add(Entry(info, source="dir"))
            elif kind == "symlink":
                # Not moved under /usr: this is how the merged-/usr links themselves are made.
                info = _header(normalise(item["dest"], merge_usr=False), tarfile.SYMTYPE, 0o777)
                info.linkname = item["target"]
                layer.add(Entry(info, source="symlink"))
            elif kind == "content":
                content = item["text"].encode()
                mode = _parse_mode(item.get("mode"), 0o644)
                add_content(
                    layer, item["dest"], content, mode, item.get("uid", 0), item.get("gid", 0)
                )
            else:
                raise LayerError(f"unknown entry kind {kind!r}")
        except KeyError as missing:
            raise LayerError(f"entry {item}: missing {missing}") from None
    if spec.get("ca_bundle"):
        add_ca_bundle(layer)
    if spec.get("dpkg_status"):
        add_dpkg_status(layer)
    return layer


class _Hashing(io.RawIOBase):
    """A write-only stream that hashes and counts what passes through to `sink`."""

    def __init__(self, sink) -> None:
        self.sink, self.sha256, self.size = sink, hashlib.sha256(), 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.sha256.update(data)
        self.size += len(data)
        self.sink.write(data)
        return len(data)


def write(layer: Layer, out: Path, created_by: str = "fraud_pipeline layer") -> dict:
    """Writes the layer as tar+gzip; returns its descriptor (digest, diff_id, size)."""
    with out.open("wb") as raw:
        compressed = _Hashing(raw)
        with gzip.GzipFile(
            filename="", fileobj=compressed, mode="wb", compresslevel=GZIP_LEVEL, mtime=0
        ) as gz:
            uncompressed = _Hashing(gz)
            with tarfile.open(fileobj=uncompressed, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                for path in sorted(layer.entries, key=lambda p: p.encode()):
                    entry = layer.entries[path]
                    if entry.data is None:
                        tar.addfile(entry.info)
                    else:
                        tar.addfile(entry.info, io.BytesIO(entry.data()))
    return {
        "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
        "digest": "sha256:" + compressed.sha256.hexdigest(),
        "size": compressed.size,
        "diff_id": "sha256:" + uncompressed.sha256.hexdigest(),
        "files": sum(1 for e in layer.entries.values() if e.data is not None),
        "created_by": created_by,
        "uncompressed_size": uncompressed.size,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("spec", type=Path, help="the layer's JSON spec")
    parser.add_argument("output", type=Path, help="where to write the .tar.gz")
    parser.add_argument("descriptor", type=Path, help="where to write digest, diff_id, size")
    args = parser.parse_args(argv)
    try:
        layer = build(json.loads(args.spec.read_text()))
        spec = json.loads(args.spec.read_text())
        descriptor = write(layer, args.output, spec.get("created_by", args.output.name))
    except LayerError as err:
        print(f"layer: {args.output.name}: {err}", file=sys.stderr)
        return 1
    args.descriptor.write_text(json.dumps(descriptor, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
