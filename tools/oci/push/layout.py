"""Reading an OCI image layout directory, and reading its blobs with their digest checked.

Why: the push must send exactly what the image builder wrote, and refuse a layout that
is damaged (a truncated layer, a blob that does not hash to its name) before the
registry stores anything under a wrong name. Layers are streamed, never held in memory.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.oci.push.reference import DIGEST_RE

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEX_TYPES = frozenset(
    {
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    }
)
REF_NAME = "org.opencontainers.image.ref.name"
MAX_MANIFEST_BYTES = 4 * 1024 * 1024  # what registries accept at most


class LayoutError(Exception):
    """The layout is missing, malformed or corrupt; the message names the file and why."""


@dataclass(frozen=True)
class Blob:
    """One content-addressed file of the layout: the config or a layer."""

    digest: str
    size: int
    media_type: str
    path: Path

    @property
    def short(self) -> str:
        """`sha256:` and the first 12 hex digits, for progress lines."""
        return self.digest[:19]

    def open(self) -> VerifyingReader:
        return VerifyingReader(self)


@dataclass(frozen=True)
class Image:
    """The one image of a layout: its manifest's exact bytes and the blobs it names."""

    layout: Path
    manifest: bytes = field(repr=False)
    manifest_digest: str
    media_type: str
    config: Blob
    layers: tuple[Blob, ...]
    ref_name: str | None = None

    @property
    def blobs(self) -> tuple[Blob, ...]:
        """Layers, then the config (the order other clients push in), each digest once."""
        seen: dict[str, Blob] = {}
        for blob in (*self.layers, self.config):
            seen.setdefault(blob.digest, blob)
        return tuple(seen.values())

    @property
    def total_size(self) -> int:
        return sum(blob.size for blob in self.blobs)


