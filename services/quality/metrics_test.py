"""The exported metric names, labels and values, read back through the Prometheus parser."""

from __future__ import annotations

import math

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from services.quality.metrics import QualityMetrics, Snapshot
from services.quality.scoring_book import Totals


def samples(metrics: QualityMetrics) -> dict[tuple[str, frozenset], float]:
    text = generate_latest(metrics.registry).decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(s: dict[tuple[str, frozenset], float], name: str, **labels: str) -> float:
    return s[(name, frozenset(labels.items()))]


def test_before_anything_is_scored() -> None:
    s = samples(QualityMetrics())
    assert math.isnan(value(s, "fraud_quality_precision"))
    assert math.isnan(value(s, "fraud_quality_recall"))
    assert value(s, "fraud_quality_true_positives_total") == 0
    assert value(s, "fraud_quality_transactions_total", fraud_label="0") == 0
    assert value(s, "fraud_quality_transactions_total", fraud_label="1") == 0
    assert value(s, "fraud_quality_open_windows") == 0
    assert value(s, "fraud_quality_late_alerts_total") == 0


def test_published_snapshot_is_rendered() -> None:
    metrics = QualityMetrics()
    totals = Totals(
        true_positives=3,
        false_positives=1,
        false_negatives=1,
        fraud_windows={"high_amount": 2, "rapid_fire": 2},
        detected_windows={"high_amount": 2, "rapid_fire": 1},
        transactions={"0": 90, "1": 10, "missing": 1},
        alerts=7,
        late_alerts=2,
        late_transactions=4,
        alerts_before_view=5,
        open_windows=12,
        clock=1_795_885_200.5,
        closed_through=1_795_885_100.0,
    )
    metrics.publish(Snapshot(totals, {("transactions", "not_json"): 3}, consume_rate=25_000.0))
    s = samples(metrics)
    assert value(s, "fraud_quality_precision") == 0.75
    assert value(s, "fraud_quality_recall") == 0.75
    assert value(s, "fraud_quality_true_positives_total") == 3
    assert value(s, "fraud_quality_false_positives_total") == 1
    assert value(s, "fraud_quality_false_negatives_total") == 1
    assert value(s, "fraud_quality_fraud_windows_total", pattern="rapid_fire") == 2
    assert value(s, "fraud_quality_detected_windows_total", pattern="rapid_fire") == 1
    assert value(s, "fraud_quality_detected_windows_total", pattern="high_amount") == 2
    assert value(s, "fraud_quality_transactions_total", fraud_label="missing") == 1
    assert value(s, "fraud_quality_transactions_total", fraud_label="0") == 90
    assert value(s, "fraud_quality_alerts_total") == 7
    assert value(s, "fraud_quality_late_alerts_total") == 2
    assert value(s, "fraud_quality_late_transactions_total") == 4
    assert value(s, "fraud_quality_alerts_before_view_total") == 5
    assert value(s, "fraud_quality_open_windows") == 12
    assert value(s, "fraud_quality_event_clock_seconds") == 1_795_885_200.5
    assert value(s, "fraud_quality_scored_through_seconds") == 1_795_885_100.0
    assert value(s, "fraud_quality_consume_rate") == 25_000.0
    bad = value(s, "fraud_quality_bad_records_total", topic="transactions", reason="not_json")
    assert bad == 3


def test_detected_series_exists_for_every_fraud_pattern() -> None:
    metrics = QualityMetrics()
    metrics.publish(Snapshot(Totals(fraud_windows={"country_hop": 1}, false_negatives=1)))
    s = samples(metrics)
    assert value(s, "fraud_quality_detected_windows_total", pattern="country_hop") == 0
    assert value(s, "fraud_quality_recall") == 0.0


def test_registries_are_independent() -> None:
    a, b = QualityMetrics(), QualityMetrics()
    a.publish(Snapshot(Totals(true_positives=1)))
    assert value(samples(b), "fraud_quality_true_positives_total") == 0
