"""Prometheus view of the quality monitor: every scrape renders the latest published snapshot.

Why a custom collector instead of Counter objects: the consume loop already keeps exact
totals in the scoring book; copying them into client counters per message would cost
more than the scoring itself, and deltas per batch would be a second set of books to keep
consistent. The loop publishes one immutable `Snapshot` per batch (an atomic attribute
swap), and the HTTP thread only ever reads snapshots, so no lock is needed.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from services.quality.scoring_book import Totals

# Always exported, so dashboards see 0 rather than "no data" before the first message.
_LABELS_ALWAYS_SHOWN = ("0", "1")


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the metrics endpoint shows; replaced as a whole after every batch."""

    totals: Totals = field(default_factory=Totals)
    bad_records: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (topic, reason)
    consume_rate: float = 0.0  # transactions per second over the last progress interval


def _nan_if_none(value: float | None) -> float:
    return math.nan if value is None else value


class QualityMetrics:
    """Owns a registry (no global state) and renders `snapshot` on every scrape."""

    def __init__(self) -> None:
        self.snapshot = Snapshot()
        self.registry = CollectorRegistry()
        self.registry.register(self)

    def publish(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        snap = self.snapshot  # one read: the whole scrape is consistent
        t = snap.totals
        yield _gauge(
            "fraud_quality_precision",
            "TP / (TP + FP) over all windows scored so far (NaN before any alert is scored)",
            _nan_if_none(t.precision),
        )
        yield _gauge(
            "fraud_quality_recall",
            "TP / (TP + FN) over all windows scored so far (NaN before any fraud is scored)",
            _nan_if_none(t.recall),
        )
        yield _counter(
            "fraud_quality_true_positives",
            "Scored windows that hold fraud and were alerted",
            t.true_positives,
        )
        yield _counter(
            "fraud_quality_false_positives",
            "Scored windows that were alerted but hold no fraud",
            t.false_positives,
        )
        yield _counter(
            "fraud_quality_false_negatives",
            "Scored windows that hold fraud but were not alerted",
            t.false_negatives,
        )
        fraud = CounterMetricFamily(
            "fraud_quality_fraud_windows",
            "Scored fraud windows by pattern (a window with several patterns counts for each)",
            labels=["pattern"],
        )
        for pattern, count in sorted(t.fraud_windows.items()):
            fraud.add_metric([pattern], count)
        yield fraud
        detected = CounterMetricFamily(
            "fraud_quality_detected_windows",
            "Scored fraud windows that were alerted, by pattern",
            labels=["pattern"],
        )
        for pattern in sorted(t.fraud_windows):
            detected.add_metric([pattern], t.detected_windows.get(pattern, 0))
        yield detected
        transactions = CounterMetricFamily(
            "fraud_quality_transactions",
            "Transactions read, by fraud-label header (missing/invalid: header absent/bad)",
            labels=["fraud_label"],
        )
        by_label = {label: 0 for label in _LABELS_ALWAYS_SHOWN} | dict(t.transactions)
        for label, count in sorted(by_label.items()):
            transactions.add_metric([label], count)
        yield transactions
        yield _counter(
            "fraud_quality_alerts", "Alert messages read (every version counts)", t.alerts
        )
        yield _counter(
            "fraud_quality_late_alerts",
            "Alerts for a window that was already scored (not re-scored)",
            t.late_alerts,
        )
        yield _counter(
            "fraud_quality_late_transactions",
            "Transactions for a window that was already scored (not re-scored)",
            t.late_transactions,
        )
        yield _counter(
            "fraud_quality_alerts_before_view",
            "Alerted windows without fraud that end before the oldest transaction read "
            "(no ground truth to judge them; not counted as false positives)",
            t.alerts_before_view,
        )
        bad = CounterMetricFamily(
            "fraud_quality_bad_records",
            "Messages skipped because they could not be read, by topic and reason",
            labels=["topic", "reason"],
        )
        for (topic, reason), count in sorted(snap.bad_records.items()):
            bad.add_metric([topic, reason], count)
        yield bad
        yield _gauge(
            "fraud_quality_open_windows",
            "Fraud or alerted windows held in memory until they are scored",
            t.open_windows,
        )
        yield _gauge(
            "fraud_quality_event_clock_seconds",
            "Newest transaction event time read (Unix seconds; NaN before the first)",
            _nan_if_none(t.clock),
        )
        yield _gauge(
            "fraud_quality_scored_through_seconds",
            "Every window ending at or before this event time is scored (Unix seconds)",
            _nan_if_none(t.closed_through),
        )
        yield _gauge(
            "fraud_quality_consume_rate",
            "Transactions read per second over the last progress interval",
            snap.consume_rate,
        )


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)
