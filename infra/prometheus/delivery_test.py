"""A pipeline fault reaches people: the real alert sink (on a real Kafka and PostgreSQL)
is stopped, the real Prometheus rules fire FraudServiceDown after its `for: 1m`, and the
real Alertmanager routing tree posts it to the critical route's webhook."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from infra.components.alertmanager import AlertmanagerServer, render_config
from infra.components.prometheus import PrometheusServer, scrape_config
from infra.components.wait import wait_until
from infra.components.webhook_receiver import WebhookReceiver
from infra.prometheus.rules import rule_files
from infra.testing.sink import SinkProcess, kafka_and_postgres

CONFIG = Path("infra/prometheus/alertmanager.yml")


@pytest.fixture
def stack(tmp_path_factory):
    yield from kafka_and_postgres(tmp_path_factory)


def test_sink_stopped_reaches_the_critical_webhook(tmp_path, stack):
    kafka, postgres = stack
    args = ("--bootstrap-servers", kafka.bootstrap, "--postgres-dsn", postgres.dsn)
    sink = SinkProcess.start(tmp_path, *args)
    port = sink.metrics_port
    with WebhookReceiver() as hook:
        am = AlertmanagerServer(
            tmp_path / "am",
            render_config(CONFIG.read_text(), hook.url, group_wait="1s", group_interval="1s"),
        )
        am.start()
        prom = PrometheusServer(
            tmp_path / "prom",
            scrape_config(
                {"alert_sink": [f"127.0.0.1:{port}"]},
                interval="1s",
                rule_files=rule_files(),
                alertmanagers=[am.address],
            ),
        )
        prom.start()
        try:
            wait_until(lambda: set(prom.targets_up().values()) == {"up"}, 60, "target up")
            assert sink.terminate() == 0  # the sink stopped: its metrics port is gone
            stopped = time.monotonic()
            wait_until(
                lambda: hook.received("/alerts/critical"),
                150,
                "FraudServiceDown at the critical webhook",
                lambda: f"{hook.received()} {am.alerts()}",
            )
            alerts = hook.received("/alerts/critical")[0].body["alerts"]
            assert [a["labels"]["alertname"] for a in alerts] == ["FraudServiceDown"]
            assert alerts[0]["labels"]["component"] == "alert_sink"
            assert alerts[0]["labels"]["severity"] == "critical"
            print(f"target down -> webhook in {time.monotonic() - stopped:.1f} s (rule for: 1m)")
        finally:
            sink.ensure_stopped()
            prom.stop()
            am.stop()
