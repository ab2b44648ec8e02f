"""The monorepo's layer order, checked: code may import only from its own layer or below.

    libs  <  services  <  infra, dashboards  <  tools

Why: libs/ are pure building blocks every service shares; a service may use libs and
nothing else, so its image carries only what it runs; infra/ (components, local stack,
compose, end-to-end tests and benchmarks) and dashboards/ stand on the services; tools/
(build and developer tooling) may use anything. Test files (`*_test.py`) may import from
any layer: a test of a lib may start a Kafka broker from infra.
"""

from __future__ import annotations

import ast
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

LAYERS: dict[str, int] = {"libs": 0, "services": 1, "infra": 2, "dashboards": 2, "tools": 3}


@dataclass(frozen=True)
class Violation:
    path: str
    line: int
    module: str

    def __str__(self) -> str:
        importer = self.path.split("/", 1)[0]
        imported = self.module.split(".", 1)[0]
        return (
            f"{self.path}:{self.line}: imports {self.module}, but {importer}/ (layer "
            f"{LAYERS[importer]}) may not import {imported}/ (layer {LAYERS[imported]})"
        )


def python_files(root: Path) -> Iterator[Path]:
    """Every .py file of the layered folders, skipping Bazel's output symlinks."""
    for top in LAYERS:
        for folder, dirs, files in os.walk(root / top):
            dirs[:] = [d for d in dirs if not d.startswith((".", "bazel-", "__pycache__"))]
            for name in files:
                if name.endswith(".py"):
                    yield Path(folder) / name


def imported_modules(source: str) -> Iterator[tuple[int, str]]:
    """(line, absolute module) for every import statement, nested ones included."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module


def violations(root: Path) -> list[Violation]:
    found = []
    for path in python_files(root):
        if path.name.endswith("_test.py"):
            continue
        relative = path.relative_to(root).as_posix()
        own = LAYERS[relative.split("/", 1)[0]]
        for line, module in imported_modules(path.read_text(encoding="utf-8")):
            top = module.split(".", 1)[0]
            if top in LAYERS and LAYERS[top] > own:
                found.append(Violation(relative, line, module))
    return sorted(found, key=lambda v: (v.path, v.line))


def main(argv: list[str]) -> int:
    root = Path(argv[1]) if len(argv) > 1 else Path.cwd()
    bad = violations(root)
    for violation in bad:
        print(violation)
    print(f"layers: {len(bad)} violations")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
