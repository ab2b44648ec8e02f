"""Tests for the Transaction contract: every rejection reason, boundaries, round trips."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest

from libs.schemas.fields import InvalidRecord
from libs.schemas.transaction import (
    TRANSACTION_FIELDS,
    Transaction,
    parse_transaction,
    transaction_from_dict,
    transaction_to_json,
)

VALID: dict[str, Any] = {
    "transaction_id": "123e4567-e89b-12d3-a456-426614174000",
    "user_id": "user-42",
    "amount": 3000.01,
    "currency": "EUR",
    "merchant": "Acme GmbH",
    "merchant_category": "electronics",
    "country": "DE",
    "event_time": "2026-11-28T17:00:00.123Z",
}


def payload(**changes: Any) -> bytes:
    """VALID with some fields replaced; a value of `...` removes the field."""
    obj = {**VALID, **changes}
    return orjson.dumps({k: v for k, v in obj.items() if v is not ...})


def rejected(raw: bytes, **kwargs: Any) -> InvalidRecord:
    with pytest.raises(InvalidRecord) as info:
        parse_transaction(raw, **kwargs)
    return info.value


def test_valid_transaction_parses_to_typed_values() -> None:
    t = parse_transaction(payload())
    assert t == Transaction(
        transaction_id="123e4567-e89b-12d3-a456-426614174000",
        user_id="user-42",
        amount=Decimal("3000.01"),
        currency="EUR",
        merchant="Acme GmbH",
        merchant_category="electronics",
        country="DE",
        event_time=datetime(2026, 11, 28, 17, 0, 0, 123000, tzinfo=UTC),
    )
    assert isinstance(t.amount, Decimal)


def test_transaction_is_frozen() -> None:
    t = parse_transaction(payload())
    with pytest.raises(AttributeError):
        t.amount = Decimal(1)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("raw", "reason", "in_detail"),
    [
        (b"", "empty", "empty"),
        (b'{"user_id":"\xc3\x28"}', "not_utf8", "0xc3 at offset 12"),
        (b"{not json", "not_json", ""),
        (b"[1, 2]", "not_object", "array"),
        (payload(amount=...), "missing_field", "missing amount"),
        (payload(amount=..., country=...), "missing_field", "missing amount, country"),
        (payload(amount="12.50"), "bad_type", 'amount="12.50" is string, expected number'),
        (payload(amount=True), "bad_type", "amount=true is boolean, expected number"),
        (payload(amount=None), "bad_type", "amount=null is null"),
        (payload(user_id=42), "bad_type", "user_id=42 is integer, expected string"),
        (payload(merchant=["a"]), "bad_type", "merchant"),
        (payload(event_time=1764349200), "bad_type", "event_time"),
        (payload(user_id=""), "empty_field", 'user_id="" must be non-empty'),
        (payload(user_id="   "), "empty_field", "user_id"),
        (payload(amount=-5), "bad_amount", "amount=-5.00 must be > 0"),
        (payload(amount=0), "bad_amount", "amount=0.00 must be > 0"),
        (payload(amount=-0.0), "bad_amount", "must be > 0"),
        (payload(amount=1.005), "bad_amount", "amount=1.005 has more than 2 decimals"),
        (payload(amount=1e13), "bad_amount", "must be < 10000000000000"),
        (payload(currency="eur"), "bad_currency", 'currency="eur" must be 3 upper-case'),
        (payload(currency="EURO"), "bad_currency", "currency"),
        (payload(currency="E1R"), "bad_currency", "currency"),
        (payload(currency=""), "bad_currency", "currency"),
        (payload(country="de"), "bad_country", 'country="de" must be 2 upper-case'),
        (payload(country="DEU"), "bad_country", "country"),
        (payload(country="D"), "bad_country", "country"),
        (payload(event_time="2026-11-28T17:00:00"), "bad_timestamp", "explicit zone"),
        (payload(event_time="2026-13-28T17:00:00Z"), "bad_timestamp", "month"),
        (payload(transaction_id="not-a-uuid"), "bad_uuid", 'transaction_id="not-a-uuid"'),
        (payload(transaction_id="123e4567e89b12d3a456426614174000"), "bad_uuid", "8-4-4-4-12"),
        (payload(transaction_id="{123e4567-e89b-12d3-a456-426614174000}"), "bad_uuid", "UUID"),
        (payload(transaction_id=""), "bad_uuid", "UUID"),
    ],
)
def test_rejections(raw: bytes, reason: str, in_detail: str) -> None:
    err = rejected(raw)
    assert err.reason == reason
    assert in_detail in err.detail


def test_too_large_uses_configurable_limit() -> None:
    raw = payload()
    assert parse_transaction(raw, max_bytes=len(raw)).user_id == "user-42"
    err = rejected(raw, max_bytes=len(raw) - 1)
    assert err.reason == "too_large"
    padded = payload(merchant="x" * 70_000)
    assert rejected(padded).reason == "too_large"


@pytest.mark.parametrize(
    ("amount", "expected"),
    [(0.01, Decimal("0.01")), (1, Decimal("1.00")), (12.5, Decimal("12.50"))],
)
def test_amount_boundaries_accepted(amount: float, expected: Decimal) -> None:
    assert parse_transaction(payload(amount=amount)).amount == expected


@pytest.mark.parametrize(
    ("event_time", "expected"),
    [
        ("2026-11-28T17:00:00Z", datetime(2026, 11, 28, 17, tzinfo=UTC)),
        ("2026-11-28T18:00:00.5+01:00", datetime(2026, 11, 28, 17, 0, 0, 500000, tzinfo=UTC)),
        ("2026-11-28T16:00:00-01:00", datetime(2026, 11, 28, 17, tzinfo=UTC)),
    ],
)
def test_event_time_zones_accepted(event_time: str, expected: datetime) -> None:
    assert parse_transaction(payload(event_time=event_time)).event_time == expected


def test_uppercase_uuid_and_unknown_fields_accepted() -> None:
    t = parse_transaction(
        payload(transaction_id="123E4567-E89B-12D3-A456-426614174000", schema_extra=1)
    )
    assert t.transaction_id == "123E4567-E89B-12D3-A456-426614174000"


def test_first_failing_field_in_contract_order_is_reported() -> None:
    err = rejected(payload(transaction_id="x", amount=-1))
    assert err.reason == "bad_uuid"


def test_round_trip_bytes_to_record_to_bytes() -> None:
    t = parse_transaction(payload(event_time="2026-11-28T18:00:00.123+01:00"))
    raw = transaction_to_json(t)
    assert parse_transaction(raw) == t
    assert transaction_to_json(parse_transaction(raw)) == raw


def test_json_shape() -> None:
    t = parse_transaction(payload(amount=12.5, event_time="2026-11-28T18:00:00+01:00"))
    raw = transaction_to_json(t)
    assert list(orjson.loads(raw)) == [f.name for f in TRANSACTION_FIELDS]
    assert b'"amount":12.5,' in raw  # a JSON number, not a string
    assert b'"event_time":"2026-11-28T17:00:00Z"' in raw


def test_unicode_text_survives_round_trip() -> None:
    t = parse_transaction(payload(merchant="Café Zürich 東京"))
    assert parse_transaction(transaction_to_json(t)).merchant == "Café Zürich 東京"


def test_to_json_refuses_naive_event_time() -> None:
    t = transaction_from_dict(orjson.loads(payload()))
    naive = dataclasses.replace(t, event_time=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="naive"):
        transaction_to_json(naive)
