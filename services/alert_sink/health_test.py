"""/healthz and the health gauges: 503 until both the database and the broker answer,
200 when they do, and the metrics still served on every other path."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request

import pytest

from services.alert_sink.health import serve
from services.alert_sink.metrics import SinkMetrics


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


@pytest.fixture
def served():
    metrics = SinkMetrics()
    port = _free_port()
    server = serve(port, metrics.registry, metrics.health, addr="127.0.0.1")
    yield metrics, f"http://127.0.0.1:{port}"
    server.shutdown()
    server.server_close()


def sample(metrics: SinkMetrics, name: str) -> float | None:
    return metrics.registry.get_sample_value(name)


def test_not_ready_until_both_answer(served):
    metrics, url = served
    assert _get(url + "/healthz") == (
        503,
        json.dumps({"ready": False, "database": False, "kafka": False}).encode(),
    )
    metrics.set_health(database=True)
    assert _get(url + "/healthz")[0] == 503
    assert sample(metrics, "fraud_sink_ready") == 0
    metrics.set_health(kafka=True)
    status, body = _get(url + "/healthz")
    assert (status, json.loads(body)) == (200, {"ready": True, "database": True, "kafka": True})
    assert sample(metrics, "fraud_sink_ready") == 1


@pytest.mark.parametrize("down", ["database", "kafka"])
def test_either_side_down_is_not_ready(served, down):
    metrics, url = served
    metrics.set_health(database=True, kafka=True)
    metrics.set_health(**{down: False})
    status, body = _get(url + "/healthz")
    assert status == 503 and json.loads(body)[down] is False
    assert sample(metrics, "fraud_sink_ready") == 0
    assert sample(metrics, "fraud_sink_db_up") == (0 if down == "database" else 1)
    assert sample(metrics, "fraud_sink_kafka_up") == (0 if down == "kafka" else 1)


def test_metrics_are_served_beside_it(served):
    metrics, url = served
    metrics.set_health(database=True, kafka=True)
    status, body = _get(url + "/metrics")
    assert status == 200
    assert b"fraud_sink_ready 1.0" in body and b"fraud_sink_db_up 1.0" in body


def test_a_taken_port_is_a_clear_error(served):
    _metrics, url = served
    port = int(url.rsplit(":", 1)[1])
    with pytest.raises(SystemExit, match=f"cannot serve metrics on 127.0.0.1:{port}"):
        serve(port, SinkMetrics().registry, lambda: None, addr="127.0.0.1")
