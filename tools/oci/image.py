"""Assembles OCI images from layers, and packs them into a tarball `docker load` and
`podman load` accept.

Why our own: see layer.py. The image is an OCI image layout (oci-layout, index.json,
blobs/sha256/...) like rules_oci's `oci_image`; an image built on another (`--base`)
inherits its layers, history and configuration. Every JSON document is written with
sorted keys and no whitespace and every time is fixed, so the digest depends only on
the layers and the configuration.

Usage:
    image.py layout OUT_DIR --config CONFIG.json [--base DIR] [--layer TAR.GZ DESC.json]...
        [--stamp-info stable-status.txt] [--ref-name NAME:TAG]
    image.py tarball OUT.tar --layout DIR --repo-tag NAME:TAG [--repo-tag ...]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import re
import shutil
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
CREATED = "2000-01-01T00:00:00Z"  # the layers' mtime (layer.py)
MTIME = 946684800
REF_NAME = "org.opencontainers.image.ref.name"


class ImageError(Exception):
    """An image that cannot be assembled; says which input is wrong."""


def canonical(document: dict) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Layout:
    """An OCI image layout on disk with exactly one image in it."""

    root: Path

    def blob(self, digest: str) -> Path:
        algorithm, _, hexdigest = digest.partition(":")
        if algorithm != "sha256" or not re.fullmatch(r"[0-9a-f]{64}", hexdigest):
            raise ImageError(f"{self.root}: unsupported digest {digest!r}")
        return self.root / "blobs" / "sha256" / hexdigest

    def manifest_descriptor(self) -> dict:
        index = json.loads((self.root / "index.json").read_text())
        if len(index.get("manifests", [])) != 1:
            raise ImageError(f"{self.root}/index.json: expected one image, found {index}")
        return index["manifests"][0]

    def manifest(self) -> dict:
        return json.loads(self.blob(self.manifest_descriptor()["digest"]).read_bytes())

    def config(self) -> dict:
        return json.loads(self.blob(self.manifest()["config"]["digest"]).read_bytes())


def _env_dict(env: list[str]) -> dict[str, str]:
    return dict(item.split("=", 1) for item in env)


def _stamp_values(path: Path | None) -> dict[str, str]:
    if path is None:
        return {}
    values = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition(" ")
        values[key] = value
    return values


def _expand(value: str, stamp: dict[str, str]) -> str:
    """`{STABLE_GIT_COMMIT}` -> its value when stamping (`unknown` if the workspace status
    has none), else `unstamped`."""
    missing = "unknown" if stamp else "unstamped"
    return re.sub(r"\{(STABLE_\w+|BUILD_\w+)\}", lambda m: stamp.get(m.group(1), missing), value)


def image_config(base: dict | None, settings: dict, layers: list[dict], stamp: dict) -> dict:
    """The image configuration: the base's, then these settings, then these layers."""
    config = (
        json.loads(canonical(base))
        if base
        else {
            "architecture": "amd64",
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": []},
            "history": [],
        }
    )
    config["created"] = CREATED
    runtime = config.setdefault("config", {})
    env = _env_dict(runtime.get("Env", []))
    env.update(settings.get("env", {}))
    if env:
        runtime["Env"] = [f"{key}={value}" for key, value in env.items()]
    labels = runtime.get("Labels") or {}
    labels.update({key: _expand(value, stamp) for key, value in settings.get("labels", {}).items()})
    if labels:
        runtime["Labels"] = dict(sorted(labels.items()))
    for key, field in (
        ("entrypoint", "Entrypoint"),
        ("cmd", "Cmd"),
        ("user", "User"),
        ("workdir", "WorkingDir"),
        ("stop_signal", "StopSignal"),
    ):
        if settings.get(key) is not None:
            runtime[field] = settings[key]
    ports = settings.get("exposed_ports", [])
    if ports:
        runtime["ExposedPorts"] = {port if "/" in port else f"{port}/tcp": {} for port in ports}
    for layer in layers:
        config["rootfs"]["diff_ids"].append(layer["diff_id"])
        config["history"].append(
            {"created": CREATED, "created_by": layer.get("created_by", "fraud_pipeline layer")}
        )
    return config


def _write_blob(root: Path, content: bytes) -> dict:
    digest = hashlib.sha256(content).hexdigest()
    (root / "blobs" / "sha256" / digest).write_bytes(content)
    return {"digest": f"sha256:{digest}", "size": len(content)}


