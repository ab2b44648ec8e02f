"""Regenerates packages.bzl: the pinned Debian bookworm packages our OCI base layers are made of.

Why: images are built without pulling any base image, from .deb files Bazel downloads by
URL + sha256 (extensions.bzl). Dependency resolution therefore happens once, here, and
the result is a fixed, hashed list that builds can fetch from a repository cache with no
resolver and no network.

What it does:
- Reads bookworm's InRelease files, checks their OpenPGP signature with gpgv against
  Debian's archive keyring, and reads main/binary-<arch>/Packages.xz (by hash, checked
  against the signed sha256) of each suite.
- Suites: bookworm is required. bookworm-updates (same mirror) and bookworm-security
  (http://deb.debian.org/debian-security) are used when reachable, and each package is
  taken at its newest version across them, so the lock carries the security fixes an
  `apt-get upgrade` would install. A suite that cannot be reached is skipped with a
  warning, and the lock lists the suites it was made from (DEBIAN_SUITES).
- Resolves Pre-Depends + Depends (not Recommends) of each set's roots: the first
  alternative that the index can satisfy wins (its version constraint checked with
  dpkg's version ordering; virtual packages through Provides, versioned Provides for
  versioned relations; `:any` and other arch qualifiers are ignored, everything is one
  architecture). A clause whose winning alternative is in EXCLUDE is dropped: that is
  maintainer-script plumbing an image without dpkg never runs. A clause nothing
  satisfies, or two chosen packages that Conflict/Break each other, stop the script.
- Writes packages.bzl: DEBIAN_PACKAGES (name -> version, sha256, pool URL, resolved
  depends), PACKAGE_SETS (each set in dependency order, without its base set's packages)
  and PACKAGE_SETS_BASE. URLs always name deb.debian.org, whichever mirror was read, so
  the lock is the same wherever it is made; extensions.bzl can fetch from another mirror.

Pins rot: deb.debian.org keeps only the current version of a package, so a lock older
than the next point release or security update points at files that are gone. Bazel's
repository cache (keyed by sha256) still has them; otherwise rerun this script.

Usage (from the repo root, on a machine that reaches the Debian mirror; stdlib only):
    python3 tools/oci/debian/update.py            # rewrite packages.bzl, print a summary
    python3 tools/oci/debian/update.py --check    # exit 1 if packages.bzl is stale
Flags and environment: --mirror / FRAUD_DEBIAN_MIRROR, --security-mirror /
FRAUD_DEBIAN_SECURITY_MIRROR, --keyring / FRAUD_DEBIAN_KEYRING, --no-verify.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import hashlib
import lzma
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

LOCK = pathlib.Path(__file__).with_name("packages.bzl")
ARCH = "amd64"
COMPONENT = "main"
DEBIAN = "http://deb.debian.org/debian"
DEBIAN_SECURITY = "http://deb.debian.org/debian-security"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


@dataclass(frozen=True)
class Suite:
    name: str
    archive: str  # canonical archive URL, the one written into the lock
    required: bool


SUITES = (
    Suite("bookworm", DEBIAN, required=True),
    Suite("bookworm-updates", DEBIAN, required=False),
    Suite("bookworm-security", DEBIAN_SECURITY, required=False),
)


@dataclass(frozen=True)
class PackageSet:
    name: str
    base: str | None
    roots: tuple[str, ...]
    why: str


SETS = (
    PackageSet(
        "python",
        None,
        # libc-bin: ships the C.UTF-8 locale (/usr/lib/locale/C.utf8) that LANG=C.UTF-8
        # and PostgreSQL's initdb want; nothing in the set depends on it otherwise.
        (
            "python3.11-minimal",
            "libpython3.11-stdlib",
            "ca-certificates",
            "tzdata",
            "netbase",
            "libc-bin",
        ),
        "A Python 3.11 runtime with CA certificates, time zones and /etc/services",
    ),
    PackageSet(
        "java",
        "python",
        ("openjdk-17-jre-headless", "bash", "coreutils"),
        "Java 17 for Spark, whose launch scripts are bash and use coreutils",
    ),
    PackageSet(
        "postgres",
        "python",
        # dash: /bin/sh. initdb and pg_ctl start `postgres` through popen()/system(),
        # which run /bin/sh; without it initdb reports postgres as not found.
        ("postgresql-15", "dash"),
        "The PostgreSQL 15 server (/usr/lib/postgresql/15/bin), started from Python",
    ),
)

# Packages (and virtual packages) left out of every set. An image is unpacked, never
# installed: no dpkg runs, so no maintainer script runs, and what these packages exist
# for never happens. A dependency clause whose chosen alternative is listed here is
# dropped. The reason is printed in the summary when a clause is dropped.
EXCLUDE: dict[str, str] = {
    # dpkg itself and the tools maintainer scripts call.
    "dpkg": "package manager; images are unpacked, never dpkg-installed",
    "debconf": "asks maintainer-script questions; no maintainer script runs",
    "debconf-2.0": "virtual package of debconf/cdebconf (maintainer-script questions)",
    "cdebconf": "debconf implementation (maintainer-script questions)",
    "ucf": "merges conffiles in maintainer scripts",
    "init-system-helpers": "invoke-rc.d/update-rc.d/deb-systemd-helper for maintainer scripts",
    "lsb-base": "init-script functions; containers run no init scripts",
    "sysvinit-utils": "pidof/killall5 for init scripts; containers run no init",
    "adduser": "creates system users in maintainer scripts; the image builder writes /etc/passwd",
    "debianutils": "add-shell/run-parts/savelog for maintainer scripts (and `which`)",
    "sensible-utils": "sensible-editor/pager for interactive use",
    "logrotate": "log rotation daemon configuration; containers log to stdout",
    "ssl-cert": "makes a snakeoil certificate in its postinst",
    # Perl: only needed by the Debian wrapper scripts we replace with our own entry points.
    "perl-base": "Debian's Perl, used by maintainer scripts and Debian wrappers",
    "perl": "Perl, used by postgresql-common's wrappers (pg_ctlcluster, ...)",
    # Java: the cacerts keystore and alternatives are made by maintainer scripts.
    "java-common": "update-java-alternatives; the image calls the JVM by full path",
    "ca-certificates-java": "builds /etc/ssl/certs/java/cacerts in its postinst",
    # PostgreSQL: Debian's multi-cluster wrappers (Perl); the entry point is Python.
    "postgresql-common": "pg_ctlcluster and friends (Perl) around the real binaries",
    "postgresql-client-common": "pg_wrapper (Perl) choosing a client version",
    # Locale sources: only useful once locale-gen (run by its postinst) compiles them;
    # the C.UTF-8 locale comes precompiled with libc-bin.
    "locales": "locale sources compiled by its postinst; C.UTF-8 ships in libc-bin",
}

# Virtual packages with several providers in the index: which provider to take.
PREFER: dict[str, str] = {
    "awk": "mawk",  # Debian's default awk (Priority: required); base-files pre-depends on awk
}

_RELATION = re.compile(
    r"^(?P<name>[a-z0-9][a-z0-9+.-]*)(?::(?P<arch>[a-z0-9-]+))?"
    r"\s*(?:\(\s*(?P<op><<|<=|>=|>>|=|<|>)\s*(?P<version>[^)\s]+)\s*\))?"
    r"\s*(?:\[[^]]*\])?\s*(?:<[^>]*>\s*)*$"
)
_DEPRECATED_OPS = {"<": "<=", ">": ">="}


class ResolutionError(Exception):
    """A root, dependency or conflict the resolver cannot accept."""


# ---------------------------------------------------------------- Debian versions


def _order(char: str) -> int:
    """dpkg's weight of one non-digit character: ~ sorts first, then end, letters, others."""
    if char == "~":
        return -1
    if not char or char.isdigit():
        return 0
    if char.isalpha():
        return ord(char)
    return ord(char) + 256


