"""The committed dashboard JSON is exactly what the generator writes.

Why: Grafana (the compose stack) reads the committed files, reviewers read their diff,
and the panels are edited in panels.py; this keeps the three in step.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from dashboards.grafana import file_name, render
from dashboards.panels import DASHBOARDS

GENERATED = Path("dashboards/generated")  # in the runfiles' _main directory
REGENERATE = "tools/bazel run //dashboards:generate"


def test_committed_json_matches_the_generator():
    stale = []
    for dashboard in DASHBOARDS:
        path = GENERATED / file_name(dashboard)
        expected = render(dashboard)
        actual = path.read_text() if path.exists() else ""
        if actual != expected:
            diff = difflib.unified_diff(
                actual.splitlines(), expected.splitlines(), str(path), "generator", lineterm=""
            )
            stale.append(f"{path} is stale:\n" + "\n".join(list(diff)[:40]))
    assert not stale, "\n\n".join(stale) + f"\n\nregenerate with: {REGENERATE}"


def test_no_file_without_a_dashboard():
    expected = {file_name(d) for d in DASHBOARDS}
    committed = {p.name for p in GENERATED.glob("*.json")}
    assert committed == expected, f"remove {committed - expected} or run {REGENERATE}"
