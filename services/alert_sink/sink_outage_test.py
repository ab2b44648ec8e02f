"""Database outages: while PostgreSQL is down the sink counts errors, keeps its group
membership and commits nothing past what is stored; when it is back, every alert arrives.
A SIGTERM during an outage exits 0 and leaves the batch uncommitted for the next run."""

from __future__ import annotations

import random
import time

import pytest

from infra.components.kafka_io import group_members, produce
from infra.components.wait import wait_until
from infra.testing.alerts import alert_stream
from infra.testing.sink import (
    GROUP,
    TOPIC,
    SinkProcess,
    kafka_and_postgres,
    offsets,
    stop_postgres_fast,
)
from infra.testing.table import read_table, table_diff


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    yield from kafka_and_postgres(tmp_path_factory)


def _wait_stored(kafka, postgres, stream, sink, what):
    wait_until(
        lambda: not table_diff(read_table(postgres.dsn), stream.expected),
        120,
        what,
        lambda: table_diff(read_table(postgres.dsn), stream.expected) + "\n" + sink.log_tail(),
    )
    wait_until(
        lambda: _committed_to_end(kafka.bootstrap),
        60,
        "committed to the end offsets",
        lambda: str(offsets(kafka.bootstrap, TOPIC)),
    )


def _committed_to_end(bootstrap: str) -> bool:
    committed, end = offsets(bootstrap, TOPIC)
    return committed == end


def _db_errors(sink) -> float:
    return sink.metrics()["fraud_sink_db_errors_total"]


def test_outage_loses_nothing_and_commits_nothing_early(stack, tmp_path):
    kafka, postgres = stack
    rng = random.Random(11)
    users = [f"user-{i}" for i in range(300)]
    stream = alert_stream(rng, users[:200], windows=1)
    produce(kafka.bootstrap, TOPIC, stream.records())
    sink = SinkProcess.start(
        tmp_path,
        "--bootstrap-servers", kafka.bootstrap,
        "--postgres-dsn", postgres.dsn,
        "--retry-initial-ms", "100",
        "--retry-max-ms", "1000",
        # Short group timeouts, so the outage below outlasts them several times over.
        "--session-timeout-ms", "6000",
        "--max-poll-interval-ms", "6000",
    )  # fmt: skip
    try:
        _wait_stored(kafka, postgres, stream, sink, "storing phase 1")
        before, _ = offsets(kafka.bootstrap, TOPIC)

        # Outage 1: a clean ("fast") shutdown of PostgreSQL.
        stop_postgres_fast(postgres)
        down_at = time.monotonic()
        later = alert_stream(rng, users[100:], windows=2, max_version=8)
        for alert in later.messages:
            stream.add(alert)
        produce(kafka.bootstrap, TOPIC, later.records())
        # The outage must outlast max.poll.interval.ms twice: waiting out that time is the
        # point here; everything else is checked by polling.
        wait_until(
            lambda: time.monotonic() - down_at > 13 and _db_errors(sink) >= 5,
            60,
            "counting database errors for 13 s",
            sink.log_tail,
        )
        wait_until(
            lambda: sink.metrics().get("fraud_sink_consumer_lag", 0) > 0,
            30,
            "reporting the backlog as consumer lag",
        )
        metrics = sink.metrics()
        assert metrics["fraud_sink_db_up"] == 0
        assert metrics['fraud_sink_db_errors_total{kind="connect"}'] >= 1
        committed, end = offsets(kafka.bootstrap, TOPIC)
        assert committed == before, "offsets advanced while the database was down"
        assert sum(end.values()) > sum(committed.values())
        assert group_members(kafka.bootstrap, GROUP) == 1  # still in its group

        postgres.start()  # same data directory and port
        _wait_stored(kafka, postgres, stream, sink, "storing everything after the outage")
        assert sink.metrics()["fraud_sink_db_up"] == 1

        # Outage 2: PostgreSQL crashes (SIGKILL); recovery replays its WAL on start.
        postgres.kill()
        crash = alert_stream(rng, users[:50], windows=3, max_version=10)
        for alert in crash.messages:
            stream.add(alert)
        errors = _db_errors(sink)
        produce(kafka.bootstrap, TOPIC, crash.records())
        wait_until(
            lambda: _db_errors(sink) >= errors + 3, 60, "counting errors again", sink.log_tail
        )
        postgres.start()
        _wait_stored(kafka, postgres, stream, sink, "storing everything after the crash")
        log = sink.log_path.read_text()
        assert "partitions revoked" not in log, "the group dropped the sink during the outage"
        assert log.count("partitions assigned") == 1
    finally:
        code = sink.terminate()
        sink.ensure_stopped()
    assert code == 0, sink.log_tail()


def test_sigterm_during_outage_exits_cleanly_and_leaves_the_batch(stack, tmp_path):
    kafka, postgres = stack
    rng = random.Random(12)
    args = ("--bootstrap-servers", kafka.bootstrap, "--postgres-dsn", postgres.dsn,
            "--retry-initial-ms", "100", "--retry-max-ms", "500")  # fmt: skip
    sink = SinkProcess.start(tmp_path, *args)
    try:
        wait_until(lambda: _committed_to_end(kafka.bootstrap), 60, "caught up")
        before, _ = offsets(kafka.bootstrap, TOPIC)
        stop_postgres_fast(postgres)
        fresh = alert_stream(rng, [f"late-{i}" for i in range(100)], windows=1)
        produce(kafka.bootstrap, TOPIC, fresh.records())
        wait_until(lambda: _db_errors(sink) >= 3, 60, "counting database errors", sink.log_tail)
        code = sink.terminate(timeout=30)
        assert code == 0, sink.log_tail()
        assert "offsets left uncommitted" in sink.log_path.read_text()
        assert offsets(kafka.bootstrap, TOPIC)[0] == before
    finally:
        sink.ensure_stopped()

    postgres.start()
    sink = SinkProcess.start(tmp_path, *args)
    try:
        wait_until(
            lambda: all(
                key in (rows := read_table(postgres.dsn)) and rows[key]["version"] == alert.version
                for key, alert in fresh.expected.items()
            ),
            120,
            "storing the batch the stopped sink left",
            sink.log_tail,
        )
        wait_until(lambda: _committed_to_end(kafka.bootstrap), 60, "caught up")
    finally:
        assert sink.terminate() == 0, sink.log_tail()