def _compare_fragment(a: str, b: str) -> int:
    """dpkg's verrevcmp: alternate non-digit runs (by _order) and numeric runs."""
    i = j = 0
    while i < len(a) or j < len(b):
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            ac = _order(a[i] if i < len(a) else "")
            bc = _order(b[j] if j < len(b) else "")
            if ac != bc:
                return ac - bc
            i += 1
            j += 1
        start_i, start_j = i, j
        while i < len(a) and a[i].isdigit():
            i += 1
        while j < len(b) and b[j].isdigit():
            j += 1
        na = int(a[start_i:i] or "0")
        nb = int(b[start_j:j] or "0")
        if na != nb:
            return -1 if na < nb else 1
    return 0


def _split_version(version: str) -> tuple[int, str, str]:
    epoch, _, rest = version.partition(":") if ":" in version else ("0", "", version)
    upstream, _, revision = rest.rpartition("-") if "-" in rest else (rest, "", "")
    return int(epoch or "0"), upstream, revision


def compare_versions(a: str, b: str) -> int:
    """Negative, zero or positive as Debian version `a` sorts before, equal to or after `b`."""
    ea, ua, ra = _split_version(a)
    eb, ub, rb = _split_version(b)
    if ea != eb:
        return -1 if ea < eb else 1
    return _compare_fragment(ua, ub) or _compare_fragment(ra, rb)


