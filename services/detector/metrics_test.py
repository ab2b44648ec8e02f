"""Progress events become metrics; a repeated (idle) progress is not counted twice."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from prometheus_client import REGISTRY

from services.detector.metrics import QUERY_UP, READY, MetricsListener, record_progress


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _progress(batch_id: int) -> dict:
    return {
        "name": "alerts",
        "batchId": batch_id,
        "numInputRows": 1000,
        "processedRowsPerSecond": 2500.0,
        "durationMs": {"triggerExecution": 400},
        "eventTime": {"watermark": "2026-11-28T17:00:30.000Z"},
        "stateOperators": [
            {
                "operatorName": "stateStoreSave",
                "numRowsTotal": 42,
                "numRowsDroppedByWatermark": 0,
                "memoryUsedBytes": 8424,
            },
            {
                "operatorName": "dedupeWithinWatermark",
                "numRowsTotal": 900,
                "numRowsDroppedByWatermark": 3,
                "memoryUsedBytes": 41296,
                "customMetrics": {"numDroppedDuplicateRows": 4},
            },
        ],
        "sources": [{"metrics": {"maxOffsetsBehindLatest": "17"}}],
        "observedMetrics": {
            "alerts": {"alerts": 5, "high_value": 2, "location_change": 3, "high_frequency": 1},
            "dlq": {"not_json": 2, "bad_amount": 0, "future_event_time": 6},
            "guard": {"future_rows": 0},
        },
    }


def test_progress_updates_every_metric_once_per_batch():
    before = {
        "batches": _value("fraud_detector_batches_total", query="alerts"),
        "rows": _value("fraud_detector_input_rows_total", query="alerts"),
        "late": _value("fraud_detector_late_events_dropped_total"),
        "alerts": _value("fraud_detector_alerts_emitted_total"),
        "dlq": _value("fraud_detector_dlq_messages_total", reason="not_json"),
        "hv": _value("fraud_detector_alert_flags_total", flag="high_value"),
        "dups": _value("fraud_detector_duplicates_dropped_total"),
        "future": _value("fraud_detector_dlq_messages_total", reason="future_event_time"),
    }
    seen: dict[str, int] = {}
    record_progress(_progress(7), seen)
    record_progress(_progress(7), seen)  # the same batch reported again while idle
    assert _value("fraud_detector_batches_total", query="alerts") == before["batches"] + 1
    assert _value("fraud_detector_input_rows_total", query="alerts") == before["rows"] + 1000
    assert _value("fraud_detector_late_events_dropped_total") == before["late"] + 3
    assert _value("fraud_detector_alerts_emitted_total") == before["alerts"] + 5
    assert _value("fraud_detector_dlq_messages_total", reason="not_json") == before["dlq"] + 2
    assert _value("fraud_detector_alert_flags_total", flag="high_value") == before["hv"] + 2
    assert _value("fraud_detector_consumer_lag", query="alerts") == 17
    assert _value("fraud_detector_duplicates_dropped_total") == before["dups"] + 4
    assert (
        _value("fraud_detector_dlq_messages_total", reason="future_event_time")
        == before["future"] + 6
    )
    assert _value("fraud_detector_future_rows_guarded_total") == 0
    assert _value("fraud_detector_state_rows") == 42  # windows, not remembered ids
    assert _value("fraud_detector_state_memory_bytes", operator="dedupeWithinWatermark") == 41296
    ahead = _value("fraud_detector_watermark_ahead_seconds")
    assert abs(ahead - (1795885230.0 - time.time())) < 5
    assert _value("fraud_detector_processed_rows_per_second", query="alerts") == 2500.0
    assert _value("fraud_detector_watermark_seconds") == 1795885230.0
    assert _value("fraud_detector_batch_duration_seconds_count", query="alerts") >= 1


def test_future_event_time_is_a_labelled_series_from_the_start():
    assert (
        REGISTRY.get_sample_value(
            "fraud_detector_dlq_messages_total", {"reason": "future_event_time"}
        )
        is not None
    )


def test_a_watermark_ahead_of_the_clock_is_positive():
    future = datetime.now(UTC) + timedelta(seconds=270)
    watermark = future.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    record_progress(_progress(100) | {"eventTime": {"watermark": watermark}}, {})
    assert 265 < _value("fraud_detector_watermark_ahead_seconds") <= 270


class _Terminated:
    id = runId = None
    exception = "StreamingQueryException: boom"
    errorClassOnException = None


def test_ready_drops_to_zero_when_the_query_terminates():
    listener = MetricsListener()
    record_progress(_progress(200), listener._last_batch)
    READY.set(1)
    QUERY_UP.labels("alerts").set(1)
    listener.onQueryTerminated(_Terminated())
    assert _value("fraud_detector_ready") == 0
    assert _value("fraud_detector_query_active", query="alerts") == 0
