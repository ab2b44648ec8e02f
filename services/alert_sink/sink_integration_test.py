"""The sink binary against a real Kafka broker and PostgreSQL: out-of-order versions,
duplicates and many keys end as exactly the highest version per key; bad input lands in
the DLQ with its headers; committed offsets reach the end offsets; SIGTERM exits 0."""

from __future__ import annotations

import os
import random
import subprocess
import time

import pytest

from infra.components.kafka_io import produce, read_records
from infra.components.wait import wait_until
from infra.testing.alerts import alert_stream, bad_alert_records
from infra.testing.sink import DLQ_TOPIC, TOPIC, SinkProcess, kafka_and_postgres, offsets
from infra.testing.table import read_table, table_diff


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    yield from kafka_and_postgres(tmp_path_factory)


def test_stores_latest_versions_and_dead_letters_bad_input(stack, tmp_path):
    kafka, postgres = stack
    rng = random.Random(42)
    stream = alert_stream(rng, [f"user-{i}" for i in range(400)], windows=2)
    bad = bad_alert_records()
    records = stream.records()
    for record, _reason in bad:  # bad ones spread through the stream
        records.insert(rng.randrange(len(records)), record)
    total = produce(kafka.bootstrap, TOPIC, records)

    sink = SinkProcess.start(
        tmp_path,
        "--bootstrap-servers",
        kafka.bootstrap,
        "--postgres-dsn",
        postgres.dsn,
        "--batch-size",
        "200",
    )
    try:
        started = time.monotonic()
        wait_until(
            lambda: not table_diff(read_table(postgres.dsn), stream.expected),
            120,
            "holding exactly the highest version per key",
            lambda: table_diff(read_table(postgres.dsn), stream.expected) + "\n" + sink.log_tail(),
        )
        took = time.monotonic() - started
        print(f"{total} messages ({len(stream.expected)} keys) stored in {took:.1f} s")

        def committed_to_end() -> bool:
            committed, end = offsets(kafka.bootstrap, TOPIC)
            return committed == end

        wait_until(
            committed_to_end,
            60,
            "committed to the end offsets",
            lambda: str(offsets(kafka.bootstrap, TOPIC)),
        )
        assert sum(offsets(kafka.bootstrap, TOPIC)[1].values()) == total

        dead = read_records(kafka.bootstrap, DLQ_TOPIC, len(bad))
        by_key = {m.key: m for m in dead}
        for (key, value), reason in bad:
            letter = by_key[key]
            assert letter.value == value
            assert letter.text_headers["error"].startswith(f"{reason}: "), letter.headers
            assert letter.text_headers["source-topic"] == TOPIC
            assert 0 <= int(letter.text_headers["source-partition"]) < 3
            assert int(letter.text_headers["source-offset"]) >= 0

        metrics = sink.metrics()
        valid = len(stream.messages)
        assert metrics["fraud_sink_messages_consumed_total"] == total
        assert metrics["fraud_sink_dlq_messages_total"] == len(bad)
        for _, reason in bad:
            assert metrics[f'fraud_sink_dlq_messages_total{{reason="{reason}"}}'] == 1
        # Every valid alert was either written or ignored (the NUL one was refused).
        stored = metrics["fraud_sink_alerts_stored_total"]
        assert len(stream.expected) <= stored <= valid
        assert stored + metrics["fraud_sink_alerts_ignored_total"] == valid
        assert metrics["fraud_sink_db_up"] == 1
        assert metrics["fraud_sink_db_errors_total"] == 0
        assert metrics["fraud_sink_batch_size_count"] >= total / 200
        assert metrics["fraud_sink_e2e_latency_seconds_count"] == stored
        assert metrics["fraud_sink_batch_seconds_count"] == metrics["fraud_sink_batch_size_count"]
        wait_until(
            lambda: (
                sink.metrics().get("fraud_sink_consumer_lag") == 0
                and 'fraud_sink_consumer_lag{partition="2",topic="fraud_alerts"}' in sink.metrics()
            ),
            30,
            "reporting zero consumer lag on every partition",
            lambda: str(sink.metrics()),
        )
    finally:
        code = sink.terminate()
        sink.ensure_stopped()
    assert code == 0, sink.log_tail()
    assert '"msg": "stopped"' in sink.log_path.read_text()


def test_help_names_flags_and_environment():
    out = subprocess.run(
        [os.path.abspath(os.environ["ALERT_SINK_BIN"]), "--help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    for text in (
        "--postgres-dsn",
        "FRAUD_POSTGRES_DSN",
        "--batch-size",
        "--dlq-topic",
        "KAFKA_BOOTSTRAP_SERVERS",
        "FRAUD_SINK_METRICS_PORT",
    ):
        assert text in out
