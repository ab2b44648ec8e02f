"""Sink health from outside: `/healthz` and `fraud_sink_ready` say 200/1 while the
database and the broker answer, 503/0 while either is down (even with no alerts flowing),
and recover when it is back."""

from __future__ import annotations

import json
import random
import urllib.error
import urllib.request

import pytest

from infra.components.kafka_io import produce
from infra.components.wait import wait_until
from infra.testing.alerts import alert_stream
from infra.testing.sink import TOPIC, SinkProcess, kafka_and_postgres, stop_postgres_fast
from infra.testing.table import read_table, table_diff


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    yield from kafka_and_postgres(tmp_path_factory)


def _healthz(sink) -> tuple[int, dict]:
    url = f"http://127.0.0.1:{sink.metrics_port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def _wait_health(sink, status: int, what: str, **expected: bool) -> None:
    def matches() -> bool:
        code, body = _healthz(sink)
        return code == status and all(body[k] == v for k, v in expected.items())

    wait_until(matches, 60, what, lambda: f"{_healthz(sink)}\n{sink.log_tail()}")
    ready = sink.metrics()["fraud_sink_ready"]
    assert ready == (1 if status == 200 else 0)


def test_healthz_follows_the_database_and_the_broker(stack, tmp_path):
    kafka, postgres = stack
    sink = SinkProcess.start(
        tmp_path,
        "--bootstrap-servers", kafka.bootstrap,
        "--postgres-dsn", postgres.dsn,
        "--retry-initial-ms", "100",
        "--retry-max-ms", "1000",
    )  # fmt: skip
    try:
        _wait_health(sink, 200, "healthy at start", database=True, kafka=True)

        stop_postgres_fast(postgres)
        _wait_health(sink, 503, "reporting the database down", database=False, kafka=True)
        assert sink.metrics()["fraud_sink_db_up"] == 0
        postgres.start()
        _wait_health(sink, 200, "healthy after the database is back", database=True)

        kafka.stop()
        _wait_health(sink, 503, "reporting the broker down", database=True, kafka=False)
        assert sink.metrics()["fraud_sink_kafka_up"] == 0
        kafka.start()
        _wait_health(sink, 200, "healthy after the broker is back", kafka=True)

        # Still doing its work afterwards.
        stream = alert_stream(random.Random(3), ["h1", "h2"], windows=1)
        produce(kafka.bootstrap, TOPIC, stream.records())
        wait_until(
            lambda: not table_diff(read_table(postgres.dsn), stream.expected),
            60,
            "storing alerts after both outages",
            sink.log_tail,
        )
    finally:
        code = sink.terminate()
        sink.ensure_stopped()
    assert code == 0, sink.log_tail()
