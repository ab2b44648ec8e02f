"""An image's digest depends on its inputs and nothing else.

oci_reproducibility_test (defs.bzl) hands this test the specs of an image's own layers,
the very input files Bazel used, and the image Bazel built. The test builds the layers
and the image again, from another working directory, under another umask and time zone,
with the entries of every spec shuffled, and requires the same layer digests and the
same image digest. A build in a clean output base runs these same actions on the same
inputs, so this is the property that makes two clean builds agree
(`tools/oci/reproducible.sh` does that for real; it takes minutes).
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

from tools.oci import image, layer

RUNFILES = Path(os.environ["TEST_SRCDIR"])


def runfile(exec_path: str) -> Path:
    """Where an action input (an exec-root path) sits in this test's runfiles."""
    parts = exec_path.split("/")
    if parts[0] == "bazel-out":
        parts = parts[3:]  # bazel-out/<configuration>/bin/...
    if parts[0] == "external":
        return RUNFILES.joinpath(*parts[1:])
    return RUNFILES.joinpath("_main", *parts)


def rootpath(path: str) -> Path:
    """A `$(rootpath)` from the test's environment."""
    if path.startswith("../"):
        return RUNFILES / path[3:]
    return RUNFILES / "_main" / path


def _rebuild_layer(spec_path: Path, out: Path, seed: int) -> dict:
    spec = json.loads(spec_path.read_text())
    entries = [dict(entry) for entry in spec["entries"]]
    for entry in entries:
        if "src" in entry:
            entry["src"] = str(runfile(entry["src"]))
    if not any(entry["kind"] == "deb" for entry in entries):
        random.Random(seed).shuffle(entries)  # packages keep their order: it is dpkg's
    spec["entries"] = entries
    return layer.write(layer.build(spec), out, spec.get("created_by", out.name))


def test_layers_and_image_rebuild_to_the_same_digests(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TZ", "Pacific/Chatham")
    time.tzset()
    old_umask = os.umask(0o077)
    try:
        built = image.Layout(rootpath(os.environ["IMAGE_LAYOUT"]))
        manifest = built.manifest()
        specs = os.environ["LAYER_SPECS"].split()
        own_layers = manifest["layers"][len(manifest["layers"]) - len(specs) :]
        rebuilt = []
        for number, (spec, expected) in enumerate(zip(specs, own_layers, strict=True)):
            out = tmp_path / f"layer{number}.tar.gz"
            descriptor = _rebuild_layer(rootpath(spec), out, seed=number)
            assert descriptor["digest"] == expected["digest"], f"layer {spec} differs"
            rebuilt.append((out, descriptor))
        base = os.environ.get("IMAGE_BASE")
        digest = image.assemble(
            tmp_path / "layout",
            json.loads(rootpath(os.environ["IMAGE_CONFIG"]).read_text()),
            image.Layout(rootpath(base)) if base else None,
            rebuilt,
            {},
            built.manifest_descriptor().get("annotations", {}).get(image.REF_NAME),
        )
        assert digest == built.manifest_descriptor()["digest"]
    finally:
        os.umask(old_umask)