def version_satisfies(version: str, op: str, wanted: str) -> bool:
    cmp = compare_versions(version, wanted)
    return {
        "<<": cmp < 0,
        "<=": cmp <= 0,
        "=": cmp == 0,
        ">=": cmp >= 0,
        ">>": cmp > 0,
    }[op]


# ---------------------------------------------------------------- relations and packages


@dataclass(frozen=True)
class Relation:
    """One alternative of a relation field: `name[:arch] [(op version)]`."""

    name: str
    op: str | None = None
    version: str | None = None

    def __str__(self) -> str:
        return f"{self.name} ({self.op} {self.version})" if self.op else self.name


def parse_relation(text: str) -> Relation:
    match = _RELATION.match(text.strip())
    if not match:
        raise ResolutionError(f"cannot parse relation {text!r}: expected 'name[:arch] [(op ver)]'")
    op = match["op"]
    return Relation(match["name"], _DEPRECATED_OPS.get(op, op), match["version"])


def parse_relations(value: str) -> tuple[tuple[Relation, ...], ...]:
    """A Depends-style field: comma-separated clauses of |-separated alternatives."""
    return tuple(
        tuple(parse_relation(alt) for alt in clause.split("|"))
        for clause in value.split(",")
        if clause.strip()
    )


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    arch: str
    filename: str  # path in the archive: pool/main/...
    size: int
    installed_size_kib: int
    sha256: str
    suite: str
    archive: str
    depends: tuple[tuple[Relation, ...], ...] = ()  # Pre-Depends first, then Depends
    provides: tuple[Relation, ...] = ()
    conflicts: tuple[Relation, ...] = ()  # Conflicts and Breaks

    @property
    def url(self) -> str:
        return f"{self.archive}/{self.filename}"

    @property
    def deb_name(self) -> str:
        return self.filename.rsplit("/", 1)[-1]

    def matches(self, rel: Relation) -> bool:
        """Whether this package satisfies `rel`, itself or through Provides."""
        if self.name == rel.name:
            return rel.op is None or version_satisfies(self.version, rel.op, rel.version or "")
        for provided in self.provides:
            if provided.name != rel.name:
                continue
            if rel.op is None:
                return True
            if provided.op == "=" and provided.version:
                return version_satisfies(provided.version, rel.op, rel.version or "")
        return False


def parse_stanzas(text: str) -> Iterator[dict[str, str]]:
    """The paragraphs of a Packages file as field -> value (continuation lines joined)."""
    fields: dict[str, str] = {}
    last = ""
    for line in text.splitlines():
        if not line.strip():
            if fields:
                yield fields
            fields, last = {}, ""
        elif line[0] in " \t":
            fields[last] += "\n" + line.strip()
        else:
            last, _, value = line.partition(":")
            fields[last] = value.strip()
    if fields:
        yield fields


