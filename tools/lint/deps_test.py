"""Every Python target lists what it imports (tools/lint/deps.py), and the checker finds
each kind of violation when there is one."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

from tools.lint.deps import check


def workspace_root() -> Path:
    """The source tree: MODULE.bazel in the runfiles is a symlink into it."""
    runfiles = Path(os.environ["TEST_SRCDIR"]) / "_main" / "MODULE.bazel"
    return runfiles.resolve().parent


def test_repository_targets_list_their_imports():
    findings = check(workspace_root())
    assert findings == [], "\n".join(str(f) for f in findings)


def write(root: Path, path: str, text: str) -> None:
    (root / path).parent.mkdir(parents=True, exist_ok=True)
    (root / path).write_text(textwrap.dedent(text))


def test_checker_reports_each_kind_of_violation(tmp_path):
    write(tmp_path, "libs/a/a.py", "import orjson\n")
    write(tmp_path, "libs/a/b.py", "from libs.a import a\n")
    write(tmp_path, "services/s/s.py", "import libs.a.b\nfrom libs.a import a\nimport yaml\n")
    write(tmp_path, "services/s/s_test.py", "import pytest\nfrom services.s import s\n")
    write(
        tmp_path,
        "libs/a/BUILD.bazel",
        """
        load("@pip//:requirements.bzl", "requirement")
        py_library(name = "a", srcs = ["a.py"], deps = [requirement("orjson")])
        py_library(name = "helpers", srcs = ["b.py"])
        """,
    )
    write(
        tmp_path,
        "services/s/BUILD.bazel",
        """
        py_library(name = "s", srcs = ["s.py"], deps = ["//libs/a:helpers"])
        py_binary(name = "s_bin", srcs = ["s.py"], main = "s.py", deps = [":s"])
        py_binary(name = "copy", srcs = ["s.py", "extra.py"], main = "s.py", deps = [":s"])
        [pytest_test(name = n, srcs = [n + ".py"], deps = [":s"]) for n in ["s_test"]]
        """,
    )
    found = {(f.target, f.message) for f in check(tmp_path)}
    assert found == {
        ("//libs/a:helpers", "named after none of its files ['b']"),
        ("//libs/a:helpers", "libs/a/b.py imports libs.a.a: add //libs/a:a to deps"),
        ("//services/s:s", "services/s/s.py imports libs.a.a: add //libs/a:a to deps"),
        ("//services/s:s", 'imports pyyaml: add requirement("pyyaml") to deps'),
        (
            "//services/s:copy",
            "services/s/s.py is in the srcs of //services/s:s, //services/s:copy",
        ),
    }
