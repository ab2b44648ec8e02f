"""The resolver's pure parts, on a hand-written index: no network, no lock."""

from __future__ import annotations

import dataclasses

import pytest

from tools.oci.debian import update
from tools.oci.debian.update import Index, Package, Relation


@pytest.mark.parametrize(
    ("older", "newer"),
    [
        ("1.0", "1.0a"),
        ("1.0~rc1", "1.0"),
        ("1.0~~", "1.0~"),
        ("1.0", "1.0+b1"),
        ("1.0-1", "1.0-1+b1"),
        ("2.0", "1:0.1"),
        ("1.2.3", "1.10"),
        ("2.36-9+deb12u9", "2.36-9+deb12u10"),
        ("3.11.2-6+deb12u8", "3.11.2-6+deb12u9"),
        ("17.0.19+10-1~deb12u2", "17.0.21.1+2-1~deb12u1"),
        ("1.2-3", "1.2-10"),
        ("1:1.2.13.dfsg-1", "1:1.2.13.dfsg-1+deb12u1"),
        ("0.5.12-2", "0.5.12-2.1"),
    ],
)
def test_version_order(older: str, newer: str) -> None:
    assert update.compare_versions(older, newer) < 0
    assert update.compare_versions(newer, older) > 0


@pytest.mark.parametrize(
    ("a", "b"), [("1.0", "1.00"), ("1.0-0", "1.0"), ("0:1.0", "1.0"), ("1.01", "1.1")]
)
def test_version_equal(a: str, b: str) -> None:
    assert update.compare_versions(a, b) == 0


def test_relations_with_alternatives_versions_and_arch_qualifiers() -> None:
    parsed = update.parse_relations(
        "libc6 (>= 2.34), debconf (>= 0.5) | debconf-2.0, python3:any, libfoo1 (< 2)"
    )
    assert parsed == (
        (Relation("libc6", ">=", "2.34"),),
        (Relation("debconf", ">=", "0.5"), Relation("debconf-2.0")),
        (Relation("python3"),),
        (Relation("libfoo1", "<=", "2"),),  # deprecated `<` means <=
    )
    with pytest.raises(update.ResolutionError, match="cannot parse"):
        update.parse_relation("Bad Name")


def _pkg(name: str, version: str = "1.0", depends: str = "", provides: str = "") -> Package:
    return Package(
        name=name,
        version=version,
        arch="amd64",
        filename=f"pool/main/x/{name}_{version}_amd64.deb",
        size=1,
        installed_size_kib=1,
        sha256="0" * 64,
        suite="bookworm",
        archive=update.DEBIAN,
        depends=update.parse_relations(depends),
        provides=tuple(c[0] for c in update.parse_relations(provides)),
    )


def test_newest_version_wins_across_suites() -> None:
    index = Index.build([_pkg("libssl3", "3.0.11-1~deb12u2"), _pkg("libssl3", "3.0.15-1~deb12u1")])
    assert index.packages["libssl3"].version == "3.0.15-1~deb12u1"


def test_closure_takes_first_satisfiable_alternative_and_checks_versions() -> None:
    index = Index.build(
        [
            _pkg("app", depends="missing | libold (>= 2) | libnew, libc6 (>= 2.34)"),
            _pkg("libold", "1.5"),
            _pkg("libnew", depends="libc6"),
            _pkg("libc6", "2.36-9", depends="libgcc-s1"),
            _pkg("libgcc-s1", depends="libc6 (>= 2.35)"),  # a cycle, as in Debian
        ]
    )
    resolution = update.resolve(index, ["app"], {}, {})
    assert resolution.depends == {
        "app": ["libc6", "libnew"],
        "libnew": ["libc6"],
        "libc6": ["libgcc-s1"],
        "libgcc-s1": ["libc6"],
    }
    order = update.dependency_order(resolution.depends, resolution.depends)
    assert order.index("libnew") < order.index("app")
    assert order.index("libc6") < order.index("libnew")


def test_virtual_packages_and_versioned_provides() -> None:
    index = Index.build(
        [
            _pkg("jre", depends="java-runtime (>= 17), awk"),
            _pkg("openjdk", "17.0.9", provides="java-runtime (= 17)"),
            _pkg("oldjdk", "11.0.2", provides="java-runtime (= 11)"),
            _pkg("unversioned", provides="java-runtime"),
            _pkg("mawk", provides="awk"),
            _pkg("gawk", provides="awk"),
        ]
    )
    with pytest.raises(update.ResolutionError, match="add the one to use to PREFER"):
        update.resolve(index, ["jre"], {}, {})
    resolution = update.resolve(index, ["jre"], {}, {"awk": "mawk"})
    assert resolution.depends["jre"] == ["mawk", "openjdk"]


def test_excluded_alternative_drops_the_clause() -> None:
    index = Index.build(
        [
            _pkg("tzdata", depends="debconf (>= 0.5) | debconf-2.0"),
            _pkg("ca", depends="debconf-2.0"),
            _pkg("debconf", provides="debconf-2.0"),
            _pkg("cdebconf", provides="debconf-2.0"),
        ]
    )
    exclude = {"debconf": "plumbing", "debconf-2.0": "plumbing"}
    resolution = update.resolve(index, ["tzdata", "ca"], exclude, {})
    assert resolution.depends == {"tzdata": [], "ca": []}
    assert resolution.dropped == {"debconf": {"tzdata"}, "debconf-2.0": {"ca"}}
    with pytest.raises(update.ResolutionError, match="excluded"):
        update.resolve(index, ["debconf"], exclude, {})


def test_unsatisfiable_dependency_names_the_package() -> None:
    index = Index.build([_pkg("app", depends="libc6 (>= 9)"), _pkg("libc6", "2.36")])
    with pytest.raises(update.ResolutionError, match=r"app: nothing .* 'libc6 \(>= 9\)'"):
        update.resolve(index, ["app"], {}, {})


def test_conflicts_between_chosen_packages_are_refused() -> None:
    a = _pkg("a")
    b = dataclasses.replace(_pkg("b"), conflicts=(Relation("a", "<<", "2"),))
    with pytest.raises(update.ResolutionError, match=r"b 1\.0 conflicts with/breaks a"):
        update.check_conflicts(Index.build([a, b]), ["a", "b"])


def test_stanzas_join_continuation_lines() -> None:
    text = "Package: a\nDescription: one\n two\n\nPackage: b\nVersion: 1\n"
    assert list(update.parse_stanzas(text)) == [
        {"Package": "a", "Description": "one\ntwo"},
        {"Package": "b", "Version": "1"},
    ]
