"""The pinned Alertmanager runs the repository's routing tree: alerts reach the webhook of
their severity's route, grouped, and an inhibiting alert silences its symptoms."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.components.alertmanager import AlertmanagerServer, render_config
from infra.components.wait import wait_until
from infra.components.webhook_receiver import WebhookReceiver

CONFIG = Path("infra/prometheus/alertmanager.yml")  # runfiles' _main directory


def alert(name: str, severity: str, component: str = "alert_sink") -> dict:
    return {
        "labels": {"alertname": name, "severity": severity, "component": component},
        "annotations": {"summary": f"{name} test"},
    }


@pytest.fixture
def stack(tmp_path):
    with WebhookReceiver() as hook:
        text = render_config(CONFIG.read_text(), hook.url, group_wait="1s", group_interval="1s")
        server = AlertmanagerServer(tmp_path / "am", text)
        server.start()
        try:
            yield server, hook
        finally:
            server.stop()


def alertnames(hook: WebhookReceiver, path: str) -> set[str]:
    return {a["labels"]["alertname"] for r in hook.received(path) for a in r.body["alerts"]}


def test_routes_by_severity_and_inhibits_symptoms(stack):
    server, hook = stack
    server.post_alerts(
        [
            alert("FraudSinkDatabaseDown", "critical"),
            alert("FraudSinkDatabaseErrors", "warning"),
            alert("FraudDetectorLagGrowing", "warning", component="detector"),
        ]
    )
    wait_until(
        lambda: alertnames(hook, "/alerts/critical") and alertnames(hook, "/alerts/warning"),
        30,
        "both routes notified",
        lambda: repr(hook.received()),
    )
    assert alertnames(hook, "/alerts/critical") == {"FraudSinkDatabaseDown"}
    # the errors are a symptom of the database being down: inhibited, never sent
    wait_until(
        lambda: any(
            a["status"]["inhibitedBy"]
            for a in server.alerts()
            if a["labels"]["alertname"] == "FraudSinkDatabaseErrors"
        ),
        10,
        "errors inhibited",
        lambda: repr(server.alerts()),
    )
    assert alertnames(hook, "/alerts/warning") == {"FraudDetectorLagGrowing"}
    body = hook.received("/alerts/critical")[0].body
    assert body["receiver"] == "pipeline-critical" and body["status"] == "firing"
    assert body["groupLabels"] == {"alertname": "FraudSinkDatabaseDown", "component": "alert_sink"}


def test_render_config_keeps_paths_and_shortens_every_route():
    text = render_config(CONFIG.read_text(), "http://127.0.0.1:1", "1s", "2s", "3s")
    assert "http://127.0.0.1:1/alerts/critical" in text
    assert "alert-receiver" not in text
    assert "group_wait: 1m" not in text and "group_interval: 10m" not in text
