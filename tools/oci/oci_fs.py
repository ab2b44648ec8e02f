"""Reads a built image the way a container runtime would: the OCI layout's manifest and
config, and the file system its layers add up to. For tests of our own images.

Why not podman for this: structure checks (who owns what, which files exist, where
symlinks point) are exact questions about the layers' bytes; reading them directly
needs no engine and shows the path that is wrong.
"""

from __future__ import annotations

import json
import posixpath
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from tools.oci.image import Layout


@dataclass(frozen=True)
class Member:
    path: str  # absolute, e.g. /usr/bin/python3.11
    kind: str  # "file", "dir", "symlink", "hardlink"
    mode: int
    uid: int
    gid: int
    size: int
    target: str = ""
    layer: int = 0


@dataclass
class ImageFs:
    """The merged file system of an image: path -> Member (last layer wins)."""

    members: dict[str, Member] = field(default_factory=dict)
    layer_sizes: list[int] = field(default_factory=list)  # compressed bytes per layer

    def exists(self, path: str) -> bool:
        return self.resolve(path) is not None

    def resolve(self, path: str, depth: int = 0) -> Member | None:
        """Follows symlinks (in every path component) like the kernel would inside."""
        if depth > 40:
            return None
        parts = [p for p in path.split("/") if p]
        current = "/"
        for index, part in enumerate(parts):
            candidate = posixpath.join(current, part)
            member = self.members.get(candidate)
            if member is None:
                return None
            if member.kind == "symlink":
                target = member.target
                base = target if target.startswith("/") else posixpath.join(current, target)
                rest = "/".join(parts[index + 1 :])
                return self.resolve(posixpath.normpath(posixpath.join(base, rest)), depth + 1)
            current = candidate
        return self.members.get(current) if current != "/" else None

    def dangling_symlinks(self) -> list[str]:
        return sorted(
            path
            for path, member in self.members.items()
            if member.kind == "symlink" and self.resolve(path) is None
        )

    def find(self, predicate) -> list[str]:
        return sorted(path for path, member in self.members.items() if predicate(path, member))


def _kind(info: tarfile.TarInfo) -> str:
    if info.isdir():
        return "dir"
    if info.issym():
        return "symlink"
    if info.islnk():
        return "hardlink"
    return "file"


def read_fs(layout: Layout) -> ImageFs:
    fs = ImageFs()
    for number, descriptor in enumerate(layout.manifest()["layers"]):
        fs.layer_sizes.append(descriptor["size"])
        with tarfile.open(layout.blob(descriptor["digest"]), "r:gz") as tar:
            for info in tar:
                path = "/" + posixpath.normpath(info.name).lstrip("/")
                name = posixpath.basename(path)
                if name.startswith(".wh."):
                    raise AssertionError(f"whiteout {path}: our images never delete files")
                fs.members[path] = Member(
                    path=path,
                    kind=_kind(info),
                    mode=info.mode,
                    uid=info.uid,
                    gid=info.gid,
                    size=info.size,
                    target=info.linkname,
                    layer=number,
                )
    return fs


def config(layout_dir: Path) -> dict:
    return Layout(layout_dir).config()


def load_json(path: Path) -> dict:
    return json.loads(path.read_text())
