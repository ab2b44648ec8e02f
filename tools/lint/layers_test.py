"""The repository keeps its layer order (tools/lint/layers.py), and the checker catches a
violation when there is one."""

from __future__ import annotations

import os
from pathlib import Path

from tools.lint.layers import violations


def workspace_root() -> Path:
    """The source tree: MODULE.bazel in the runfiles is a symlink into it."""
    runfiles = Path(os.environ["TEST_SRCDIR"]) / "_main" / "MODULE.bazel"
    return runfiles.resolve().parent


def test_repository_has_no_upward_imports():
    found = violations(workspace_root())
    assert found == [], "\n".join(str(v) for v in found)


def test_checker_reports_a_service_importing_infra(tmp_path):
    (tmp_path / "services" / "svc").mkdir(parents=True)
    (tmp_path / "libs").mkdir()
    (tmp_path / "services" / "svc" / "main.py").write_text(
        "import os\nfrom libs.x import y\n\ndef f():\n    from infra.stack import Stack\n"
    )
    (tmp_path / "services" / "svc" / "main_test.py").write_text("import infra.stack\n")
    (tmp_path / "libs" / "lib.py").write_text("import services.svc.main\n")
    found = [(v.path, v.line, v.module) for v in violations(tmp_path)]
    assert found == [
        ("libs/lib.py", 1, "services.svc.main"),
        ("services/svc/main.py", 5, "infra.stack"),
    ]
