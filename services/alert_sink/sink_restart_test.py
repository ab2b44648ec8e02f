"""Crash and restart: SIGKILL the sink mid-stream (some rows stored, offsets not at the
end), start it again, and the table ends exactly at the highest version per key, with no
duplicates, and every offset committed."""

from __future__ import annotations

import random
import threading

import psycopg2
import pytest

from services.alert_sink import harness


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    yield from harness.kafka_and_postgres(tmp_path_factory)


def test_sigkill_mid_stream_then_restart_loses_and_duplicates_nothing(stack, tmp_path):
    kafka, postgres = stack
    stream = harness.alert_stream(random.Random(7), [f"user-{i}" for i in range(1500)], 2)
    records = stream.records()
    chunks = [records[i : i + 500] for i in range(0, len(records), 500)]
    # The stream keeps arriving while the sink runs and crashes.
    producer = threading.Thread(
        target=lambda: [harness.produce(kafka.bootstrap, harness.TOPIC, c) for c in chunks]
    )
    producer.start()
    args = ("--bootstrap-servers", kafka.bootstrap, "--postgres-dsn", postgres.dsn)
    sink = harness.SinkProcess.start(tmp_path, *args, "--batch-size", "100")
    try:
        harness.wait_until(
            lambda: len(harness.read_table(postgres.dsn)) >= 500,
            120,
            "storing the first rows",
            sink.log_tail,
        )
        sink.kill()
        stored_at_kill = len(harness.read_table(postgres.dsn))
        committed, _ = harness.offsets(kafka.bootstrap, harness.TOPIC)
        print(f"killed with {stored_at_kill} rows stored, {sum(committed.values())} committed")
        assert 0 < sum(committed.values()) < len(records), "the kill was not mid-stream"
        assert stored_at_kill < len(stream.expected)
    finally:
        sink.ensure_stopped()
    producer.join(120)
    assert not producer.is_alive()

    sink = harness.SinkProcess.start(tmp_path, *args, "--batch-size", "100")
    try:
        harness.wait_until(
            lambda: not harness.table_diff(harness.read_table(postgres.dsn), stream.expected),
            120,
            "holding exactly the highest version per key after the restart",
            lambda: harness.table_diff(harness.read_table(postgres.dsn), stream.expected),
        )
        harness.wait_until(
            lambda: _committed_to_end(kafka.bootstrap),
            60,
            "committed to the end offsets",
            lambda: str(harness.offsets(kafka.bootstrap, harness.TOPIC)),
        )
        replayed = sink.metrics()["fraud_sink_messages_consumed_total"]
        print(f"restart re-read {replayed:.0f} messages (the uncommitted tail)")
        assert replayed < len(records)  # it resumed from the committed offsets
    finally:
        assert sink.terminate() == 0, sink.log_tail()

    with psycopg2.connect(postgres.dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*), count(DISTINCT (user_id, window_start)) FROM alerts")
        rows, keys = cur.fetchone()
    conn.close()
    assert rows == keys == len(stream.expected)


def _committed_to_end(bootstrap: str) -> bool:
    committed, end = harness.offsets(bootstrap, harness.TOPIC)
    return committed == end
