"""Every panel query is valid PromQL, and every recorded series it reads is defined.

Why: a typo in a recording-rule name is valid PromQL that silently shows "no data";
the live test would catch it too, but only after minutes of a running pipeline.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import yaml

from dashboards.panels import DASHBOARDS

RECORDING = Path("infra/prometheus/rules/recording.yml")
RECORDED_NAME = re.compile(r"\b[a-z_]+:[a-zA-Z0-9_]+:[a-zA-Z0-9_]+\b")


def all_queries() -> list[tuple[str, str]]:
    return [
        (panel.title, query.expr_for(900))
        for dashboard in DASHBOARDS
        for panel in dashboard.panels
        for query in panel.queries
    ] + [
        (f"{dashboard.title} annotation", query.expr)
        for dashboard in DASHBOARDS
        for query in dashboard.annotations
    ]


def test_every_query_parses(tmp_path):
    """promtool checks PromQL as part of a rules file: one rule per query."""
    rules = [
        {"record": f"dashboard_check:query:n{i}", "expr": expr}
        for i, (_title, expr) in enumerate(all_queries())
    ]
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard_queries", "rules": rules}]}))
    binary = Path(os.environ["PROMTOOL"]).absolute()
    result = subprocess.run(
        [str(binary), "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


def test_recorded_series_in_queries_are_defined():
    defined = {
        rule["record"]
        for group in yaml.safe_load(RECORDING.read_text())["groups"]
        for rule in group["rules"]
    }
    missing = [
        f"{title}: {name}"
        for title, expr in all_queries()
        for name in RECORDED_NAME.findall(expr)
        if name not in defined
    ]
    assert not missing


def test_panels_prefer_recording_rules():
    """Raw metrics only where no rule fits (gauges, up, a range-dependent increase)."""
    raw = [title for title, expr in all_queries() if not RECORDED_NAME.search(expr)]
    assert sorted(set(raw)) == sorted(
        {
            "Services up",
            "Alert score distribution",
            "Precision and recall",
            "Fraud pipeline annotation",
        }
    )
