"""The committed packages.bzl is complete and consistent, without the network.

Checks what the layer builder relies on: every set's packages are pinned, each set's
closure is complete within the set and the sets it builds on, sets list dependencies
first, nothing excluded slipped in, and each pin is a sha256 and a pool URL.
"""

from __future__ import annotations

import os
import pathlib
import re

import pytest

from tools.oci.debian import update

LOCK = update.read_lock(pathlib.Path(os.environ.get("DEBIAN_LOCK", update.LOCK)))
PACKAGES: dict[str, dict] = LOCK["DEBIAN_PACKAGES"]  # type: ignore[assignment]
SETS: dict[str, list[str]] = LOCK["PACKAGE_SETS"]  # type: ignore[assignment]
BASES: dict[str, str | None] = LOCK["PACKAGE_SETS_BASE"]  # type: ignore[assignment]
POOLS = (f"{update.DEBIAN}/pool/", f"{update.DEBIAN_SECURITY}/pool/")


def chain(name: str) -> list[str]:
    """The set and the sets it builds on, nearest first."""
    names = []
    current: str | None = name
    while current is not None:
        names.append(current)
        current = BASES[current]
    return names


def test_sets_are_the_ones_update_py_defines() -> None:
    assert list(SETS) == [spec.name for spec in update.SETS]
    assert {spec.name: spec.base for spec in update.SETS} == BASES
    for name, base in BASES.items():
        if base is not None:  # a base comes before the sets built on it
            assert list(SETS).index(base) < list(SETS).index(name)


@pytest.mark.parametrize("name", list(SETS))
def test_set_packages_are_pinned_once_and_not_in_base_sets(name: str) -> None:
    members = SETS[name]
    assert members, f"set {name} is empty"
    assert len(set(members)) == len(members), f"set {name} lists a package twice"
    missing = [p for p in members if p not in PACKAGES]
    assert not missing, f"set {name}: no DEBIAN_PACKAGES entry for {missing}"
    for base in chain(name)[1:]:
        shared = sorted(set(members) & set(SETS[base]))
        assert not shared, f"set {name} repeats packages of its base {base}: {shared}"


@pytest.mark.parametrize("spec", update.SETS, ids=lambda s: s.name)
def test_roots_are_in_the_set_or_its_bases(spec: update.PackageSet) -> None:
    available = {p for s in chain(spec.name) for p in SETS[s]}
    assert set(spec.roots) <= available


@pytest.mark.parametrize("name", list(SETS))
def test_closure_is_complete(name: str) -> None:
    available = {p for s in chain(name) for p in SETS[s]}
    for pkg in SETS[name]:
        outside = sorted(set(PACKAGES[pkg]["depends"]) - available)
        assert not outside, f"{pkg} (set {name}) depends on {outside}, in no set it builds on"


def reaches(start: str, goal: str) -> bool:
    seen, stack = set(), [start]
    while stack:
        current = stack.pop()
        if current == goal:
            return True
        if current not in seen:
            seen.add(current)
            stack.extend(PACKAGES[current]["depends"])
    return False


@pytest.mark.parametrize("name", list(SETS))
def test_sets_list_dependencies_first(name: str) -> None:
    position = {pkg: i for i, pkg in enumerate(SETS[name])}
    for pkg, i in position.items():
        for dep in PACKAGES[pkg]["depends"]:
            if dep in position and position[dep] > i:
                # Only a dependency cycle (libc6 <-> libgcc-s1) may put one after the other.
                assert reaches(dep, pkg), f"set {name}: {dep} comes after {pkg}, which needs it"


def test_every_pinned_package_belongs_to_a_set() -> None:
    in_sets = {p for members in SETS.values() for p in members}
    assert sorted(set(PACKAGES) - in_sets) == []


def test_nothing_excluded_slipped_in() -> None:
    for name, pkg in PACKAGES.items():
        assert name not in update.EXCLUDE, f"{name} is excluded: {update.EXCLUDE[name]}"
        leaked = sorted(set(pkg["depends"]) & set(update.EXCLUDE))
        assert not leaked, f"{name} depends on excluded {leaked}"


@pytest.mark.parametrize("name", sorted(PACKAGES))
def test_pin_is_a_sha256_and_a_pool_url(name: str) -> None:
    pkg = PACKAGES[name]
    assert re.fullmatch(r"[0-9a-f]{64}", pkg["sha256"]), pkg["sha256"]
    assert pkg["arch"] in (LOCK["DEBIAN_ARCH"], "all")
    assert pkg["url"].startswith(POOLS), pkg["url"]
    assert pkg["url"].endswith("/" + pkg["filename"])
    assert pkg["suite"] in LOCK["DEBIAN_SUITES"]
    # Debian's file name: <name>_<version without epoch>_<arch>.deb
    version = pkg["version"].split(":", 1)[-1]
    assert pkg["filename"] == f"{name}_{version}_{pkg['arch']}.deb"
    assert pkg["depends"] == sorted(set(pkg["depends"])), "depends are sorted and unique"


def test_lock_is_sorted() -> None:
    assert list(PACKAGES) == sorted(PACKAGES)
    assert len({p["filename"] for p in PACKAGES.values()}) == len(PACKAGES)
