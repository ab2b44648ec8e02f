"""The sink's configuration, parsed once at the edge: flags with environment fallbacks.

Why: every setting can come from the command line or the environment (compose, k8s), and
--help names each variable. The database password has no flag on purpose: libpq reads it
from PGPASSWORD or a passfile, so it never shows in a process list or a default.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from libs.cli.flags import flag, non_negative_int
from libs.dlq.dlq import DEFAULT_MAX_VALUE_BYTES, DlqConfig
from libs.schemas.sql import alerts_ddl
from services.alert_sink.backoff import Backoff
from services.alert_sink.dlq import DEFAULT_DLQ_TOPIC

DEFAULT_DSN = "host=localhost port=5432 dbname=fraud user=postgres"


@dataclass(frozen=True)
class Config:
    bootstrap_servers: str = "localhost:9092"
    topic: str = "fraud_alerts"
    group_id: str = "fraud-alert-sink"
    dlq_topic: str = DEFAULT_DLQ_TOPIC
    dlq_timeout_ms: int = 10_000
    dlq_max_bytes: int = DEFAULT_MAX_VALUE_BYTES
    postgres_dsn: str = DEFAULT_DSN
    table: str = "alerts"
    batch_size: int = 500
    batch_timeout_ms: int = 200
    retry: Backoff = field(default_factory=Backoff)
    session_timeout_ms: int = 10_000
    max_poll_interval_ms: int = 300_000
    metrics_port: int = 8001
    log_level: str = "INFO"


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} must be > 0")
    return value


def build_parser(environ: Mapping[str, str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="alert_sink",
        description="Consume Alert JSON from Kafka and upsert it into PostgreSQL. The database "
        "password comes only from the environment (PGPASSWORD) or a libpq passfile "
        "(PGPASSFILE, ~/.pgpass).",
    )
    env = {"environ": environ}

    kafka = parser.add_argument_group("Kafka")
    flag(kafka, "--bootstrap-servers", env="KAFKA_BOOTSTRAP_SERVERS", default="localhost:9092",
         help="Kafka bootstrap servers.", **env)  # fmt: skip
    flag(kafka, "--topic", env="FRAUD_SINK_TOPIC", default="fraud_alerts",
         help="Topic to consume alerts from.", **env)  # fmt: skip
    flag(kafka, "--group-id", env="FRAUD_SINK_GROUP_ID", default="fraud-alert-sink",
         help="Consumer group.", **env)  # fmt: skip
    flag(kafka, "--dlq-topic", env="FRAUD_SINK_DLQ_TOPIC", default=DEFAULT_DLQ_TOPIC,
         help="Dead-letter topic for messages that cannot be stored.", **env)  # fmt: skip
    flag(kafka, "--dlq-timeout-ms", env="FRAUD_SINK_DLQ_TIMEOUT_MS", default=10_000,
         type=positive_int, help="How long one attempt to deliver a batch's dead letters "
         "may take before it fails and the batch is retried.", **env)  # fmt: skip
    flag(kafka, "--dlq-max-bytes", env="FRAUD_SINK_DLQ_MAX_BYTES",
         default=DEFAULT_MAX_VALUE_BYTES, type=positive_int, help="Longest dead-letter value; "
         "a longer one is cut, with headers original-size and original-sha256. With the key "
         "and headers it must fit the producer's message.max.bytes (1000000).",
         **env)  # fmt: skip
    flag(kafka, "--session-timeout-ms", env="FRAUD_SINK_SESSION_TIMEOUT_MS", default=10_000,
         type=positive_int, help="How soon the group notices a crashed sink (librdkafka "
         "default 45000; the broker's minimum is 6000).", **env)  # fmt: skip
    flag(kafka, "--max-poll-interval-ms", env="FRAUD_SINK_MAX_POLL_INTERVAL_MS",
         default=300_000, type=positive_int, help="Longest gap between polls before the group "
         "drops the sink; it polls every 0.5 s even during a database outage.", **env)  # fmt: skip

    db = parser.add_argument_group("PostgreSQL")
    flag(db, "--postgres-dsn", env="FRAUD_POSTGRES_DSN", default=DEFAULT_DSN,
         help="libpq connection string; no password here (PGPASSWORD or a passfile).",
         **env)  # fmt: skip
    flag(db, "--table", env="FRAUD_SINK_TABLE", default="alerts",
         help="Alerts table, created if missing.", **env)  # fmt: skip

    batching = parser.add_argument_group("batching and retries")
    flag(batching, "--batch-size", env="FRAUD_SINK_BATCH_SIZE", default=500, type=positive_int,
         help="Most messages per database transaction.", **env)  # fmt: skip
    flag(batching, "--batch-timeout-ms", env="FRAUD_SINK_BATCH_TIMEOUT_MS", default=200,
         type=positive_int, help="Longest wait to fill a batch.", **env)  # fmt: skip
    flag(batching, "--retry-initial-ms", env="FRAUD_SINK_RETRY_INITIAL_MS", default=500,
         type=positive_int, help="First retry delay after a database or DLQ error.",
         **env)  # fmt: skip
    flag(batching, "--retry-max-ms", env="FRAUD_SINK_RETRY_MAX_MS", default=10_000,
         type=positive_int, help="Cap of the exponential retry delay.", **env)  # fmt: skip

    ops = parser.add_argument_group("operations")
    flag(ops, "--metrics-port", env="FRAUD_SINK_METRICS_PORT", default=8001,
         type=non_negative_int, help="Prometheus metrics port (0: none).", **env)  # fmt: skip
    flag(ops, "--log-level", env="FRAUD_LOG_LEVEL", default="INFO", type=str.upper,
         choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="Log level.", **env)  # fmt: skip
    return parser


def parse_config(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> Config:
    parser = build_parser(environ)
    ns = parser.parse_args(argv)
    try:
        retry = Backoff(initial=ns.retry_initial_ms / 1000, maximum=ns.retry_max_ms / 1000)
        alerts_ddl(ns.table)  # the table name is spliced into SQL: check it now
        DlqConfig(ns.bootstrap_servers, ns.dlq_topic, max_value_bytes=ns.dlq_max_bytes)
        if ns.max_poll_interval_ms < ns.session_timeout_ms:
            raise ValueError(
                f"--max-poll-interval-ms={ns.max_poll_interval_ms} must be >= "
                f"--session-timeout-ms={ns.session_timeout_ms} (a librdkafka rule)"
            )
    except ValueError as err:
        parser.error(str(err))
    return Config(
        bootstrap_servers=ns.bootstrap_servers,
        topic=ns.topic,
        group_id=ns.group_id,
        dlq_topic=ns.dlq_topic,
        dlq_timeout_ms=ns.dlq_timeout_ms,
        dlq_max_bytes=ns.dlq_max_bytes,
        postgres_dsn=ns.postgres_dsn,
        table=ns.table,
        batch_size=ns.batch_size,
        batch_timeout_ms=ns.batch_timeout_ms,
        retry=retry,
        session_timeout_ms=ns.session_timeout_ms,
        max_poll_interval_ms=ns.max_poll_interval_ms,
        metrics_port=ns.metrics_port,
        log_level=ns.log_level,
    )
