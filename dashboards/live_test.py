"""Every panel's every query returns data from a real Prometheus scraping the real pipeline.

Why: a dashboard query can be valid PromQL and still show "no data" forever (a renamed
metric, a label that does not exist, a recording rule not loaded). This starts the same
stack as `//infra:local` (infra/stack.py) with Prometheus loading infra/prometheus/rules,
sends a few malformed transactions so the DLQ series move for real, and polls, against a
deadline, until each query has a number. Database-error series are not provoked: the sink
exports them at 0 from start-up (failures_test stops PostgreSQL for real).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dashboards import report
from dashboards.fetch import PanelData, PrometheusAPI, Window, fetch_dashboard
from dashboards.panels import DLQ_BY_REASON, FRAUD_PIPELINE
from infra.components.kafka_io import produce
from infra.prometheus.rules import rule_files
from infra.stack import DetectorSettings, Ports, Stack

DEADLINE_S = 480.0  # start-up excluded; windows are scored by the quality monitor ~2 min in
POLL_S = 5.0
# Refused by the detector's validation, each with its DLQ reason.
MALFORMED = [b"{not json", b"[1,2,3]", b"not json at all"]


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    base = Path(tempfile.mkdtemp(prefix="dashboards-live-", dir="/tmp"))
    stack = Stack(
        base_dir=base,
        ports=Ports.free(),
        scrape_interval="1s",
        detector=DetectorSettings(shuffle_partitions=2, driver_memory="1g"),
        service_env={"FRAUD_LOG_LEVEL": "WARNING"},
        rule_files=rule_files(),
    )
    try:
        stack.start_infrastructure()
        stack.start_service("alert_sink")
        stack.start_service("quality")
        stack.start_service("detector")
        stack.wait_metrics("detector", timeout=240)
        stack.start_service("producer", ["--rate", "200", "--seed", "7"])
        headers = {"fraud-label": b"0", "fraud-pattern": b""}
        produce(stack.bootstrap, "transactions", [(b"bad", v, headers) for v in MALFORMED])
        yield stack
    finally:
        stack.stop()
        outputs = os.environ.get("TEST_UNDECLARED_OUTPUTS_DIR")
        if outputs and (base / "logs").is_dir():  # keep service logs with the test results
            shutil.copytree(base / "logs", Path(outputs) / "logs", dirs_exist_ok=True)
        stack.wipe()


def missing(data: tuple[PanelData, ...]) -> list[str]:
    """'panel: expr (why)' for every query without a number in the window."""
    out = []
    for item in data:
        for result in item.results:
            if result.has_data:
                continue
            why = result.error or ("only NaN" if result.series else "no series")
            out.append(f"{item.panel.title}: {result.expr} ({why})")
    return out


def dlq_moved(data: tuple[PanelData, ...]) -> bool:
    """The detector's DLQ rate for not_json rose above 0: the malformed records arrived."""
    panel = next(d for d in data if d.panel is DLQ_BY_REASON)
    return any(
        s.labels.get("reason") == "not_json" and max(s.values) > 0 for s in panel.results[0].series
    )


def test_every_panel_query_returns_data(stack):
    assert stack.prometheus is not None
    api = PrometheusAPI(stack.prometheus.url)
    started = time.monotonic()
    dlq_seen = False
    while True:
        window = Window(end=time.time(), seconds=300, step=5)
        data = fetch_dashboard(api, FRAUD_PIPELINE, window)
        dlq_seen = dlq_seen or dlq_moved(data)
        gaps = missing(data) + ([] if dlq_seen else ["DLQ: not_json never above 0"])
        if not gaps:
            break
        crashed = [n for n, p in stack.services.items() if not p.running]
        assert not crashed, f"services exited: {crashed}; still empty: {gaps}"
        assert time.monotonic() - started < DEADLINE_S, (
            f"after {DEADLINE_S:.0f} s these panels' queries had no data:\n  " + "\n  ".join(gaps)
        )
        time.sleep(POLL_S)  # poll interval against the deadline above
    took = time.monotonic() - started
    print(f"every panel had data {took:.0f} s after the producer started")
    rules = [r for g in stack.prometheus.rule_groups() for r in g["rules"]]
    unhealthy = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
    assert rules and not unhealthy


def test_report_renders_a_png_from_prometheus(stack, tmp_path):
    assert stack.prometheus is not None
    out = tmp_path / "dashboard.png"
    code = report.main(
        ["--prometheus-url", stack.prometheus.url, "--range", "5m", "--output", str(out)]
    )
    assert code == 0
    blob = out.read_bytes()
    assert blob.startswith(b"\x89PNG\r\n\x1a\n") and len(blob) > 50_000
    outputs = os.environ.get("TEST_UNDECLARED_OUTPUTS_DIR")
    if outputs:
        shutil.copy(out, Path(outputs) / "dashboard.png")
