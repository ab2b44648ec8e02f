"""The producer's settings, parsed once at the edge (libs/cli/settings.py: each field is
a flag and a `FRAUD_PRODUCER_<FIELD>` variable; KAFKA_BOOTSTRAP_SERVERS and
FRAUD_LOG_LEVEL are the shared names), and what the generator and librdkafka get from them.
Kafka TLS/SASL come from the libs/kafka/security.py section (`--kafka-security-protocol`,
`--kafka-password-file`, ...).
"""

from __future__ import annotations

import argparse
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from libs.cli import settings
from libs.cli.settings import (
    log_level_setting,
    non_negative_float,
    non_negative_int,
    parse_float,
    positive_float,
    section,
    setting,
)
from libs.kafka.security import GROUP as KAFKA_SECURITY
from libs.kafka.security import KafkaSecurity
from libs.schemas.topics import TRANSACTIONS_TOPIC
from services.producer.generator import PATTERNS, GeneratorConfig

SERVICE = "PRODUCER"
DESCRIPTION = "Synthetic card transactions (about 10% labelled fraud) into Kafka."
COMPRESSIONS = ("none", "gzip", "snappy", "lz4", "zstd")

_KAFKA, _STREAM, _OPS = "Kafka", "stream", "operations"


def ratio(text: str) -> float:
    value = parse_float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be in [0, 1)")
    return value


def pattern_list(text: str) -> tuple[str, ...]:
    names = tuple(p.strip() for p in text.split(",") if p.strip())
    unknown = [p for p in names if p not in PATTERNS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected a comma-separated subset of {','.join(PATTERNS)}"
        )
    return names


@dataclass(frozen=True)
class ProducerSettings:
    bootstrap_servers: str = setting(
        "localhost:9092", group=_KAFKA, help="Kafka bootstrap servers (host:port,...)"
    )
    topic: str = setting(TRANSACTIONS_TOPIC, group=_KAFKA, help="topic to write; must exist")
    linger_ms: int = setting(
        10, type=non_negative_int, group=_KAFKA, help="how long librdkafka waits to fill a batch"
    )
    compression: str = setting("lz4", choices=COMPRESSIONS, group=_KAFKA, help="batch compression")
    flush_timeout: float = setting(
        30.0,
        type=non_negative_float,
        group=_KAFKA,
        help="seconds to wait for outstanding deliveries at exit",
    )
    startup_timeout: float = setting(
        15.0,
        type=positive_float,
        group=_KAFKA,
        help="seconds to reach the broker and find the topic",
    )
    kafka: KafkaSecurity = section(KafkaSecurity, KAFKA_SECURITY)
    rate: float = setting(100.0, type=positive_float, group=_STREAM, help="transactions per second")
    duration: float = setting(
        0.0,
        type=non_negative_float,
        group=_STREAM,
        help="stop after this many seconds (0: no limit)",
    )
    count: int = setting(
        0,
        type=non_negative_int,
        group=_STREAM,
        help="stop after this many transactions (0: no limit)",
    )
    seed: int | None = setting(
        None,
        group=_STREAM,
        help="seed for a reproducible stream (unset: random, logged at start)",
    )
    fraud_ratio: float = setting(
        0.10,
        type=ratio,
        group=_STREAM,
        help="share of transactions that belong to a fraud pattern",
    )
    patterns: tuple[str, ...] = setting(
        PATTERNS,
        type=pattern_list,
        group=_STREAM,
        help="fraud patterns to inject (comma-separated)",
    )
    users: int = setting(
        0,
        type=non_negative_int,
        group=_STREAM,
        help="user pool size (0: rate x mean purchase interval)",
    )
    mean_purchase_interval: float = setting(
        60.0,
        type=positive_float,
        group=_STREAM,
        help="mean seconds between two purchases of one user (sizes the pool)",
    )
    window_seconds: int = setting(
        60,
        type=non_negative_int,
        group=_STREAM,
        help="detector window; fraud bursts are kept inside one (0: not aligned)",
    )
    metrics_port: int = setting(
        8000, type=non_negative_int, group=_OPS, help="Prometheus port (0: off)"
    )
    log_interval: float = setting(
        5.0, type=positive_float, group=_OPS, help="seconds between progress lines"
    )
    log_level: str = log_level_setting(_OPS)

    def generator_config(self, start_time: datetime, seed: int | None) -> GeneratorConfig:
        """The generator's config; --duration becomes a count at the rate."""
        limits = []
        if self.count:
            limits.append(self.count)
        if self.duration:
            limits.append(math.ceil(self.duration * self.rate))
        return GeneratorConfig(
            start_time=start_time,
            rate=self.rate,
            seed=seed,
            count=min(limits) if limits else None,
            fraud_ratio=self.fraud_ratio,
            users=self.users or None,
            mean_purchase_interval=self.mean_purchase_interval,
            window_seconds=self.window_seconds,
            patterns=self.patterns,
        )

    def kafka_config(self) -> dict[str, Any]:
        """librdkafka settings: idempotent (no duplicates on retry), acks=all, lz4 batches."""
        return {
            "bootstrap.servers": self.bootstrap_servers,
            "client.id": "fraud-producer",
            "enable.idempotence": True,
            "acks": "all",
            "compression.type": self.compression,
            "linger.ms": self.linger_ms,
            "batch.size": 1_000_000,
            "queue.buffering.max.messages": 500_000,
            "logger": logging.getLogger("producer.librdkafka"),
            **self.kafka.librdkafka_config(),  # TLS/SASL (holds the password: never log)
        }


def parse_settings(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> ProducerSettings:
    """Flags > environment > defaults; --help names every variable."""
    return settings.parse(
        ProducerSettings, SERVICE, argv, environ, prog="producer", description=DESCRIPTION
    )
