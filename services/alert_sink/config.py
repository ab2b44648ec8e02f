"""The sink's settings, parsed once at the edge (libs/cli/settings.py: each field is a
flag and a `FRAUD_SINK_<FIELD>` variable; KAFKA_BOOTSTRAP_SERVERS, FRAUD_POSTGRES_DSN and
FRAUD_LOG_LEVEL are the shared names).

Why: every setting can come from the command line or the environment (compose, k8s), and
--help names each variable. The database password is never a flag or in the DSN's default:
it comes from --postgres-password-file (a mounted secret, read at every connect, so a
rotated password needs no restart), PGPASSWORD, or a libpq passfile; none is logged.
The sink connects as the `fraud_sink` role (infra/components/postgres_setup.py), which may
only SELECT/INSERT/UPDATE the alerts table: the table is made by that setup step, not here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from libs.cli import settings
from libs.cli.settings import (
    log_level_setting,
    non_negative_int,
    positive_int,
    section,
    setting,
)
from libs.dlq.dlq import DEFAULT_MAX_VALUE_BYTES, DlqConfig
from libs.kafka.security import GROUP as KAFKA_SECURITY
from libs.kafka.security import KafkaSecurity
from libs.schemas.sql import alerts_ddl
from libs.schemas.topics import ALERTS_DLQ_TOPIC, ALERTS_TOPIC
from services.alert_sink.backoff import Backoff

SERVICE = "SINK"
DEFAULT_DSN = "host=localhost port=5432 dbname=fraud user=fraud_sink"
SSLMODES = ("", "disable", "allow", "prefer", "require", "verify-ca", "verify-full")
DESCRIPTION = (
    "Consume Alert JSON from Kafka and upsert it into PostgreSQL. The database password "
    "comes only from --postgres-password-file, the environment (PGPASSWORD) or a libpq "
    "passfile (PGPASSFILE, ~/.pgpass)."
)

_KAFKA, _DB, _BATCHING, _OPS = "Kafka", "PostgreSQL", "batching and retries", "operations"


@dataclass(frozen=True)
class Config:
    bootstrap_servers: str = setting(
        "localhost:9092", group=_KAFKA, help="Kafka bootstrap servers."
    )
    topic: str = setting(ALERTS_TOPIC, group=_KAFKA, help="Topic to consume alerts from.")
    group_id: str = setting("fraud-alert-sink", group=_KAFKA, help="Consumer group.")
    dlq_topic: str = setting(
        ALERTS_DLQ_TOPIC, group=_KAFKA, help="Dead-letter topic for messages that cannot be stored."
    )
    dlq_timeout_ms: int = setting(
        10_000,
        type=positive_int,
        group=_KAFKA,
        help="How long one attempt to deliver a batch's dead letters may take before it "
        "fails and the batch is retried.",
    )
    dlq_max_bytes: int = setting(
        DEFAULT_MAX_VALUE_BYTES,
        type=positive_int,
        group=_KAFKA,
        help="Longest dead-letter value; a longer one is cut, with headers original-size "
        "and original-sha256. With the key and headers it must fit the producer's "
        "message.max.bytes (1000000).",
    )
    session_timeout_ms: int = setting(
        10_000,
        type=positive_int,
        group=_KAFKA,
        help="How soon the group notices a crashed sink (librdkafka default 45000; the "
        "broker's minimum is 6000).",
    )
    max_poll_interval_ms: int = setting(
        300_000,
        type=positive_int,
        group=_KAFKA,
        help="Longest gap between polls before the group drops the sink; it polls every "
        "0.5 s even during a database outage.",
    )
    kafka: KafkaSecurity = section(KafkaSecurity, KAFKA_SECURITY)
    postgres_dsn: str = setting(
        DEFAULT_DSN,
        group=_DB,
        help="libpq connection string; no password here (PGPASSWORD or a passfile).",
    )
    postgres_password_file: str = setting(
        "",
        group=_DB,
        help="File holding the database password (one line), read at every connect; "
        "empty: PGPASSWORD or a libpq passfile.",
    )
    postgres_sslmode: str = setting(
        "",
        choices=SSLMODES,
        group=_DB,
        help="libpq sslmode, over the DSN's: verify-full (with --postgres-ca-file) checks "
        "the server's certificate and host name; empty: the DSN's or libpq's (prefer).",
    )
    postgres_ca_file: str = setting(
        "",
        group=_DB,
        help="CA certificate(s) (PEM) the server's certificate must chain to (libpq "
        "sslrootcert); empty: the DSN's or ~/.postgresql/root.crt.",
    )
    table: str = setting(
        "alerts",
        group=_DB,
        help="Alerts table; it must exist (the database setup step creates it).",
    )
    batch_size: int = setting(
        500, type=positive_int, group=_BATCHING, help="Most messages per database transaction."
    )
    batch_timeout_ms: int = setting(
        200, type=positive_int, group=_BATCHING, help="Longest wait to fill a batch."
    )
    retry_initial_ms: int = setting(
        500,
        type=positive_int,
        group=_BATCHING,
        help="First retry delay after a database or DLQ error.",
    )
    retry_max_ms: int = setting(
        10_000, type=positive_int, group=_BATCHING, help="Cap of the exponential retry delay."
    )
    metrics_port: int = setting(
        8001, type=non_negative_int, group=_OPS, help="Prometheus metrics port (0: none)."
    )
    log_level: str = log_level_setting(_OPS)

    def __post_init__(self) -> None:
        _ = self.retry  # Backoff checks initial <= maximum
        alerts_ddl(self.table)  # the table name is spliced into SQL: check it now
        if self.postgres_sslmode in ("verify-ca", "verify-full") and not self.postgres_ca_file:
            # libpq would fall back to ~/.postgresql/root.crt: say which CA is trusted
            raise ValueError(f"--postgres-sslmode={self.postgres_sslmode} needs --postgres-ca-file")
        DlqConfig(self.bootstrap_servers, self.dlq_topic, max_value_bytes=self.dlq_max_bytes)
        if self.max_poll_interval_ms < self.session_timeout_ms:
            raise ValueError(
                f"--max-poll-interval-ms={self.max_poll_interval_ms} must be >= "
                f"--session-timeout-ms={self.session_timeout_ms} (a librdkafka rule)"
            )

    @property
    def postgres_params(self) -> dict[str, str]:
        """libpq parameters the settings add to (or override in) the DSN."""
        params = {"sslmode": self.postgres_sslmode, "sslrootcert": self.postgres_ca_file}
        return {k: v for k, v in params.items() if v}

    @property
    def retry(self) -> Backoff:
        return Backoff(initial=self.retry_initial_ms / 1000, maximum=self.retry_max_ms / 1000)


def build_parser(environ: Mapping[str, str] | None = None):
    return settings.build_parser(
        Config, SERVICE, environ, prog="alert_sink", description=DESCRIPTION
    )


def parse_config(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> Config:
    return settings.parse(
        Config, SERVICE, argv, environ, prog="alert_sink", description=DESCRIPTION
    )
