"""The sink's metrics: series that exist from start-up, and what one stored batch records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from infra.testing.alerts import sample_alert
from libs.schemas.alert import Alert
from libs.scoring.rules import ScoringConfig
from services.alert_sink.metrics import SinkMetrics, alert_scores

START = datetime(2026, 11, 28, 17, 0, tzinfo=UTC)


def alert(user: str, score: int, last_event_s: float) -> Alert:
    return sample_alert(
        user, START, fraud_score=score, last_event_time=START + timedelta(seconds=last_event_s)
    )


def sample(metrics: SinkMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_alert_scores_are_the_weight_sums_reaching_the_threshold():
    assert alert_scores() == [2, 3, 4, 5]  # 2*hv + 2*lc + 1*hf >= 2
    assert alert_scores(ScoringConfig(alert_threshold=4)) == [4, 5]
    assert alert_scores(ScoringConfig(high_frequency_weight=3)) == [2, 3, 4, 5, 7]


def test_labelled_series_exist_at_zero_from_start():
    """Dashboards and rate() see 0, not "no data", before the first alert or error."""
    m = SinkMetrics()
    for score in ("2", "3", "4", "5"):
        assert sample(m, "fraud_sink_alerts_by_score_total", score=score) == 0.0
    for kind in ("connect", "connection", "query"):
        assert sample(m, "fraud_sink_db_errors_total", kind=kind) == 0.0
    assert sample(m, "fraud_sink_dlq_messages_total", reason="not_json") == 0.0
    assert sample(m, "fraud_sink_dlq_messages_total", reason="db_rejected") == 0.0


def test_record_stored_counts_scores_and_observes_latency():
    m = SinkMetrics()
    committed_at = (START + timedelta(seconds=10)).timestamp()
    stored = [alert("a", 2, 9.5), alert("b", 2, 8.0), alert("c", 5, 12.0)]  # c: clock skew
    m.record_stored(stored, committed_at)
    assert sample(m, "fraud_sink_alerts_by_score_total", score="2") == 2.0
    assert sample(m, "fraud_sink_alerts_by_score_total", score="5") == 1.0
    assert sample(m, "fraud_sink_alerts_by_score_total", score="3") == 0.0
    assert sample(m, "fraud_sink_e2e_latency_seconds_count") == 3.0
    assert sample(m, "fraud_sink_e2e_latency_seconds_sum") == 2.5  # 0.5 + 2 + 0 (not -2)
    assert sample(m, "fraud_sink_e2e_latency_seconds_bucket", le="0.05") == 1.0
    assert sample(m, "fraud_sink_e2e_latency_seconds_bucket", le="0.5") == 2.0


def test_a_score_outside_the_defaults_still_counts():
    m = SinkMetrics()
    m.record_stored([alert("a", 7, 0.0)], START.timestamp())
    assert sample(m, "fraud_sink_alerts_by_score_total", score="7") == 1.0
