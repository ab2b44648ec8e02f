"""The pinned Prometheus scrapes a prometheus-client exporter and answers PromQL, and has
no lifecycle API (POST /-/quit and /-/reload are refused)."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, start_http_server

from infra.components.process import free_port
from infra.components.prometheus import PrometheusServer, scrape_config
from infra.components.wait import wait_until


@pytest.fixture(scope="module")
def exporter():
    registry = CollectorRegistry()
    counter = Counter(
        "fraud_test_events", "Events seen by the test exporter", ["kind"], registry=registry
    )
    port = free_port()
    server, _thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    yield port, counter
    server.shutdown()


def test_scrapes_exporter_and_answers_queries(tmp_path, exporter):
    port, counter = exporter
    counter.labels(kind="good").inc(7)
    counter.labels(kind="bad").inc(2)
    prom = PrometheusServer(
        data_dir=tmp_path / "prom",
        config_text=scrape_config({"exporter": [f"127.0.0.1:{port}"]}, interval="1s"),
    )
    prom.start()
    try:
        query = 'sum by (kind) (fraud_test_events_total{job="exporter"})'
        result = wait_until(lambda: len(r := prom.query(query)) == 2 and r, 60, "both kinds")
        values = {r["metric"]["kind"]: float(r["value"][1]) for r in result}
        assert values == {"good": 7.0, "bad": 2.0}
        assert set(prom.targets_up().values()) == {"up"}
        assert float(prom.query('up{job="exporter"}')[0]["value"][1]) == 1.0
        for action in ("quit", "reload"):
            request = urllib.request.Request(f"{prom.url}/-/{action}", method="POST")
            with pytest.raises(urllib.error.HTTPError) as info:
                urllib.request.urlopen(request, timeout=5)
            assert info.value.code == 403, action  # "Lifecycle API is not enabled."
        assert prom.process.popen.poll() is None and prom.targets_up()  # still serving
    finally:
        prom.stop()


def test_scrape_config_lists_every_job():
    text = scrape_config({"producer": ["127.0.0.1:8000"], "sink": ["127.0.0.1:8001"]})
    assert 'job_name: "producer"' in text and 'targets: ["127.0.0.1:8001"]' in text
    assert "rule_files" not in text


def test_scrape_config_lists_rule_files():
    text = scrape_config(
        {"producer": ["127.0.0.1:8000"]}, rule_files=[Path("/r/a.yml"), "/r/*.yml"]
    )
    assert 'rule_files:\n  - "/r/a.yml"\n  - "/r/*.yml"\nscrape_configs:' in text


def test_evaluates_rule_files(tmp_path, exporter):
    port, counter = exporter
    counter.labels(kind="ruled").inc(3)
    rules = tmp_path / "rules.yml"
    rules.write_text(
        """groups:
  - name: test
    rules:
      - record: kind:fraud_test_events:sum
        expr: sum by (kind) (fraud_test_events_total)
      - alert: FraudTestEventsSeen
        expr: fraud_test_events_total > 0
"""
    )
    prom = PrometheusServer(
        data_dir=tmp_path / "prom",
        config_text=scrape_config(
            {"exporter": [f"127.0.0.1:{port}"]}, interval="1s", rule_files=[rules]
        ),
    )
    prom.start()
    try:
        result = wait_until(
            lambda: prom.query('kind:fraud_test_events:sum{kind="ruled"}'), 60, "the rule's series"
        )
        assert [float(r["value"][1]) for r in result] == [3.0]
        loaded = {r["name"]: r["health"] for g in prom.rule_groups() for r in g["rules"]}
        assert loaded == {"kind:fraud_test_events:sum": "ok", "FraudTestEventsSeen": "ok"}
    finally:
        prom.stop()
