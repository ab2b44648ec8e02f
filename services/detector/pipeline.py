"""The detector's streaming plan: Kafka `transactions` → validated rows → 60 s event-time
windows per user → rule score (libs/scoring, as Spark columns) → alerts on `fraud_alerts`;
bad records → `transactions.dlq` with a reason (published by the validator).

Pure plan building (DataFrame in, DataFrame out) so tests can run each step on a batch
DataFrame; detector.py wires the sources, sinks and checkpoints.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from libs.schemas.alert import ALERT_FIELDS
from libs.schemas.fields import Reason
from libs.schemas.spark import JSON_OPTIONS
from libs.scoring.rules import ScoringConfig
from libs.scoring.spark_columns import evaluation_columns
from services.detector.validation import VALIDATED_DDL, DeadLetters, validate_batches


@dataclass(frozen=True)
class WindowConfig:
    window: str = "60 seconds"
    watermark: str = "30 seconds"
    # An alert lists at most this many contributing transaction ids (the first ones, in
    # arrival order); txn_count always has the full count.
    max_transaction_ids: int = 100


def read_kafka(
    spark: SparkSession,
    bootstrap: str,
    topic: str,
    starting_offsets: str = "earliest",
    max_offsets_per_trigger: int = 0,
) -> DataFrame:
    reader = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", bootstrap)
        .option("subscribe", topic)
        .option("startingOffsets", starting_offsets)
        .option("includeHeaders", "false")  # ground truth headers are never read
    )
    if max_offsets_per_trigger:
        reader = reader.option("maxOffsetsPerTrigger", str(max_offsets_per_trigger))
    return reader.load()


def validated(
    raw: DataFrame, *, max_bytes: int, dead_letters: DeadLetters | None = None
) -> DataFrame:
    """Every Kafka row validated by libs/schemas (see validation.py): `error_reason` is null
    for good rows, which carry amount (decimal) and event_time (timestamp); refused rows
    are published to `dead_letters` on the way."""
    fn = functools.partial(validate_batches, max_bytes=max_bytes, dead_letters=dead_letters)
    rows = raw.select("key", "value", "partition", "offset").mapInArrow(fn, VALIDATED_DDL)
    return rows.select(
        "partition",
        "offset",
        "error_reason",
        "transaction_id",
        "user_id",
        (F.col("amount_cents").cast("decimal(17,0)") / 100).cast("decimal(15,2)").alias("amount"),
        "country",
        F.timestamp_micros("event_time_us").alias("event_time"),
    )


def window_aggregates(valid: DataFrame, cfg: WindowConfig) -> DataFrame:
    """Per (user_id, window): the aggregates of DESIGN.md plus what explains an alert."""
    return (
        valid.where(F.col("error_reason").isNull())
        .withWatermark("event_time", cfg.watermark)
        .groupBy(F.col("user_id"), F.window("event_time", cfg.window).alias("window"))
        .agg(
            F.count(F.lit(1)).cast("int").alias("txn_count"),
            # count(DISTINCT) is not supported in streaming aggregations; a set is.
            F.size(F.collect_set("country")).cast("int").alias("distinct_countries"),
            F.max("amount").alias("max_amount"),
            F.sum("amount").cast("decimal(25,2)").alias("total_amount"),
            F.slice(F.collect_list("transaction_id"), 1, cfg.max_transaction_ids).alias(
                "transaction_ids"
            ),
            F.max("event_time").alias("last_event_time"),
        )
    )


def scored_alerts(aggregates: DataFrame, scoring: ScoringConfig) -> DataFrame:
    """Aggregates → Alert rows (contract column names), only windows that are alerts."""
    metrics: dict[str, Column] = {
        "txn_count": F.col("txn_count"),
        "distinct_countries": F.col("distinct_countries"),
        "max_amount": F.col("max_amount"),
    }
    evaluation = evaluation_columns(scoring, metrics)
    columns: dict[str, Column] = {
        "user_id": F.col("user_id"),
        "window_start": F.col("window.start"),
        "window_end": F.col("window.end"),
        "txn_count": F.col("txn_count"),
        "distinct_countries": F.col("distinct_countries"),
        "max_amount": F.col("max_amount"),
        "total_amount": F.col("total_amount"),
        **{name: col for name, col in evaluation.items() if name != "is_alert"},
        "transaction_ids": F.col("transaction_ids"),
        "rule_version": F.lit(scoring.rule_version),
        "detected_at": F.current_timestamp(),
        "last_event_time": F.col("last_event_time"),
        # Aggregates only grow within a window, so the count orders an alert's versions.
        "version": F.col("txn_count"),
    }
    missing = {f.name for f in ALERT_FIELDS} - set(columns)
    if missing:
        raise AssertionError(f"alert columns missing from the plan: {sorted(missing)}")
    return aggregates.where(evaluation["is_alert"]).select(
        *[columns[f.name].alias(f.name) for f in ALERT_FIELDS]
    )


def alert_messages(alerts: DataFrame) -> DataFrame:
    """Kafka sink rows: key = user_id, value = Alert JSON (what parse_alert reads)."""
    return alerts.select(
        F.col("user_id").cast("binary").alias("key"),
        F.to_json(F.struct(*[F.col(f.name) for f in ALERT_FIELDS]), JSON_OPTIONS)
        .cast("binary")
        .alias("value"),
    )


def observe_dlq(validated_rows: DataFrame) -> DataFrame:
    """Count refused records per reason in each micro-batch (read back by the metrics
    listener as the observed metrics named `dlq`, one column per reason)."""
    counts = [
        F.sum(F.when(F.col("error_reason") == reason.value, 1).otherwise(0)).alias(reason.value)
        for reason in Reason
    ]
    return validated_rows.observe("dlq", *counts)


def observe_alerts(alerts: DataFrame) -> DataFrame:
    """Count the alert versions each micro-batch emits, and the flags raised in them (read
    back by the metrics listener as the observed metrics named `alerts`)."""
    return alerts.observe(
        "alerts",
        F.count(F.lit(1)).alias("alerts"),
        F.sum(F.col("high_value").cast("int")).alias("high_value"),
        F.sum(F.col("location_change").cast("int")).alias("location_change"),
        F.sum(F.col("high_frequency").cast("int")).alias("high_frequency"),
    )