class VerifyingReader:
    """A blob's file, read in chunks, with its sha256 and size checked as it is read.

    The digest is checked when the last byte has been read but before that last chunk is
    handed out, so an upload of a corrupt blob never completes.
    """

    def __init__(self, blob: Blob) -> None:
        self.blob = blob
        self._hash = hashlib.sha256()
        self._read = 0
        self._verified = False
        try:
            self._file = open(blob.path, "rb")  # noqa: SIM115 (closed by close())
        except OSError as err:
            raise LayoutError(f"cannot read blob {blob.path}: {err.strerror}") from None

    def read(self, size: int = -1) -> bytes:
        chunk = self._file.read(size if size > 0 else 1024 * 1024)
        self._hash.update(chunk)
        self._read += len(chunk)
        if self._read > self.blob.size:
            raise LayoutError(
                f"corrupt layout: blob {self.blob.path} is longer than the "
                f"{self.blob.size} bytes its descriptor says"
            )
        if not chunk and self._read < self.blob.size:
            raise LayoutError(
                f"corrupt layout: blob {self.blob.path} has {self._read} bytes, "
                f"its descriptor says {self.blob.size}"
            )
        if self._read == self.blob.size and not self._verified:
            actual = "sha256:" + self._hash.hexdigest()
            if actual != self.blob.digest:
                raise LayoutError(
                    f"corrupt layout: blob {self.blob.path} hashes to {actual}, "
                    f"not {self.blob.digest}; rebuild the image"
                )
            self._verified = True
        return chunk

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> VerifyingReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_layout(directory: Path) -> Image:
    """The single image in `directory`, with every blob present at its declared size."""
    if not directory.is_dir():
        raise LayoutError(f"image layout {directory} is not a directory")
    marker = _read_json(directory / "oci-layout")
    version = marker.get("imageLayoutVersion") if isinstance(marker, dict) else None
    if not isinstance(version, str) or not version.startswith("1."):
        raise LayoutError(
            f"{directory / 'oci-layout'}: imageLayoutVersion is {version!r}, expected '1.0.0'"
        )
    index_path = directory / "index.json"
    index = _read_json(index_path)
    if not isinstance(index, dict) or index.get("schemaVersion") != 2:
        raise LayoutError(f"{index_path}: expected a JSON object with schemaVersion 2")
    manifests = index.get("manifests")
    if not isinstance(manifests, list) or len(manifests) != 1:
        count = len(manifests) if isinstance(manifests, list) else "no"
        raise LayoutError(
            f"{index_path}: has {count} manifests; the push takes a layout with exactly one "
            "image (one manifest in index.json)"
        )
    top = manifests[0]
    media_type, digest, size, _ = _descriptor(top, f"{index_path} manifests[0]")
    if media_type in INDEX_TYPES:
        raise LayoutError(
            f"{index_path}: manifests[0] is an image index ({media_type}); multi-platform "
            "images are not supported, expected a single image manifest"
        )
    if media_type not in MANIFEST_TYPES:
        raise LayoutError(
            f"{index_path}: manifests[0] has mediaType {media_type!r}, expected {OCI_MANIFEST}"
        )
    if size > MAX_MANIFEST_BYTES:
        raise LayoutError(f"{index_path}: manifest size {size} is larger than registries accept")
    manifest_blob = _blob(directory, media_type, digest, size, f"{index_path} manifests[0]")
    manifest_bytes = manifest_blob.path.read_bytes()
    actual = "sha256:" + hashlib.sha256(manifest_bytes).hexdigest()
    if actual != digest:
        raise LayoutError(
            f"corrupt layout: manifest {manifest_blob.path} hashes to {actual}, not {digest}"
        )
    manifest_where = f"manifest {manifest_blob.path}"
    try:
        manifest = json.loads(manifest_bytes)
    except ValueError as err:
        raise LayoutError(f"{manifest_where} is not valid JSON: {err}") from None
    if not isinstance(manifest, dict) or manifest.get("schemaVersion") != 2:
        raise LayoutError(f"{manifest_where}: expected a JSON object with schemaVersion 2")
    declared = manifest.get("mediaType")
    if declared is not None and declared != media_type:
        raise LayoutError(
            f"{manifest_where}: mediaType {declared!r} differs from index.json's {media_type!r}"
        )
    config = _blob(directory, *_descriptor(manifest.get("config"), f"{manifest_where} config"))
    layers_json = manifest.get("layers")
    if not isinstance(layers_json, list):
        raise LayoutError(f"{manifest_where}: 'layers' is missing or not a list")
    layers = tuple(
        _blob(directory, *_descriptor(layer, f"{manifest_where} layers[{i}]"))
        for i, layer in enumerate(layers_json)
    )
    annotations = top.get("annotations") or {}
    ref_name = annotations.get(REF_NAME) if isinstance(annotations, dict) else None
    return Image(
        layout=directory,
        manifest=manifest_bytes,
        manifest_digest=digest,
        media_type=media_type,
        config=config,
        layers=layers,
        ref_name=ref_name if isinstance(ref_name, str) else None,
    )


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        raise LayoutError(f"{path} is missing; is {path.parent} an OCI image layout?") from None
    except OSError as err:
        raise LayoutError(f"cannot read {path}: {err.strerror}") from None
    except ValueError as err:
        raise LayoutError(f"{path} is not valid JSON: {err}") from None


def _descriptor(obj: Any, where: str) -> tuple[str, str, int, str]:
    """(mediaType, digest, size, where) of a descriptor, each checked."""
    if not isinstance(obj, dict):
        raise LayoutError(f"{where}: expected a descriptor object, got {obj!r}")
    media_type, digest, size = obj.get("mediaType"), obj.get("digest"), obj.get("size")
    if not isinstance(media_type, str) or not media_type:
        raise LayoutError(f"{where}: mediaType is missing")
    if not isinstance(digest, str) or not DIGEST_RE.fullmatch(digest):
        algorithm = digest.partition(":")[0] if isinstance(digest, str) else None
        if algorithm and algorithm != "sha256" and ":" in digest:
            raise LayoutError(
                f"{where}: digest {digest!r} uses {algorithm}; only sha256 is supported"
            )
        raise LayoutError(f"{where}: digest {digest!r} is not 'sha256:' and 64 hex digits")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise LayoutError(f"{where}: size {size!r} is not a non-negative integer")
    return media_type, digest, size, where


def _blob(directory: Path, media_type: str, digest: str, size: int, where: str) -> Blob:
    path = directory / "blobs" / "sha256" / digest.removeprefix("sha256:")
    try:
        actual = path.stat().st_size
    except FileNotFoundError:
        raise LayoutError(f"{where}: blob {path} is missing") from None
    if not path.is_file():
        raise LayoutError(f"{where}: blob {path} is not a file")
    if actual != size:
        raise LayoutError(
            f"corrupt layout: {where}: blob {path} has {actual} bytes, the descriptor says {size}"
        )
    return Blob(digest=digest, size=size, media_type=media_type, path=path)