def package_from_stanza(fields: dict[str, str], suite: Suite) -> Package:
    def relations(*names: str) -> tuple[tuple[Relation, ...], ...]:
        return tuple(c for n in names for c in parse_relations(fields.get(n, "")))

    return Package(
        name=fields["Package"],
        version=fields["Version"],
        arch=fields["Architecture"],
        filename=fields["Filename"],
        size=int(fields["Size"]),
        installed_size_kib=int(fields.get("Installed-Size", "0")),
        sha256=fields["SHA256"],
        suite=suite.name,
        archive=suite.archive,
        depends=relations("Pre-Depends", "Depends"),
        provides=tuple(c[0] for c in relations("Provides")),
        conflicts=tuple(c[0] for c in relations("Conflicts", "Breaks")),
    )


@dataclass
class Index:
    """The newest version of every package across the suites, and who provides what."""

    packages: dict[str, Package] = field(default_factory=dict)
    providers: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def build(cls, packages: Iterable[Package]) -> Index:
        index = cls()
        for pkg in packages:
            old = index.packages.get(pkg.name)
            if old is None or compare_versions(pkg.version, old.version) > 0:
                index.packages[pkg.name] = pkg
        for name in sorted(index.packages):
            for provided in index.packages[name].provides:
                index.providers.setdefault(provided.name, []).append(name)
        return index

    def candidates(self, rel: Relation) -> list[Package]:
        """Packages satisfying `rel`: the real package first, then providers by name."""
        names = [rel.name, *self.providers.get(rel.name, [])]
        seen: dict[str, Package] = {}
        for name in names:
            pkg = self.packages.get(name)
            if pkg is not None and name not in seen and pkg.matches(rel):
                seen[name] = pkg
        return list(seen.values())


# ---------------------------------------------------------------- resolution


@dataclass(frozen=True)
class Choice:
    """How one dependency clause was settled: a package, or dropped because excluded."""

    package: str | None
    excluded: str | None = None  # the excluded name that settled it


def choose(
    index: Index, clause: tuple[Relation, ...], exclude: dict[str, str], prefer: dict[str, str]
) -> Choice:
    """The first alternative of `clause` the index satisfies (or the exclusion it hits)."""
    for alt in clause:
        cands = index.candidates(alt)
        if not cands:
            continue
        if alt.name in exclude:
            return Choice(None, alt.name)
        real = [c for c in cands if c.name == alt.name]
        if real:
            pick = real[0]
        else:
            live = [c for c in cands if c.name not in exclude]
            if not live:
                return Choice(None, cands[0].name)
            preferred = [c for c in live if c.name == prefer.get(alt.name)]
            if len(live) > 1 and not preferred:
                raise ResolutionError(
                    f"{alt} is virtual with providers {[c.name for c in live]}; "
                    "add the one to use to PREFER in update.py"
                )
            pick = (preferred or live)[0]
        if pick.name in exclude:
            return Choice(None, pick.name)
        return Choice(pick.name)
    wanted = " | ".join(str(a) for a in clause)
    raise ResolutionError(f"nothing in the index satisfies {wanted!r}")


@dataclass
class Resolution:
    """Resolved dependencies of every package reached, and the exclusions that were hit."""

    depends: dict[str, list[str]] = field(default_factory=dict)
    dropped: dict[str, set[str]] = field(default_factory=dict)  # excluded -> needed by


