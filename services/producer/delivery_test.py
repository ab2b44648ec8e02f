"""Delivery reports count only what the broker acknowledged, by ground truth, and never
swallow an error."""

from __future__ import annotations

import logging

from services.producer.delivery import LOGGED_ERRORS, DeliveryReports, Metrics, RateWindow, Totals


class FakeMessage:
    def topic(self) -> str:
        return "transactions"

    def partition(self) -> int:
        return 2

    def key(self) -> bytes:
        return b"u1234-0000001"


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    assert value is not None, f"{name}{labels} not exported"
    return value


def test_every_series_exists_from_the_start():
    metrics = Metrics()
    assert sample(metrics, "fraud_producer_messages_total", fraud_label="0", pattern="none") == 0
    for pattern in ("high_amount", "country_hop", "risky_merchant", "rapid_fire"):
        assert (
            sample(metrics, "fraud_producer_messages_total", fraud_label="1", pattern=pattern) == 0
        )
    assert sample(metrics, "fraud_producer_delivery_errors_total") == 0
    assert sample(metrics, "fraud_producer_send_rate") == 0
    assert sample(metrics, "fraud_producer_queue_length") == 0


def test_deliveries_are_counted_by_ground_truth():
    metrics, totals = Metrics(), Totals()
    report = DeliveryReports(metrics, totals)
    for pattern in ["", "", "", "rapid_fire", "rapid_fire", "high_amount"]:
        report.callback(pattern)(None, FakeMessage())
    assert (totals.delivered, totals.fraud_delivered, totals.errors) == (6, 3, 0)
    assert totals.by_pattern == {
        "none": 3,
        "high_amount": 1,
        "country_hop": 0,
        "risky_merchant": 0,
        "rapid_fire": 2,
    }
    assert sample(metrics, "fraud_producer_messages_total", fraud_label="0", pattern="none") == 3
    assert (
        sample(metrics, "fraud_producer_messages_total", fraud_label="1", pattern="rapid_fire") == 2
    )


def test_errors_are_counted_and_logged_not_delivered(caplog):
    metrics, totals = Metrics(), Totals()
    report = DeliveryReports(metrics, totals)
    with caplog.at_level(logging.ERROR):
        for _ in range(LOGGED_ERRORS + 5):
            report.callback("")("KafkaError{code=MSG_TIMED_OUT}", FakeMessage())
    assert (totals.delivered, totals.errors) == (0, LOGGED_ERRORS + 5)
    assert totals.last_error == "KafkaError{code=MSG_TIMED_OUT}"
    assert sample(metrics, "fraud_producer_delivery_errors_total") == LOGGED_ERRORS + 5
    assert sample(metrics, "fraud_producer_messages_total", fraud_label="0", pattern="none") == 0
    failed = [r for r in caplog.records if r.getMessage() == "delivery failed"]
    assert len(failed) == LOGGED_ERRORS  # then only counted, so a dead broker cannot flood logs
    assert failed[0].partition == 2 and failed[0].key == "u1234-0000001"


def test_rate_window_measures_the_last_seconds():
    window = RateWindow(seconds=5)
    assert window.add(100.0, 0) == 0.0
    for second in range(1, 11):
        rate = window.add(100.0 + second, 1000 * second)
    assert rate == 1000.0
    # A slow-down shows within the window, not diluted by the whole run.
    for second in range(11, 16):
        rate = window.add(100.0 + second, 10_000 + 100 * (second - 10))
    assert rate < 200
