"""Small but real OCI image layouts for the push tests: gzip tar layers, a config whose
diff_ids match them, a manifest, index.json and oci-layout, every digest computed.

Why: the push tests must not depend on the image builder (written and tested elsewhere),
yet must push something any registry and skopeo take for a genuine image.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class SampleImage:
    directory: Path
    manifest: bytes = field(repr=False)
    manifest_digest: str
    config_digest: str
    layer_digests: tuple[str, ...]
    blobs: Mapping[str, bytes] = field(repr=False)  # digest -> content, manifest included

    def blob_path(self, digest: str) -> Path:
        return self.directory / "blobs" / "sha256" / digest.removeprefix("sha256:")


def tar_layer(files: Mapping[str, bytes]) -> bytes:
    """A reproducible tar of `files` (path -> content), owned by root, mtime 0."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(files[name]), 0o644, 0
            tar.addfile(info, io.BytesIO(files[name]))
    return buffer.getvalue()


def random_bytes(size: int, seed: int) -> bytes:
    """Incompressible content, so a layer really is `size` bytes on the wire."""
    return random.Random(seed).randbytes(size)


def write_layout(
    directory: Path,
    layers: Sequence[Mapping[str, bytes]],
    *,
    cmd: Sequence[str] = ("/bin/true",),
    ref_name: str = "latest",
) -> SampleImage:
    """Write an OCI image layout with one gzip layer per mapping in `layers`."""
    blobs: dict[str, bytes] = {}
    descriptors, diff_ids = [], []
    for files in layers:
        tar = tar_layer(files)
        compressed = gzip.compress(tar, mtime=0)
        digest = sha256(compressed)
        blobs[digest] = compressed
        diff_ids.append(sha256(tar))
        descriptors.append({"mediaType": OCI_LAYER, "digest": digest, "size": len(compressed)})
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": list(cmd), "Env": ["PATH=/usr/bin:/bin"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created_by": "tools/oci/push/sample_image.py"} for _ in layers],
        },
        sort_keys=True,
    ).encode()
    config_digest = sha256(config)
    blobs[config_digest] = config
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
            "layers": descriptors,
        },
        indent=2,  # not the registry's own formatting: the bytes must survive as sent
    ).encode()
    manifest_digest = sha256(manifest)
    blobs[manifest_digest] = manifest
    (directory / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    for digest, content in blobs.items():
        (directory / "blobs" / "sha256" / digest.removeprefix("sha256:")).write_bytes(content)
    (directory / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": manifest_digest,
                "size": len(manifest),
                "annotations": {"org.opencontainers.image.ref.name": ref_name},
            }
        ],
    }
    (directory / "index.json").write_text(json.dumps(index, indent=2))
    return SampleImage(
        directory=directory,
        manifest=manifest,
        manifest_digest=manifest_digest,
        config_digest=config_digest,
        layer_digests=tuple(d["digest"] for d in descriptors),
        blobs=blobs,
    )
