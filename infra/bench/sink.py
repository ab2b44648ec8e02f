"""Sink throughput on this machine: `tools/bazel run //infra/bench:sink`.

Why: batch size and the multi-row upsert are the sink's main performance levers; this
measures rows/s end to end (Kafka -> decode -> upsert -> database commit -> offset commit)
against a real broker and PostgreSQL, for inserts (new keys) and updates (newer versions).
Each phase's alerts are produced first, then a fresh in-process sink drains the backlog;
the rate counts from the first stored row, so the consumer group join is left out.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import threading
import time
from pathlib import Path

import psycopg2

from infra.components.kafka_io import produce
from infra.components.wait import wait_until
from infra.testing.alerts import stream_alert
from infra.testing.sink import DLQ_TOPIC, TOPIC, start_kafka, start_postgres
from libs.cli.service import Shutdown
from libs.logging.structured import configure
from libs.schemas.alert import alert_to_json
from services.alert_sink.config import Config
from services.alert_sink.metrics import SinkMetrics
from services.alert_sink.sink import run


def _count(dsn: str, version: int) -> int:
    """Rows at `version` or newer (0 before the sink created the table)."""
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT to_regclass('alerts') IS NOT NULL")
            if not cur.fetchone()[0]:
                return 0
            cur.execute("SELECT count(*) FROM alerts WHERE version >= %s", (version,))
            return cur.fetchone()[0]
    finally:
        conn.close()


def _records(alerts: int, version: int):
    users = max(1, alerts // 2)  # two windows per user
    for i in range(alerts):
        user = f"user-{i % users}"
        yield user.encode(), alert_to_json(stream_alert(user, i // users, version))


def _phase(name: str, config: Config, postgres, alerts: int, version: int) -> None:
    started = time.monotonic()
    produce(config.bootstrap_servers, TOPIC, _records(alerts, version))
    produced = time.monotonic() - started

    shutdown, metrics = Shutdown(), SinkMetrics()
    sink = threading.Thread(target=run, args=(config, shutdown, metrics), daemon=True)
    started = time.monotonic()
    sink.start()
    try:
        wait_until(lambda: _count(postgres.dsn, version) > 0, 120, "first row")
        first, first_at = _count(postgres.dsn, version), time.monotonic()
        wait_until(lambda: _count(postgres.dsn, version) >= alerts, 900, "all stored")
        done = time.monotonic()
    finally:
        shutdown.request()
        sink.join(60)
    sample = metrics.registry.get_sample_value
    batches = sample("fraud_sink_batch_seconds_count") or 0
    mean_ms = 1000 * (sample("fraud_sink_batch_seconds_sum") or 0) / max(batches, 1)
    print(
        f"  {name:24s} {(alerts - first) / (done - first_at):8.0f} rows/s"
        f"  ({alerts} rows in {done - started:.1f} s incl. group join;"
        f" {batches:.0f} batches of mean {mean_ms:.1f} ms;"
        f" produced in {produced:.1f} s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="Measure alert sink throughput.")
    parser.add_argument("--alerts", type=int, default=50_000, help="alerts per phase")
    parser.add_argument("--batch-size", type=int, default=500)
    args = parser.parse_args()
    configure("alert_sink_bench", "WARNING")

    workdir = Path(tempfile.mkdtemp(prefix="sink-bench-"))
    kafka = start_kafka(workdir / "kafka", {TOPIC: 3, DLQ_TOPIC: 1})
    postgres = start_postgres()
    config = Config(
        bootstrap_servers=kafka.bootstrap,
        postgres_dsn=postgres.dsn,
        batch_size=args.batch_size,
        metrics_port=0,
    )
    print(f"alert sink benchmark: {args.alerts} alerts per phase, batch size {args.batch_size}")
    try:
        _phase("insert (new keys)", config, postgres, args.alerts, version=1)
        _phase("update (newer version)", config, postgres, args.alerts, version=2)
    finally:
        kafka.stop()
        postgres.destroy()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