def resolve(
    index: Index, roots: Iterable[str], exclude: dict[str, str], prefer: dict[str, str]
) -> Resolution:
    """The dependency closure of `roots` (each package's depends, sorted)."""
    result = Resolution()
    pending = sorted(roots, reverse=True)
    for root in pending:
        if root not in index.packages:
            raise ResolutionError(f"root package {root!r} is not in the index")
        if root in exclude:
            raise ResolutionError(f"root package {root!r} is excluded: {exclude[root]}")
    while pending:
        name = pending.pop()
        if name in result.depends:
            continue
        deps: set[str] = set()
        for clause in index.packages[name].depends:
            try:
                choice = choose(index, clause, exclude, prefer)
            except ResolutionError as err:
                raise ResolutionError(f"{name}: {err}") from None
            if choice.package is None:
                result.dropped.setdefault(choice.excluded or "", set()).add(name)
            elif choice.package != name:
                deps.add(choice.package)
        result.depends[name] = sorted(deps)
        pending.extend(sorted((d for d in deps if d not in result.depends), reverse=True))
    return result


def dependency_order(names: Iterable[str], depends: dict[str, list[str]]) -> list[str]:
    """`names` with dependencies first (depth-first post-order, by name; cycles broken
    where first met). Dependencies outside `names` (the base set) are ignored."""
    members = set(names)
    order: list[str] = []
    state: dict[str, bool] = {}  # False: on the stack, True: emitted

    def visit(name: str) -> None:
        if name in state:
            return
        state[name] = False
        for dep in depends[name]:
            if dep in members:
                visit(dep)
        state[name] = True
        order.append(name)

    for name in sorted(members):
        visit(name)
    return order


def check_conflicts(index: Index, chosen: Iterable[str]) -> None:
    pkgs = [index.packages[n] for n in sorted(chosen)]
    for pkg in pkgs:
        for rel in pkg.conflicts:
            for other in pkgs:
                if other.name != pkg.name and other.matches(rel):
                    raise ResolutionError(
                        f"{pkg.name} {pkg.version} conflicts with/breaks {other.name} "
                        f"{other.version} (relation {rel})"
                    )


@dataclass(frozen=True)
class Lock:
    packages: dict[str, Package]
    depends: dict[str, list[str]]
    sets: dict[str, list[str]]  # in SETS order, each in dependency order
    dropped: dict[str, set[str]]
    suites: tuple[str, ...]


def resolve_sets(index: Index, suites: tuple[str, ...]) -> Lock:
    depends: dict[str, list[str]] = {}
    dropped: dict[str, set[str]] = {}
    closures: dict[str, set[str]] = {}
    sets: dict[str, list[str]] = {}
    for spec in SETS:
        resolution = resolve(index, spec.roots, EXCLUDE, PREFER)
        for excluded, needed_by in resolution.dropped.items():
            dropped.setdefault(excluded, set()).update(needed_by)
        depends.update(resolution.depends)
        closure = set(resolution.depends)
        base = closures[spec.base] if spec.base else set()
        closures[spec.name] = closure | base
        check_conflicts(index, closures[spec.name])
        sets[spec.name] = dependency_order(closure - base, depends)
    chosen = sorted({n for members in sets.values() for n in members})
    return Lock(
        packages={n: index.packages[n] for n in chosen},
        depends={n: depends[n] for n in chosen},
        sets=sets,
        dropped=dropped,
        suites=suites,
    )


# ---------------------------------------------------------------- the lock file


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _string_list(items: list[str], indent: str) -> str:
    if not items:
        return "[]"
    inner = "".join(f"{indent}    {_q(i)},\n" for i in items)
    return f"[\n{inner}{indent}]"


