"""The quality monitor's settings, parsed once at the edge (libs/cli/settings.py: each
field is a flag and a `FRAUD_QUALITY_<FIELD>` variable; KAFKA_BOOTSTRAP_SERVERS and
FRAUD_LOG_LEVEL are the shared names); Kafka TLS/SASL from the libs/kafka/security.py
section."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from libs.cli import settings
from libs.cli.settings import (
    log_level_setting,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    section,
    setting,
)
from libs.kafka.security import GROUP as KAFKA_SECURITY
from libs.kafka.security import KafkaSecurity
from libs.schemas.topics import ALERTS_TOPIC, TRANSACTIONS_TOPIC

SERVICE = "QUALITY"
DESCRIPTION = "Live precision/recall of fraud alerts against the ground-truth headers."

_KAFKA, _WINDOWS, _OPS = "Kafka", "windows (match the detector's)", "operations"


@dataclass(frozen=True)
class QualitySettings:
    bootstrap_servers: str = setting(
        "localhost:9092", group=_KAFKA, help="Kafka bootstrap servers (host:port,...)"
    )
    transactions_topic: str = setting(
        TRANSACTIONS_TOPIC,
        group=_KAFKA,
        help="topic with transactions and their ground-truth headers",
    )
    alerts_topic: str = setting(ALERTS_TOPIC, group=_KAFKA, help="topic with the detector's alerts")
    group_id: str = setting(
        "fraud-quality",
        group=_KAFKA,
        help="consumer group (offsets auto-committed: this is a monitor)",
    )
    offset_reset: str = setting(
        "earliest",
        choices=("earliest", "latest"),
        group=_KAFKA,
        help="where a group without committed offsets starts",
    )
    batch_size: int = setting(
        5000, type=positive_int, group=_KAFKA, help="messages per consume() call"
    )
    startup_timeout: float = setting(
        15.0,
        type=positive_float,
        group=_KAFKA,
        help="seconds to reach the broker and find the topics",
    )
    close_timeout: float = setting(
        5.0,
        type=positive_float,
        group=_KAFKA,
        help="seconds to commit and leave the group at exit (then exit regardless)",
    )
    kafka: KafkaSecurity = section(KafkaSecurity, KAFKA_SECURITY)
    window_seconds: int = setting(
        60,
        type=positive_int,
        group=_WINDOWS,
        help="tumbling window length, aligned to the epoch",
    )
    watermark_seconds: float = setting(
        30.0, type=non_negative_float, group=_WINDOWS, help="the detector's watermark delay"
    )
    grace_seconds: float = setting(
        15.0,
        type=non_negative_float,
        group=_WINDOWS,
        help="extra event time to wait for alerts after the watermark passes a window",
    )
    metrics_port: int = setting(
        8003, type=non_negative_int, group=_OPS, help="Prometheus port (0: off)"
    )
    report_file: str = setting(
        "", group=_OPS, help="write a JSON report here at exit (empty: none)"
    )
    log_interval: float = setting(
        10.0, type=positive_float, group=_OPS, help="seconds between progress lines"
    )
    log_level: str = log_level_setting(_OPS)


def parse_settings(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> QualitySettings:
    return settings.parse(
        QualitySettings, SERVICE, argv, environ, prog="quality", description=DESCRIPTION
    )
