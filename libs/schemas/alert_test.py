"""Tests for the Alert contract: round trip, JSON shape, rejections."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest

from libs.schemas.alert import (
    ALERT_FIELDS,
    ALERT_MAX_BYTES,
    Alert,
    alert_from_dict,
    alert_to_json,
    parse_alert,
)
from libs.schemas.fields import InvalidRecord

ALERT = Alert(
    user_id="user-42",
    window_start=datetime(2026, 11, 28, 17, 0, tzinfo=UTC),
    window_end=datetime(2026, 11, 28, 17, 1, tzinfo=UTC),
    txn_count=5,
    distinct_countries=2,
    max_amount=Decimal("3000.01"),
    total_amount=Decimal("3100.51"),
    high_value=True,
    location_change=True,
    high_frequency=True,
    fraud_score=5,
    transaction_ids=("t1", "t2", "t3", "t4", "t5"),
    reasons=("high_value: max_amount 3000.01 > 3000",),
    rule_version="v1",
    detected_at=datetime(2026, 11, 28, 17, 0, 31, 250000, tzinfo=UTC),
    last_event_time=datetime(2026, 11, 28, 17, 0, 30, 123456, tzinfo=UTC),
    version=5,
)


def as_obj(**changes: Any) -> dict[str, Any]:
    obj = orjson.loads(alert_to_json(ALERT))
    obj.update(changes)
    return {k: v for k, v in obj.items() if v is not ...}


def rejected(obj: dict[str, Any]) -> InvalidRecord:
    with pytest.raises(InvalidRecord) as info:
        parse_alert(orjson.dumps(obj))
    return info.value


def test_round_trip() -> None:
    raw = alert_to_json(ALERT)
    assert parse_alert(raw) == ALERT
    assert alert_to_json(parse_alert(raw)) == raw


def test_json_shape() -> None:
    obj = orjson.loads(alert_to_json(ALERT))
    assert list(obj) == [f.name for f in ALERT_FIELDS]
    assert obj["window_start"] == "2026-11-28T17:00:00Z"
    assert obj["detected_at"] == "2026-11-28T17:00:31.250Z"
    assert obj["last_event_time"] == "2026-11-28T17:00:30.123456Z"
    assert obj["max_amount"] == 3000.01  # JSON number
    assert obj["total_amount"] == 3100.51
    assert obj["high_value"] is True
    assert obj["transaction_ids"] == ["t1", "t2", "t3", "t4", "t5"]
    assert obj["version"] == 5


def test_parsed_types() -> None:
    a = parse_alert(alert_to_json(ALERT))
    assert isinstance(a.max_amount, Decimal)
    assert isinstance(a.transaction_ids, tuple)
    assert a.window_start.tzinfo is not None


def test_offsets_normalized_to_utc() -> None:
    a = alert_from_dict(as_obj(window_start="2026-11-28T18:00:00+01:00"))
    assert a.window_start == ALERT.window_start
    assert a.window_start.utcoffset() is not None
    assert a.window_start.utcoffset().total_seconds() == 0  # type: ignore[union-attr]


def test_empty_explanations_allowed() -> None:
    a = alert_from_dict(as_obj(transaction_ids=[], reasons=[]))
    assert a.transaction_ids == ()
    assert a.reasons == ()


@pytest.mark.parametrize(
    ("changes", "reason", "in_detail"),
    [
        ({"version": ...}, "missing_field", "missing version"),
        ({"txn_count": True}, "bad_type", "txn_count=true is boolean, expected integer"),
        ({"txn_count": 5.0}, "bad_type", "txn_count=5.0 is number"),
        ({"high_value": 1}, "bad_type", "high_value=1 is integer, expected boolean"),
        ({"max_amount": "3000.01"}, "bad_type", "max_amount"),
        ({"transaction_ids": "t1"}, "bad_type", "transaction_ids"),
        ({"reasons": [None]}, "bad_type", "reasons[0]=null"),
        ({"detected_at": "2026-11-28T17:00:31"}, "bad_timestamp", "detected_at"),
        ({"user_id": ""}, "empty_field", "user_id"),
        ({"window_end": "2026-11-28T17:00:00Z"}, "bad_value", "must be after window_start"),
        ({"txn_count": -1}, "bad_value", "txn_count=-1 must be >= 0"),
        ({"distinct_countries": -1}, "bad_value", "distinct_countries"),
        ({"fraud_score": -1}, "bad_value", "fraud_score"),
        ({"version": 0}, "bad_value", "version=0 must be >= 1"),
        ({"max_amount": -1}, "bad_amount", "max_amount=-1.00 must be >= 0"),
        ({"total_amount": 1.001}, "bad_amount", "total_amount=1.001 has more than 2"),
    ],
)
def test_rejections(changes: dict[str, Any], reason: str, in_detail: str) -> None:
    err = rejected(as_obj(**changes))
    assert err.reason == reason
    assert in_detail in err.detail


def test_payload_level_rejections() -> None:
    for raw, reason in [(b"", "empty"), (b"nope", "not_json"), (b"[]", "not_object")]:
        with pytest.raises(InvalidRecord) as info:
            parse_alert(raw)
        assert info.value.reason == reason


def test_alert_size_limit_fits_many_transaction_ids() -> None:
    # A high-frequency window can carry thousands of ids; far over the 64 KiB default
    # for transactions, still a valid alert.
    ids = [f"123e4567-e89b-12d3-a456-{i:012d}" for i in range(3000)]
    big = alert_to_json(dataclasses.replace(ALERT, transaction_ids=tuple(ids)))
    assert 65536 < len(big) <= ALERT_MAX_BYTES
    assert parse_alert(big).transaction_ids == tuple(ids)
    with pytest.raises(InvalidRecord) as info:
        parse_alert(big, max_bytes=65536)
    assert info.value.reason == "too_large"


def test_to_json_refuses_inexact_amount() -> None:
    huge = dataclasses.replace(ALERT, total_amount=Decimal("12345678901234567.89"))
    with pytest.raises(ValueError, match="exactly"):
        alert_to_json(huge)


@pytest.mark.parametrize(
    ("changes", "reason", "in_detail"),
    [
        ({"user_id": "u" * 129}, "too_long", "is 129 characters, max 128"),
        ({"user_id": "user\x0042"}, "control_character", "U+0000 at index 4"),  # PostgreSQL: NUL
        ({"user_id": "\u202euser"}, "control_character", "U+202E at index 0"),
        ({"window_start": "1970-01-01T00:00:00Z"}, "bad_timestamp", "before 2000-01-01"),
    ],
)
def test_user_id_limits_and_timestamp_sanity(
    changes: dict[str, Any], reason: str, in_detail: str
) -> None:
    err = rejected(as_obj(**changes))
    assert err.reason == reason
    assert in_detail in err.detail


def test_user_id_at_the_limit_is_accepted() -> None:
    assert parse_alert(orjson.dumps(as_obj(user_id="é" * 128))).user_id == "é" * 128


def test_strict_payload_rules_apply_to_alerts() -> None:
    raw = alert_to_json(ALERT)
    cases = [
        (raw[:-1] + b',"version":6}', "duplicate_key"),
        (raw.replace(b'"txn_count":5', b'"txn_count":' + b"[" * 40 + b"]" * 40), "too_deep"),
        (raw.replace(b"3100.51", b"3100.5100000000000001"), "bad_amount"),
        (raw.replace(b"3100.51", b"NaN"), "not_json"),
    ]
    for bad, reason in cases:
        with pytest.raises(InvalidRecord) as info:
            parse_alert(bad)
        assert info.value.reason == reason


def test_big_alert_with_many_ids_takes_the_fast_path_exactly() -> None:
    # One object, lists of strings, no backslash: keys are checked by counting quotes.
    ids = tuple(f"123e4567-e89b-12d3-a456-{i:012d}" for i in range(3000))
    raw = alert_to_json(dataclasses.replace(ALERT, transaction_ids=ids))
    assert parse_alert(raw).transaction_ids == ids
    with pytest.raises(InvalidRecord) as info:
        parse_alert(raw[:-1] + b',"reasons":[]}')
    assert info.value.reason == "duplicate_key"
