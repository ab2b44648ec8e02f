"""The sample alerts are valid (they survive the contract's own parser) and streams know
their final table."""

from __future__ import annotations

import random
from datetime import timedelta
from decimal import Decimal

import pytest

from infra.testing.alerts import (
    BASE,
    alert_stream,
    bad_alert_records,
    sample_alert,
    stream_alert,
)
from libs.schemas.alert import alert_to_json, parse_alert


def test_sample_alert_is_valid_and_takes_changes():
    a = sample_alert()
    assert parse_alert(alert_to_json(a)) == a
    assert (a.window_start, a.window_end - a.window_start, a.fraud_score) == (
        BASE,
        timedelta(seconds=60),
        2,
    )
    b = sample_alert("u9", BASE + timedelta(minutes=3), 4, max_amount=Decimal("5000.00"))
    assert (b.user_id, b.txn_count, b.version, b.max_amount) == ("u9", 4, 4, Decimal("5000.00"))
    assert len(b.transaction_ids) == 4 and parse_alert(alert_to_json(b)) == b
    with pytest.raises(TypeError, match="no Alert field"):
        sample_alert(score=3)


def test_stream_alerts_are_valid_and_score_by_version():
    for version in (1, 5):
        a = stream_alert("u1", 2, version)
        assert parse_alert(alert_to_json(a)) == a
        assert a.window_start == BASE + timedelta(minutes=2)
        assert a.fraud_score == (5 if version >= 5 else 4)


def test_a_stream_expects_the_highest_version_per_key():
    stream = alert_stream(random.Random(1), ["a", "b"], windows=2, max_version=4)
    assert len(stream.messages) >= len(stream.expected) >= 4
    for key, alert in stream.expected.items():
        versions = [m.version for m in stream.messages if (m.user_id, m.window_start) == key]
        assert alert.version == max(versions)
    assert len(stream.records()) == len(stream.messages)


def test_bad_records_have_distinct_keys_and_reasons():
    bad = bad_alert_records()
    assert len({key for (key, _), _ in bad}) == len(bad)
    assert {reason for _, reason in bad} >= {"not_json", "missing_field", "empty", "db_rejected"}