def assemble(
    out: Path,
    settings: dict,
    base: Layout | None,
    layers: list[tuple[Path, dict]],
    stamp: dict[str, str],
    ref_name: str | None,
) -> str:
    """Writes the OCI layout; returns the manifest digest."""
    blobs = out / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    base_manifest = base.manifest() if base else {"layers": []}
    layer_descriptors = []
    for descriptor in base_manifest["layers"]:
        shutil.copyfile(
            base.blob(descriptor["digest"]), out / "blobs" / "sha256" / descriptor["digest"][7:]
        )
        layer_descriptors.append(descriptor)
    for tarball, descriptor in layers:
        digest = descriptor["digest"]
        shutil.copyfile(tarball, blobs / digest[7:])
        layer_descriptors.append(
            {"mediaType": descriptor["mediaType"], "digest": digest, "size": descriptor["size"]}
        )
    config = image_config(base.config() if base else None, settings, [d for _, d in layers], stamp)
    config_descriptor = {"mediaType": CONFIG, **_write_blob(out, canonical(config))}
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": config_descriptor,
        "layers": layer_descriptors,
    }
    manifest_descriptor = {"mediaType": MANIFEST, **_write_blob(out, canonical(manifest))}
    if ref_name:
        manifest_descriptor["annotations"] = {REF_NAME: ref_name}
    index = {"schemaVersion": 2, "mediaType": INDEX, "manifests": [manifest_descriptor]}
    (out / "index.json").write_bytes(canonical(index))
    (out / "oci-layout").write_bytes(canonical({"imageLayoutVersion": "1.0.0"}))
    return manifest_descriptor["digest"]


def _tar_add(
    tar: tarfile.TarFile, name: str, content: bytes | None = None, src: Path | None = None
):
    info = tarfile.TarInfo(name)
    info.mtime = MTIME
    info.uname = info.gname = ""
    if content is None and src is None:
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(info)
        return
    info.mode = 0o644
    if src is not None:
        info.size = src.stat().st_size
        with src.open("rb") as stream:
            tar.addfile(info, stream)
    else:
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))


def pack(layout: Layout, out: Path, repo_tags: list[str]) -> None:
    """One tarball, both formats: an OCI layout (docker >= 25, skopeo, podman) and a
    docker-archive manifest.json (every docker and podman) naming the same blobs."""
    manifest = layout.manifest()
    docker_manifest = [
        {
            "Config": f"blobs/sha256/{manifest['config']['digest'][7:]}",
            "RepoTags": repo_tags,
            "Layers": [f"blobs/sha256/{layer['digest'][7:]}" for layer in manifest["layers"]],
        }
    ]
    descriptor = dict(layout.manifest_descriptor())
    if repo_tags:
        descriptor["annotations"] = {REF_NAME: repo_tags[0]}
    index = {"schemaVersion": 2, "mediaType": INDEX, "manifests": [descriptor]}
    digests = sorted(
        {manifest["config"]["digest"], descriptor["digest"]}
        | {layer["digest"] for layer in manifest["layers"]}
    )
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        _tar_add(tar, "blobs")
        _tar_add(tar, "blobs/sha256")
        for digest in digests:
            _tar_add(tar, f"blobs/sha256/{digest[7:]}", src=layout.blob(digest))
        _tar_add(tar, "index.json", canonical(index))
        _tar_add(tar, "manifest.json", json.dumps(docker_manifest, separators=(",", ":")).encode())
        _tar_add(tar, "oci-layout", canonical({"imageLayoutVersion": "1.0.0"}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    layout_cmd = commands.add_parser("layout", help="assemble an OCI image layout")
    layout_cmd.add_argument("output", type=Path)
    layout_cmd.add_argument("--config", type=Path, required=True, help="settings JSON")
    layout_cmd.add_argument("--base", type=Path, help="the base image's OCI layout")
    layout_cmd.add_argument(
        "--layer", nargs=2, action="append", default=[], type=Path, metavar=("TAR_GZ", "DESCRIPTOR")
    )
    layout_cmd.add_argument("--stamp-info", type=Path, help="Bazel's stable-status.txt")
    layout_cmd.add_argument("--ref-name", help="name:tag annotation in index.json")
    tarball_cmd = commands.add_parser("tarball", help="pack a layout for docker/podman load")
    tarball_cmd.add_argument("output", type=Path)
    tarball_cmd.add_argument("--layout", type=Path, required=True)
    tarball_cmd.add_argument("--repo-tag", action="append", default=[])
    args = parser.parse_args(argv)
    try:
        if args.command == "layout":
            layers = [(tar, json.loads(desc.read_text())) for tar, desc in args.layer]
            assemble(
                args.output,
                json.loads(args.config.read_text()),
                Layout(args.base) if args.base else None,
                layers,
                _stamp_values(args.stamp_info),
                args.ref_name,
            )
        else:
            pack(Layout(args.layout), args.output, args.repo_tag)
    except (ImageError, OSError, KeyError, ValueError) as err:
        print(f"image: {args.output}: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
