"""The detector's streaming plan: Kafka `transactions` → validated rows → (no event time
beyond the batch's clock + skew) → watermark → one row per transaction_id → 60 s
event-time windows per user → rule score (libs/scoring, as Spark columns) → alerts on
`fraud_alerts`; bad records → `transactions.dlq` with a reason (published by the validator).

Detection semantics (docs/design.md):
- The validator refuses an event_time more than `max_future_skew` ahead of the batch's
  clock (`future_event_time`); `window_aggregates` filters the same condition again
  before the watermark, so no row can move it past wall clock + skew even if a validator
  were wrong (those rows are counted in the observed metrics `guard`, normally 0).
- Watermark = max event_time seen - `watermark`. A row with event_time <= the watermark is
  late: dropped (by the deduplication, the first stateful operator) and counted.
- `dropDuplicatesWithinWatermark(["transaction_id"])`: a transaction_id seen again while
  its first row's state lives (until the watermark passes that row's event_time +
  `watermark`) is dropped, so a redelivered record counts once; every later copy is
  behind the watermark anyway, so it is dropped as late.
- An alert lists the first `max_transaction_ids` transaction ids of its window ordered by
  (event_time, transaction_id), kept with a bounded aggregate (`min_by(..., k)`), so the
  state per window holds at most that many ids however busy the user is.

Pure plan building (DataFrame in, DataFrame out) so tests can run each step on a batch
DataFrame; detector.py wires the sources, sinks and checkpoints.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

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
    # An alert lists at most this many contributing transaction ids: the first ones by
    # (event_time, transaction_id); txn_count always has the full count.
    max_transaction_ids: int = 100
    # Rows with event_time beyond the batch's clock + this never reach the watermark.
    max_future_skew: timedelta = timedelta(minutes=5)


def read_kafka(
    spark: SparkSession,
    bootstrap: str,
    topic: str,
    starting_offsets: str = "earliest",
    max_offsets_per_trigger: int = 0,
    options: Mapping[str, str] | None = None,
) -> DataFrame:
    """The Kafka source; `options` adds kafka.* settings (TLS/SASL, libs/kafka/security)."""
    reader = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", bootstrap)
        .option("subscribe", topic)
        .option("startingOffsets", starting_offsets)
        .option("includeHeaders", "false")  # ground truth headers are never read
    )
    if max_offsets_per_trigger:
        reader = reader.option("maxOffsetsPerTrigger", str(max_offsets_per_trigger))
    return reader.options(**dict(options or {})).load()


def validated(
    raw: DataFrame,
    *,
    max_bytes: int,
    dead_letters: DeadLetters | None = None,
    max_future_skew: timedelta = timedelta(minutes=5),
) -> DataFrame:
    """Every Kafka row validated by libs/schemas (see validation.py): `error_reason` is null
    for good rows, which carry amount (decimal) and event_time (timestamp); refused rows
    are published to `dead_letters` on the way. Event times are judged against the
    batch's clock (`current_timestamp()`, the same instant for every task of a batch and
    for a retried task), the one `window_aggregates` guards with."""
    fn = functools.partial(
        validate_batches,
        max_bytes=max_bytes,
        dead_letters=dead_letters,
        max_future_skew=max_future_skew,
    )
    rows = raw.select(
        "key",
        "value",
        "partition",
        "offset",
        F.unix_micros(F.current_timestamp()).alias("now_us"),
    ).mapInArrow(fn, VALIDATED_DDL)
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


def _future_limit_us(skew: timedelta) -> Column:
    return F.unix_micros(F.current_timestamp()) + F.lit(skew // timedelta(microseconds=1))


def window_aggregates(valid: DataFrame, cfg: WindowConfig) -> DataFrame:
    """Per (user_id, window): the aggregates of docs/design.md plus what explains an alert, over
    good rows no further ahead than the clock + skew, one row per transaction_id."""
    good = valid.where(F.col("error_reason").isNull())
    ahead = F.unix_micros("event_time") > _future_limit_us(cfg.max_future_skew)
    guarded = good.observe(
        "guard", F.sum(F.when(ahead, 1).otherwise(0)).alias("future_rows")
    ).where(~ahead)
    watermarked = guarded.withWatermark("event_time", cfg.watermark)
    unique = (
        watermarked.dropDuplicatesWithinWatermark(["transaction_id"])
        if watermarked.isStreaming
        else watermarked.dropDuplicates(["transaction_id"])  # a batch (tests) has no watermark
    )
    return unique.groupBy(F.col("user_id"), F.window("event_time", cfg.window).alias("window")).agg(
        F.count(F.lit(1)).cast("int").alias("txn_count"),
        # count(DISTINCT) is not supported in streaming aggregations; a set is.
        F.size(F.collect_set("country")).cast("int").alias("distinct_countries"),
        F.max("amount").alias("max_amount"),
        F.sum("amount").cast("decimal(25,2)").alias("total_amount"),
        # Bounded state: min_by with k keeps at most k (value, ordering) pairs per
        # window, sorted by the ordering; (event_time, id) makes the choice total.
        F.min_by(
            "transaction_id",
            F.struct("event_time", "transaction_id"),
            cfg.max_transaction_ids,
        ).alias("transaction_ids"),
        F.max("event_time").alias("last_event_time"),
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