def render(lock: Lock) -> str:
    out = [
        '"""Pinned Debian bookworm packages for the OCI base layers (GENERATED, do not edit).',
        "",
        "Regenerate: python3 tools/oci/debian/update.py",
        "Check:      python3 tools/oci/debian/update.py --check",
        "Fetched by extensions.bzl into @debian_bookworm (filegroups :python, :java, ...).",
        '"""',
        "",
        f"DEBIAN_ARCH = {_q(ARCH)}",
        "",
        f"DEBIAN_SUITES = {_string_list(list(lock.suites), '')}",
        "",
        "# name -> the pinned .deb; depends are resolved package names (see update.py).",
        "DEBIAN_PACKAGES = {",
    ]
    for name in sorted(lock.packages):
        pkg = lock.packages[name]
        out += [
            f"    {_q(name)}: {{",
            f'        "version": {_q(pkg.version)},',
            f'        "arch": {_q(pkg.arch)},',
            f'        "sha256": {_q(pkg.sha256)},',
            f'        "url": {_q(pkg.url)},',
            f'        "filename": {_q(pkg.deb_name)},',
            f'        "size": {pkg.size},',
            f'        "suite": {_q(pkg.suite)},',
            f'        "depends": {_string_list(lock.depends[name], "        ")},',
            "    },",
        ]
    out += ["}", ""]
    out.append("# set -> its packages, dependencies first, without those of its base set.")
    out.append("PACKAGE_SETS = {")
    for spec in SETS:
        out.append(f"    # {spec.why}.")
        out.append(f"    # Roots: {', '.join(spec.roots)}.")
        out.append(f"    {_q(spec.name)}: {_string_list(lock.sets[spec.name], '    ')},")
    out += ["}", ""]
    out.append("# set -> the set whose packages it is layered on (None: the bottom layer).")
    out.append("PACKAGE_SETS_BASE = {")
    for spec in SETS:
        out.append(f"    {_q(spec.name)}: {_q(spec.base) if spec.base else 'None'},")
    out.append("}")
    return "\n".join(out) + "\n"


def read_lock(path: pathlib.Path) -> dict[str, object]:
    """The top-level assignments of a packages.bzl (plain literals) as name -> value."""
    tree = ast.parse(path.read_text(), str(path))
    return {
        node.targets[0].id: ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
    }


def summary(lock: Lock) -> str:
    lines = []
    total = 0
    for spec in SETS:
        members = lock.sets[spec.name]
        size = sum(lock.packages[n].size for n in members)
        installed = sum(lock.packages[n].installed_size_kib for n in members)
        total += size
        base = f" (on top of {spec.base})" if spec.base else ""
        lines.append(
            f"  {spec.name:<9} {len(members):>3} packages, {size / 1e6:6.1f} MB download, "
            f"{installed / 1024:6.1f} MiB installed{base}"
        )
    newer = sorted(n for n, p in lock.packages.items() if p.suite != "bookworm")
    lines.append(f"  total     {len(lock.packages):>3} packages, {total / 1e6:6.1f} MB download")
    lines.append(f"  suites: {', '.join(lock.suites)}")
    lines.append(f"  from updates/security ({len(newer)}): {', '.join(newer) or '-'}")
    lines.append("  excluded (needed by):")
    for name in sorted(lock.dropped):
        lines.append(f"    {name} ({', '.join(sorted(lock.dropped[name]))}): {EXCLUDE[name]}")
    return "\n".join(lines)


# ---------------------------------------------------------------- network


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as response:
        return response.read()


