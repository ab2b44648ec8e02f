"""The notifier and Alertmanager in the shared Stack (what `//infra:local` runs): the stack
starts both, Prometheus scrapes the notifier and sends its alerts to Alertmanager, and an
alert on `fraud_alerts` reaches the webhook. No Spark: the alert is produced directly."""

from __future__ import annotations

import json
from pathlib import Path

from infra.components.alertmanager import render_config
from infra.components.kafka_io import produce
from infra.components.wait import wait_until
from infra.components.webhook_receiver import WebhookReceiver
from infra.prometheus.rules import alertmanager_config, rule_files
from infra.stack import Ports, Stack
from infra.testing.alerts import stream_alert
from libs.schemas.alert import alert_to_json
from libs.schemas.topics import ALERTS_TOPIC


def test_stack_runs_alertmanager_and_the_notifier(tmp_path):
    with WebhookReceiver() as hook:
        destinations = tmp_path / "notifier.json"
        destinations.write_text(
            json.dumps({"destinations": [{"name": "hook", "kind": "webhook", "url": hook.url}]})
        )
        stack = Stack(
            base_dir=Path("/tmp") / f"notifier-stack-{tmp_path.name}",
            ports=Ports.free(),
            rule_files=rule_files(),
            alertmanager_config=render_config(alertmanager_config().read_text(), hook.url),
            notifier=True,
        )
        try:
            took = stack.start_infrastructure()
            assert set(took) == {"kafka", "postgres", "alertmanager", "prometheus"}
            stack.start_service("notifier", ["--destinations", str(destinations)])
            stack.wait_metrics("notifier", timeout=60)
            alert = stream_alert("stack-user", 0, 1)
            produce(stack.bootstrap, ALERTS_TOPIC, [(b"stack-user", alert_to_json(alert))])
            wait_until(
                lambda: hook.received("/"), 60, "the notification", lambda: repr(hook.received())
            )
            assert hook.received("/")[0].body["alert"]["user_id"] == "stack-user"
            assert stack.prometheus is not None and stack.alertmanager is not None
            wait_until(
                lambda: (
                    stack.prometheus.targets_up().get(
                        f"http://127.0.0.1:{stack.ports.notifier}/metrics"
                    )
                    == "up"
                ),
                60,
                "notifier scraped",
                lambda: repr(stack.prometheus.targets_up()),
            )
            alertmanagers = stack.prometheus.api("alertmanagers")["activeAlertmanagers"]
            assert [a["url"] for a in alertmanagers] == [f"{stack.alertmanager.url}/api/v2/alerts"]
        finally:
            stack.stop()
            stack.wipe()
