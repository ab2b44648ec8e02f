"""Reading image layouts: what a good one yields, and a clear refusal for each kind of
damage, including a blob that only turns out corrupt while it is streamed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools.oci.push.layout import LayoutError, read_layout
from tools.oci.push.sample_image import SampleImage, random_bytes, sha256, write_layout


@pytest.fixture
def sample(tmp_path) -> SampleImage:
    return write_layout(
        tmp_path / "layout",
        [{"app/a.txt": b"hello"}, {"app/big.bin": random_bytes(300_000, seed=1)}],
        ref_name="v1",
    )


def test_reads_the_one_image(sample):
    image = read_layout(sample.directory)
    assert image.manifest == sample.manifest
    assert image.manifest_digest == sample.manifest_digest
    assert image.media_type == "application/vnd.oci.image.manifest.v1+json"
    assert image.ref_name == "v1"
    assert image.config.digest == sample.config_digest
    assert tuple(layer.digest for layer in image.layers) == sample.layer_digests
    assert [b.digest for b in image.blobs] == [*sample.layer_digests, sample.config_digest]
    assert image.total_size == sum(len(sample.blobs[b.digest]) for b in image.blobs)
    assert image.config.short == sample.config_digest[:19]


def test_a_layer_listed_twice_is_pushed_once(tmp_path):
    sample = write_layout(tmp_path / "l", [{"a": b"same"}, {"a": b"same"}])
    image = read_layout(sample.directory)
    assert len(image.layers) == 2 and len(image.blobs) == 2  # one layer + config


def _edit_json(path: Path, edit) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def _rewrite_manifest(sample: SampleImage, edit) -> None:
    """Change the manifest and keep index.json pointing at it (digest and size)."""
    manifest = json.loads(sample.manifest)
    edit(manifest)
    data = json.dumps(manifest).encode()
    digest = sha256(data)
    sample.blob_path(digest).write_bytes(data)

    def point(index):
        index["manifests"][0].update(digest=digest, size=len(data))

    _edit_json(sample.directory / "index.json", point)


def test_missing_directory_and_marker(tmp_path, sample):
    with pytest.raises(LayoutError, match="is not a directory"):
        read_layout(tmp_path / "nowhere")
    (sample.directory / "oci-layout").unlink()
    with pytest.raises(LayoutError, match=r"oci-layout is missing; is .* an OCI image layout"):
        read_layout(sample.directory)


def test_wrong_layout_version(sample):
    (sample.directory / "oci-layout").write_text('{"imageLayoutVersion": "2.0.0"}')
    with pytest.raises(LayoutError, match=r"imageLayoutVersion is '2\.0\.0', expected '1\.0\.0'"):
        read_layout(sample.directory)


@pytest.mark.parametrize("count", [0, 2])
def test_exactly_one_manifest(sample, count):
    def edit(index):
        index["manifests"] = index["manifests"] * count

    _edit_json(sample.directory / "index.json", edit)
    with pytest.raises(LayoutError, match=f"has {count} manifests; .* exactly one"):
        read_layout(sample.directory)


def test_image_index_inside_is_refused(sample):
    def edit(index):
        index["manifests"][0]["mediaType"] = "application/vnd.oci.image.index.v1+json"

    _edit_json(sample.directory / "index.json", edit)
    with pytest.raises(LayoutError, match="multi-platform images are not supported"):
        read_layout(sample.directory)


def test_manifest_that_does_not_hash_to_its_digest(sample):
    path = sample.blob_path(sample.manifest_digest)
    path.write_bytes(sample.manifest + b" ")  # still valid JSON, no longer its digest

    def keep_size(index):
        index["manifests"][0]["size"] = path.stat().st_size

    _edit_json(sample.directory / "index.json", keep_size)
    with pytest.raises(LayoutError, match=r"corrupt layout: manifest .* hashes to sha256:"):
        read_layout(sample.directory)


@pytest.mark.parametrize(
    ("digest", "message"),
    [
        ("sha512:" + "ab" * 64, "uses sha512; only sha256 is supported"),
        ("sha256:../../../../etc/passwd", "is not 'sha256:' and 64 hex digits"),
        ("sha256:" + "AB" * 32, "is not 'sha256:' and 64 hex digits"),
        (None, "is not 'sha256:'"),
    ],
)
def test_bad_digests(sample, digest, message):
    def edit(manifest):
        manifest["layers"][0]["digest"] = digest

    _rewrite_manifest(sample, edit)
    with pytest.raises(LayoutError, match=message):
        read_layout(sample.directory)


def test_missing_blob_and_wrong_size(sample):
    layer = sample.blob_path(sample.layer_digests[1])
    content = layer.read_bytes()
    layer.write_bytes(content[:-10])
    with pytest.raises(
        LayoutError, match=r"layers\[1\]: blob .* has \d+ bytes, the descriptor says"
    ):
        read_layout(sample.directory)
    layer.unlink()
    with pytest.raises(LayoutError, match=r"layers\[1\]: blob .* is missing"):
        read_layout(sample.directory)


def test_manifest_media_type_must_agree_with_the_index(sample):
    def edit(manifest):
        manifest["mediaType"] = "application/vnd.docker.distribution.manifest.v2+json"

    _rewrite_manifest(sample, edit)
    with pytest.raises(LayoutError, match=r"differs from index\.json's"):
        read_layout(sample.directory)


def test_streaming_a_good_blob_checks_and_yields_every_byte(sample):
    image = read_layout(sample.directory)
    big = image.layers[1]
    with big.open() as reader:
        chunks = iter(lambda: reader.read(64 * 1024), b"")
        assert b"".join(chunks) == sample.blobs[big.digest]


def test_corrupt_blob_is_refused_before_its_last_chunk(sample):
    image = read_layout(sample.directory)
    big = image.layers[1]
    content = bytearray(big.path.read_bytes())
    content[1000] ^= 0xFF  # same size, other content: only the hash can tell
    big.path.write_bytes(bytes(content))
    handed_out = 0
    with big.open() as reader, pytest.raises(LayoutError, match=r"hashes to sha256:.*rebuild"):
        while chunk := reader.read(64 * 1024):
            handed_out += len(chunk)
    assert handed_out < big.size  # so an upload never completes with the bad content


def test_blob_shrunk_after_reading_the_layout(sample):
    image = read_layout(sample.directory)
    big = image.layers[1]
    big.path.write_bytes(big.path.read_bytes()[:100])
    with big.open() as reader, pytest.raises(LayoutError, match="has 100 bytes, its descriptor"):
        while reader.read(64 * 1024):
            pass
