"""Prometheus metrics for the detector, fed by a StreamingQueryListener.

Why a listener: Spark already measures every micro-batch (rows, durations, watermark drops,
Kafka offsets behind latest, our observed counts); the listener turns each progress event
into metrics on :8002 without touching the data path.
"""

from __future__ import annotations

import json
import logging
import math
import time
from datetime import datetime
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from pyspark.sql.streaming import StreamingQueryListener

from libs.schemas.fields import Reason

BATCHES = Counter("fraud_detector_batches_total", "Spark micro-batches processed", ["query"])
INPUT_ROWS = Counter("fraud_detector_input_rows_total", "Rows read from Kafka", ["query"])
ROWS_PER_SECOND = Gauge(
    "fraud_detector_processed_rows_per_second", "Rows/s in the last micro-batch", ["query"]
)
BATCH_SECONDS = Histogram(
    "fraud_detector_batch_duration_seconds",
    "Micro-batch duration (trigger execution)",
    ["query"],
    buckets=(0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30),
)
LATE_DROPPED = Counter(
    "fraud_detector_late_events_dropped_total",
    "Late events dropped behind the watermark (event_time <= watermark; counted by the "
    "deduplication, the first stateful operator, one per event)",
)
DUPLICATES = Counter(
    "fraud_detector_duplicates_dropped_total",
    "Transactions dropped because their transaction_id was already seen within the watermark",
)
FUTURE_GUARD = Counter(
    "fraud_detector_future_rows_guarded_total",
    "Valid rows with event_time beyond the batch clock + skew that the plan's guard kept "
    "from the watermark (0 unless the validator is wrong; refused records are counted in "
    'fraud_detector_dlq_messages_total{reason="future_event_time"})',
)
ALERTS = Counter("fraud_detector_alerts_emitted_total", "Alert versions published")
ALERT_FLAGS = Counter(
    "fraud_detector_alert_flags_total", "Flags raised in published alert versions", ["flag"]
)
DLQ = Counter("fraud_detector_dlq_messages_total", "Bad transactions sent to the DLQ", ["reason"])
LAG = Gauge(
    "fraud_detector_consumer_lag", "Kafka offsets behind latest (max over partitions)", ["query"]
)
STATE_ROWS = Gauge("fraud_detector_state_rows", "Open (user, window) aggregates in state")
STATE_BYTES = Gauge(
    "fraud_detector_state_memory_bytes",
    "Memory used by each stateful operator's state store (Spark's memoryUsedBytes)",
    ["operator"],
)
WATERMARK = Gauge("fraud_detector_watermark_seconds", "Event-time watermark (unix seconds)")
WATERMARK_AHEAD = Gauge(
    "fraud_detector_watermark_ahead_seconds",
    "Watermark minus wall-clock time, at scrape time (normally about -watermark delay and "
    "falling while idle; above 0 means events stamped now are dropped as late; NaN before "
    "the first watermark)",
)
PHASE_SECONDS = Gauge(
    "fraud_detector_batch_phase_seconds",
    "Time spent in each phase of the last micro-batch (Spark's durationMs)",
    ["query", "phase"],
)
READY = Gauge(
    "fraud_detector_ready", "1 while the streaming query runs; 0 once it stopped or failed"
)
QUERY_UP = Gauge("fraud_detector_query_active", "1 while the streaming query runs", ["query"])

for reason in Reason:
    DLQ.labels(reason=reason.value)
for flag in ("high_value", "location_change", "high_frequency"):
    ALERT_FLAGS.labels(flag=flag)

_log = logging.getLogger("detector.metrics")


class _LastWatermark:
    """The newest watermark (unix seconds), read by WATERMARK_AHEAD at each scrape: an idle
    query reports no progress, yet its watermark keeps falling behind the clock."""

    at: float = math.nan

    @classmethod
    def ahead(cls) -> float:
        return cls.at - time.time()


WATERMARK_AHEAD.set_function(_LastWatermark.ahead)


def record_progress(progress: dict[str, Any], last_batch: dict[str, int]) -> None:
    """Turn one StreamingQueryProgress (as its JSON dict) into metric updates.

    `last_batch` remembers the last batch id per query: Spark repeats progress events for
    idle triggers, which must not count twice.
    """
    query = progress.get("name") or "unnamed"
    batch_id = int(progress["batchId"])
    ROWS_PER_SECOND.labels(query).set(float(progress.get("processedRowsPerSecond") or 0.0))
    for source in progress.get("sources", []):
        behind = (source.get("metrics") or {}).get("maxOffsetsBehindLatest")
        if behind is not None:
            LAG.labels(query).set(float(behind))
    if last_batch.get(query) == batch_id:
        return
    last_batch[query] = batch_id
    BATCHES.labels(query).inc()
    INPUT_ROWS.labels(query).inc(int(progress.get("numInputRows") or 0))
    for phase, ms in (progress.get("durationMs") or {}).items():
        PHASE_SECONDS.labels(query, phase).set(ms / 1000.0)
    trigger_ms = (progress.get("durationMs") or {}).get("triggerExecution")
    if trigger_ms is not None:
        BATCH_SECONDS.labels(query).observe(trigger_ms / 1000.0)
    operators = progress.get("stateOperators") or []
    if operators:
        LATE_DROPPED.inc(sum(int(op.get("numRowsDroppedByWatermark") or 0) for op in operators))
        DUPLICATES.inc(
            sum(
                int((op.get("customMetrics") or {}).get("numDroppedDuplicateRows") or 0)
                for op in operators
            )
        )
        STATE_ROWS.set(
            sum(
                int(op.get("numRowsTotal") or 0)
                for op in operators
                if op.get("operatorName") != "dedupeWithinWatermark"
            )
        )
        for op in operators:
            STATE_BYTES.labels(op.get("operatorName") or "unknown").set(
                float(op.get("memoryUsedBytes") or 0)
            )
    watermark = (progress.get("eventTime") or {}).get("watermark")
    if watermark:
        at = _instant(watermark)
        WATERMARK.set(at)
        _LastWatermark.at = at
    observed = progress.get("observedMetrics") or {}
    if "alerts" in observed:
        counts = observed["alerts"]
        ALERTS.inc(int(counts.get("alerts") or 0))
        for flag in ("high_value", "location_change", "high_frequency"):
            ALERT_FLAGS.labels(flag=flag).inc(int(counts.get(flag) or 0))
    if "dlq" in observed:
        for reason, count in observed["dlq"].items():
            if count:
                DLQ.labels(reason=reason).inc(int(count))
    if "guard" in observed:
        FUTURE_GUARD.inc(int(observed["guard"].get("future_rows") or 0))


def _instant(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class MetricsListener(StreamingQueryListener):
    """Feeds `record_progress` from Spark's listener bus."""

    def __init__(self) -> None:
        self._last_batch: dict[str, int] = {}

    def onQueryStarted(self, event) -> None:
        QUERY_UP.labels(event.name or "unnamed").set(1)

    def onQueryProgress(self, event) -> None:
        try:
            record_progress(json.loads(event.progress.json), self._last_batch)
        except Exception:  # a metrics bug must never stop detection
            _log.exception("could not record query progress")

    def onQueryIdle(self, event) -> None:
        pass

    def onQueryTerminated(self, event) -> None:
        # The event has no name; mark every known query down. The detector runs one query,
        # so it is not ready any more (it exits non-zero when the query failed).
        READY.set(0)
        for query in self._last_batch:
            QUERY_UP.labels(query).set(0)
        if getattr(event, "exception", None):
            _log.error("streaming query failed", extra={"error": str(event.exception)[:2000]})
