"""The notifier's settings, parsed once at the edge (libs/cli/settings.py: each field is a
flag and a `FRAUD_NOTIFIER_<FIELD>` variable; KAFKA_BOOTSTRAP_SERVERS, FRAUD_POSTGRES_DSN
and FRAUD_LOG_LEVEL are the shared names). Destinations and their secrets come from the
file named by --destinations (services/notifier/destinations.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from libs.cli import settings
from libs.cli.settings import (
    LOG_LEVELS,
    log_level,
    non_negative_int,
    positive_int,
    section,
    setting,
)
from libs.kafka.security import GROUP as KAFKA_SECURITY
from libs.kafka.security import KafkaSecurity
from libs.schemas.topics import ALERTS_TOPIC, NOTIFICATIONS_DLQ_TOPIC

SERVICE = "NOTIFIER"
DESCRIPTION = (
    "Notify people of new fraud alerts (JSON webhook, Slack, email): one notification per "
    "alert key, again only when its score rises, rate-limited with digests, retried, "
    "dead-lettered. Reads fraud_alerts as its own consumer group; state in PostgreSQL "
    "(password from PGPASSWORD or a passfile)."
)
_KAFKA, _DB, _SEND, _OPS = "Kafka", "PostgreSQL", "sending", "operations"


@dataclass(frozen=True)
class Config:
    destinations: Path = setting(
        Path("notifier.yaml"), group=_SEND, help="Destinations file (YAML, or .json)."
    )
    min_score: int = setting(
        4, type=non_negative_int, group=_SEND, help="Notify alerts with fraud_score >= this."
    )
    max_attempts: int = setting(
        8, type=positive_int, group=_SEND, help="Attempts before a notification is dead-lettered."
    )
    retry_initial_ms: int = setting(
        500, type=positive_int, group=_SEND, help="First retry delay (doubles each time)."
    )
    retry_max_ms: int = setting(
        60_000, type=positive_int, group=_SEND, help="Cap of the retry delay."
    )
    bootstrap_servers: str = setting("localhost:9092", group=_KAFKA, help="Kafka servers.")
    topic: str = setting(ALERTS_TOPIC, group=_KAFKA, help="Topic of alerts to notify.")
    group_id: str = setting(
        "fraud-notifier", group=_KAFKA, help="Consumer group (offsets are kept in PostgreSQL)."
    )
    dlq_topic: str = setting(
        NOTIFICATIONS_DLQ_TOPIC, group=_KAFKA, help="Where undeliverable notifications go."
    )
    kafka: KafkaSecurity = section(KafkaSecurity, KAFKA_SECURITY)
    postgres_dsn: str = setting(
        "host=localhost port=5432 dbname=fraud user=fraud_notifier",
        group=_DB,
        help="libpq connection string for the notifier's tables (the fraud_notifier role); "
        "no password here (PGPASSWORD or a passfile); TLS: sslmode=verify-full "
        "sslrootcert=CA-FILE.",
    )
    metrics_port: int = setting(
        8004, type=non_negative_int, group=_OPS, help="Prometheus metrics port (0: none)."
    )
    log_level: str = setting(
        "INFO", type=log_level, choices=LOG_LEVELS, group=_OPS, help="Log level."
    )

    def __post_init__(self) -> None:
        if self.retry_initial_ms > self.retry_max_ms:
            raise ValueError("--retry-initial-ms must be <= --retry-max-ms")


def parse_config(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> Config:
    return settings.parse(Config, SERVICE, argv, environ, prog="notifier", description=DESCRIPTION)
