"""Crash and restart: SIGKILL the sink mid-stream (some rows stored, offsets not at the
end), start it again, and the table ends exactly at the highest version per key, with no
duplicates, and every offset committed."""

from __future__ import annotations

import random
import threading

import psycopg2
import pytest

from infra.components.kafka_io import produce
from infra.components.wait import wait_until
from infra.testing.alerts import alert_stream
from infra.testing.sink import TOPIC, SinkProcess, kafka_and_postgres, offsets
from infra.testing.table import read_table, table_diff


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    yield from kafka_and_postgres(tmp_path_factory)


def test_sigkill_mid_stream_then_restart_loses_and_duplicates_nothing(stack, tmp_path):
    kafka, postgres = stack
    stream = alert_stream(random.Random(7), [f"user-{i}" for i in range(1500)], 2)
    records = stream.records()
    chunks = [records[i : i + 500] for i in range(0, len(records), 500)]
    # The stream keeps arriving while the sink runs and crashes.
    producer = threading.Thread(target=lambda: [produce(kafka.bootstrap, TOPIC, c) for c in chunks])
    producer.start()
    args = ("--bootstrap-servers", kafka.bootstrap, "--postgres-dsn", postgres.dsn)
    sink = SinkProcess.start(tmp_path, *args, "--batch-size", "100")
    try:
        wait_until(
            lambda: len(read_table(postgres.dsn)) >= 500,
            120,
            "storing the first rows",
            sink.log_tail,
        )
        sink.kill()
        stored_at_kill = len(read_table(postgres.dsn))
        committed, _ = offsets(kafka.bootstrap, TOPIC)
        print(f"killed with {stored_at_kill} rows stored, {sum(committed.values())} committed")
        assert 0 < sum(committed.values()) < len(records), "the kill was not mid-stream"
        assert stored_at_kill < len(stream.expected)
    finally:
        sink.ensure_stopped()
    producer.join(120)
    assert not producer.is_alive()

    sink = SinkProcess.start(tmp_path, *args, "--batch-size", "100")
    try:
        wait_until(
            lambda: not table_diff(read_table(postgres.dsn), stream.expected),
            120,
            "holding exactly the highest version per key after the restart",
            lambda: table_diff(read_table(postgres.dsn), stream.expected),
        )
        wait_until(
            lambda: _committed_to_end(kafka.bootstrap),
            60,
            "committed to the end offsets",
            lambda: str(offsets(kafka.bootstrap, TOPIC)),
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
    committed, end = offsets(bootstrap, TOPIC)
    return committed == end
