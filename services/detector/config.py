"""The detector's settings, parsed once at the edge (libs/cli/settings.py: each field is a
flag and a `FRAUD_DETECTOR_<FIELD>` variable; KAFKA_BOOTSTRAP_SERVERS, SPARK_MASTER and
FRAUD_LOG_LEVEL are the shared names). The scoring rules are a section of them, so their
flags and variables (`--high-value-amount`, `FRAUD_DETECTOR_HIGH_VALUE_AMOUNT`) live here too.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from libs.cli import settings
from libs.cli.settings import (
    log_level_setting,
    non_negative_int,
    section,
    setting,
)
from libs.kafka.security import GROUP as KAFKA_SECURITY
from libs.kafka.security import KafkaSecurity
from libs.schemas.codec import DEFAULT_MAX_BYTES
from libs.schemas.topics import ALERTS_TOPIC, TRANSACTIONS_DLQ_TOPIC, TRANSACTIONS_TOPIC
from libs.schemas.transaction import DEFAULT_MAX_FUTURE_SKEW
from libs.scoring.config import ScoringConfig

SERVICE = "DETECTOR"
DESCRIPTION = (
    "Fraud detector: Kafka transactions -> validation (refused records to the DLQ) -> "
    "deduplication -> 60 s event-time windows per user -> rule score -> alerts on Kafka."
)

_KAFKA, _SPARK, _WINDOWS, _OPS = "kafka", "spark", "windows", "operations"
_UNITS = {"second": 1, "minute": 60, "hour": 3600}


def duration(text: str) -> timedelta:
    """'300 seconds', '5 minutes', '1 hour' (the spelling of --window) as a timedelta."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(second|minute|hour)s?\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration like '300 seconds', '5 minutes' or '1 hour'"
        )
    return timedelta(seconds=float(match[1]) * _UNITS[match[2]])


@dataclass(frozen=True)
class DetectorSettings:
    bootstrap_servers: str = setting("localhost:9092", group=_KAFKA, help="Kafka bootstrap servers")
    input_topic: str = setting(TRANSACTIONS_TOPIC, group=_KAFKA, help="topic of transactions")
    alerts_topic: str = setting(ALERTS_TOPIC, group=_KAFKA, help="topic alerts are published to")
    dlq_topic: str = setting(
        TRANSACTIONS_DLQ_TOPIC, group=_KAFKA, help="topic bad transactions are sent to"
    )
    starting_offsets: str = setting(
        "earliest",
        choices=("earliest", "latest"),
        group=_KAFKA,
        help="where a query with no checkpoint starts reading",
    )
    max_offsets_per_trigger: int = setting(
        0,
        type=non_negative_int,
        group=_KAFKA,
        help="cap on records per micro-batch (0: no cap)",
    )
    max_record_bytes: int = setting(
        DEFAULT_MAX_BYTES,
        type=non_negative_int,
        group=_KAFKA,
        help="larger transactions go to the DLQ as too_large",
    )
    kafka: KafkaSecurity = section(KafkaSecurity, KAFKA_SECURITY)
    spark_master: str = setting(
        "local[*,4]",
        flag="--master",
        group=_SPARK,
        help="Spark master URL (local[N,F]: N cores, a failed task tried F times in all, "
        "e.g. after a DLQ flush timed out; plain local[N] never retries a task; "
        "spark://host:7077 retries per spark.task.maxFailures, 4)",
    )
    checkpoint_dir: Path = setting(
        Path("/tmp/fraud-detector/checkpoints"),
        group=_SPARK,
        help="checkpoint root; queries resume from it after a restart",
    )
    trigger_interval: str = setting(
        "0 seconds",
        group=_SPARK,
        help="micro-batch interval ('0 seconds': as soon as the last one ends)",
    )
    shuffle_partitions: int = setting(
        4, type=non_negative_int, group=_SPARK, help="partitions of the windowed state"
    )
    driver_memory: str = setting("2g", group=_SPARK, help="spark.driver.memory")
    ui: bool = setting(False, group=_SPARK, help="serve the Spark UI (port 4040)")
    window: str = setting("60 seconds", group=_WINDOWS, help="event-time tumbling window per user")
    watermark: str = setting(
        "30 seconds",
        group=_WINDOWS,
        help="how late an event may be before it is dropped (and counted); also how long "
        "a transaction_id is remembered to drop its duplicates",
    )
    max_future_skew: timedelta = setting(
        DEFAULT_MAX_FUTURE_SKEW,
        type=duration,
        group=_WINDOWS,
        help="events stamped further ahead of the detector's clock go to the DLQ as "
        "future_event_time (and can never move the watermark)",
    )
    scoring: ScoringConfig = section(ScoringConfig, "scoring rules")
    metrics_port: int = setting(
        8002, type=non_negative_int, group=_OPS, help="Prometheus metrics port (0: none)"
    )
    log_level: str = log_level_setting(_OPS)


def parse_settings(
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    description: str = DESCRIPTION,
) -> DetectorSettings:
    return settings.parse(
        DetectorSettings, SERVICE, argv, environ, prog="detector", description=description
    )
