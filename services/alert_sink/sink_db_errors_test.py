"""A row the database refuses for its data is a dead letter, not an outage: an alert with a
3 KB user_id (the upsert fails with SQLSTATE 54000, index row too large, which psycopg2
raises as OperationalError) lands in `fraud_alerts.dlq` with its SQLSTATE, the rest of the
batch is stored, the database stays "up" and the offsets are committed.

The sink runs in-process so the test can hand it that alert directly: libs/schemas may
refuse such a user_id at parse time, and this test is about the database's answer.
"""

from __future__ import annotations

import dataclasses
import random
import secrets
import threading

import pytest

from infra.components.kafka_io import produce, read_records
from infra.components.wait import wait_until
from infra.testing.alerts import alert_stream, stream_alert
from infra.testing.sink import DLQ_TOPIC, TOPIC, kafka_and_postgres, offsets
from infra.testing.table import read_table, table_diff
from libs.cli.service import Shutdown
from libs.schemas.alert import parse_alert
from services.alert_sink.config import parse_config
from services.alert_sink.metrics import SinkMetrics
from services.alert_sink.sink import Sink

MARKER = b"stands for an alert with a 3 KB user_id"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    yield from kafka_and_postgres(tmp_path_factory)


def test_index_row_too_large_is_dead_lettered_and_the_batch_goes_on(stack):
    kafka, postgres = stack
    huge = dataclasses.replace(
        stream_alert("x", 0, 1),
        user_id=secrets.token_urlsafe(2250),  # 3000 chars
    )

    def parse(raw: bytes):
        return huge if raw == MARKER else parse_alert(raw)

    stream = alert_stream(random.Random(5), [f"user-{i}" for i in range(40)], windows=1)
    records = stream.records()
    records.insert(len(records) // 2, (huge.user_id.encode(), MARKER))
    produce(kafka.bootstrap, TOPIC, records)

    config = parse_config(
        ["--bootstrap-servers", kafka.bootstrap, "--postgres-dsn", postgres.dsn,
         "--metrics-port", "0", "--batch-size", str(len(records) + 10)],
        environ={},
    )  # fmt: skip
    metrics, shutdown = SinkMetrics(), Shutdown()
    sink = Sink(config, shutdown, metrics, random.Random(1), parse=parse)
    thread = threading.Thread(target=sink.run, name="sink")
    thread.start()
    try:
        wait_until(
            lambda: not table_diff(read_table(postgres.dsn), stream.expected),
            60,
            "storing every other alert",
            lambda: table_diff(read_table(postgres.dsn), stream.expected),
        )
        (letter,) = read_records(kafka.bootstrap, DLQ_TOPIC, 1)
        wait_until(
            lambda: offsets(kafka.bootstrap, TOPIC)[0] == offsets(kafka.bootstrap, TOPIC)[1],
            60,
            "committed to the end offsets",
            lambda: str(offsets(kafka.bootstrap, TOPIC)),
        )
    finally:
        shutdown.request()
        thread.join(60)
    assert not thread.is_alive()

    assert (letter.key, letter.value) == (huge.user_id.encode(), MARKER)
    assert letter.text_headers["error"].startswith("db_rejected: SQLSTATE 54000: index row size")
    assert letter.text_headers["error-reason"] == "db_rejected"
    assert letter.text_headers["source-topic"] == TOPIC
    rows = read_table(postgres.dsn)
    assert (huge.user_id, huge.window_start) not in rows

    def sample(name: str, **labels: str) -> float | None:
        return metrics.registry.get_sample_value(name, labels)

    assert sample("fraud_sink_db_up") == 1
    for kind in ("connect", "connection", "unavailable", "conflict", "query"):
        assert sample("fraud_sink_db_errors_total", kind=kind) == 0, kind  # never retried
    assert sample("fraud_sink_dlq_messages_total", reason="db_rejected") == 1
    assert sample("fraud_sink_ready") == 1