def verified_release(mirror: str, suite: str, keyring: str | None) -> str:
    """The text of dists/<suite>/InRelease; with a keyring, only what gpgv says is signed."""
    raw = fetch(f"{mirror}/dists/{suite}/InRelease")
    if keyring is None:
        text = raw.decode()
        body = text.split("\n\n", 1)[1] if text.startswith("-----BEGIN PGP") else text
        return body.split("\n-----BEGIN PGP SIGNATURE", 1)[0]
    with tempfile.TemporaryDirectory() as tmp:
        signed = pathlib.Path(tmp, "InRelease")
        signed.write_bytes(raw)
        out = pathlib.Path(tmp, "Release")
        proc = subprocess.run(
            ["gpgv", "--keyring", keyring, "--output", str(out), str(signed)],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise ResolutionError(
                f"{mirror}/dists/{suite}/InRelease: bad or unknown signature "
                f"(keyring {keyring}):\n{proc.stderr}"
            )
        return out.read_text()


def read_packages(mirror: str, suite: Suite, keyring: str | None) -> list[Package]:
    release = verified_release(mirror, suite.name, keyring)
    path = f"{COMPONENT}/binary-{ARCH}/Packages.xz"
    sha256_section = release.split("\nSHA256:\n", 1)[1].split("\n\n", 1)[0]
    expected = None
    for line in sha256_section.splitlines():
        if not line.startswith(" "):
            break
        digest, size, name = line.split()
        if name == path:
            expected = (digest, int(size))
    if expected is None:
        raise ResolutionError(f"{suite.name}: Release does not list {path}")
    by_hash = "\nAcquire-By-Hash: yes" in release
    location = f"{COMPONENT}/binary-{ARCH}/by-hash/SHA256/{expected[0]}" if by_hash else path
    data = fetch(f"{mirror}/dists/{suite.name}/{location}")
    actual = (hashlib.sha256(data).hexdigest(), len(data))
    if actual != expected:
        raise ResolutionError(f"{suite.name} {path}: sha256/size {actual}, expected {expected}")
    text = lzma.decompress(data).decode()
    return [package_from_stanza(s, suite) for s in parse_stanzas(text)]


def load_index(mirrors: dict[str, str], keyring: str | None) -> tuple[Index, tuple[str, ...]]:
    packages: list[Package] = []
    used: list[str] = []
    for suite in SUITES:
        mirror = mirrors[suite.archive]
        try:
            found = read_packages(mirror, suite, keyring)
        except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
            if suite.required:
                raise ResolutionError(f"{mirror} {suite.name}: {err}") from None
            print(f"warning: skipping {suite.name} ({mirror}): {err}", file=sys.stderr)
            continue
        print(f"{suite.name}: {len(found)} packages from {mirror}", file=sys.stderr)
        packages += found
        used.append(suite.name)
    return Index.build(packages), tuple(used)


# ---------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument(
        "--mirror",
        default=os.environ.get("FRAUD_DEBIAN_MIRROR", DEBIAN),
        help="Debian archive to read indexes from (env FRAUD_DEBIAN_MIRROR; default %(default)s)",
    )
    parser.add_argument(
        "--security-mirror",
        default=os.environ.get("FRAUD_DEBIAN_SECURITY_MIRROR", DEBIAN_SECURITY),
        help="Debian security archive (env FRAUD_DEBIAN_SECURITY_MIRROR; default %(default)s)",
    )
    parser.add_argument(
        "--keyring",
        default=os.environ.get("FRAUD_DEBIAN_KEYRING", KEYRING),
        help="OpenPGP keyring for InRelease (env FRAUD_DEBIAN_KEYRING; default %(default)s)",
    )
    parser.add_argument(
        "--no-verify", action="store_true", help="do not check InRelease signatures (unsafe)"
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 1 if packages.bzl differs from a fresh resolution",
    )
    args = parser.parse_args(argv)
    keyring = None if args.no_verify else args.keyring
    if keyring is not None and not (pathlib.Path(keyring).is_file() and shutil.which("gpgv")):
        parser.error(
            f"checking InRelease needs gpgv and the keyring {keyring}: apt-get install gpgv "
            "debian-archive-keyring, or pass --keyring, or --no-verify"
        )
    mirrors = {DEBIAN: args.mirror.rstrip("/"), DEBIAN_SECURITY: args.security_mirror.rstrip("/")}
    try:
        index, suites = load_index(mirrors, keyring)
        lock = resolve_sets(index, suites)
    except ResolutionError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    text = render(lock)
    print(summary(lock))
    if args.check:
        current = LOCK.read_text() if LOCK.exists() else ""
        if current == text:
            print(f"{LOCK.name} is up to date")
            return 0
        diff = difflib.unified_diff(
            current.splitlines(), text.splitlines(), "committed", "fresh", lineterm="", n=1
        )
        print("\n".join(list(diff)[:80]))
        print(f"{LOCK.name} is stale: run python3 tools/oci/debian/update.py", file=sys.stderr)
        return 1
    LOCK.write_text(text)
    print(f"wrote {LOCK}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
