"""Tests for the Transaction contract: every rejection reason, boundaries, round trips."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
import pytest

from libs.schemas.fields import InvalidRecord
from libs.schemas.transaction import (
    DEFAULT_MAX_FUTURE_SKEW,
    ISO_COUNTRIES,
    ISO_CURRENCIES,
    TRANSACTION_FIELDS,
    USER_ID_MAX_LENGTH,
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


VALID_TIME = datetime(2026, 11, 28, 17, 0, 0, 123000, tzinfo=UTC)


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


# --- strict contract: ISO codes, limits, duplicates, exact amounts, event time ----------

NOW = datetime(2026, 11, 28, 17, 3, tzinfo=UTC)  # VALID's event_time is 3 min before


def test_iso_code_sets_are_built_from_pycountry() -> None:
    assert len(ISO_COUNTRIES) == 249
    assert {"DE", "US", "GB", "NG", "XK"} & ISO_COUNTRIES == {"DE", "US", "GB", "NG"}
    assert {"EUR", "USD", "JPY", "CHF", "XAU"} <= ISO_CURRENCIES
    assert not {"XTS", "XXX", "ABC", "EURO"} & ISO_CURRENCIES


@pytest.mark.parametrize("country", ["DE", "US", "JP", "BR", "AQ"])
def test_assigned_countries_accepted(country: str) -> None:
    assert parse_transaction(payload(country=country)).country == country


@pytest.mark.parametrize("currency", ["EUR", "USD", "JPY", "CHF", "XOF"])
def test_iso_currencies_accepted(currency: str) -> None:
    assert parse_transaction(payload(currency=currency)).currency == currency


def nested(depth: int) -> str:
    return "[" * depth + '"x"' + "]" * depth


@pytest.mark.parametrize(
    ("raw", "reason", "in_detail"),
    [
        (payload(country="ZZ"), "bad_country", 'country="ZZ" is not an ISO 3166-1 alpha-2 code'),
        (payload(country="XK"), "bad_country", "not an ISO 3166-1"),  # user-assigned
        (payload(country="UK"), "bad_country", "not an ISO 3166-1"),  # GB is
        (payload(currency="ABC"), "bad_currency", 'currency="ABC" is not an ISO 4217 code'),
        (payload(currency="XXX"), "bad_currency", "not an ISO 4217"),
        (payload(currency="XTS"), "bad_currency", "not an ISO 4217"),
        # The record that crashed the detector: RecursionError in show().
        (
            payload().replace(b'"123e4567-e89b-12d3-a456-426614174000"', nested(990).encode()),
            "too_deep",
            'JSON nesting depth is 991 under key "transaction_id", max 32',
        ),
        (payload()[:-1] + b',"amount":1}', "duplicate_key", 'key "amount" occurs more than once'),
        (
            payload()[:-1] + b',"user\\u005fid":"someone-else"}',
            "duplicate_key",
            'key "user_id" occurs more than once',
        ),
        (
            payload().replace(b"3000.01", b"1.0000000000000001"),
            "bad_amount",
            "amount=1.0000000000000001 has more than 2 decimals",
        ),
        (payload().replace(b"3000.01", b"NaN"), "not_json", ""),
        (payload().replace(b"3000.01", b"Infinity"), "not_json", ""),
        (payload().replace(b"3000.01", b"-Infinity"), "not_json", ""),
        (payload().replace(b"3000.01", b"1e400"), "not_json", "infinity"),
        (payload(transaction_id="1" * 65), "too_long", "is 65 characters, max 64"),
        (payload(user_id="u" * 129), "too_long", "is 129 characters, max 128"),
        (payload(merchant="m" * 257), "too_long", "is 257 characters, max 256"),
        (payload(merchant_category="c" * 65), "too_long", "is 65 characters, max 64"),
        (payload(user_id="user\x0042"), "control_character", "U+0000 at index 4"),
        (payload(user_id="user\n42"), "control_character", "U+000A at index 4"),
        (payload(merchant="Acme\u202eHbmG"), "control_character", "U+202E at index 4"),
        (payload(merchant_category="\u200bgrocery"), "control_character", "U+200B at index 0"),
        (
            payload(transaction_id="123e4567-e89b-12d3-a456-42661417400\x00"),
            "control_character",
            "U+0000 at index 35",
        ),
        (payload(event_time="1999-12-31T23:59:59Z"), "bad_timestamp", "before 2000-01-01"),
        (payload(event_time="2026-11-28T17:00:00+15:00"), "bad_timestamp", "zone offset +15:00"),
    ],
)
def test_strict_rejections(raw: bytes, reason: str, in_detail: str) -> None:
    err = rejected(raw, now=NOW)
    assert err.reason == reason
    assert in_detail in err.detail


@pytest.mark.parametrize(
    ("name", "length"),
    [("transaction_id", 64), ("user_id", 128), ("merchant", 256), ("merchant_category", 64)],
)
def test_string_maxima_are_inclusive_and_documented(name: str, length: int) -> None:
    assert {f.name: f.max_length for f in TRANSACTION_FIELDS}[name] == length
    if name != "transaction_id":  # a 64-character id is too_long-safe but no UUID
        assert getattr(parse_transaction(payload(**{name: "é" * length}), now=NOW), name)
    assert rejected(payload(**{name: "é" * (length + 1)}), now=NOW).reason == "too_long"


def test_user_id_fits_the_alerts_btree_index() -> None:
    # PostgreSQL refuses btree entries over ~2,700 bytes; 4 bytes per character at most.
    assert USER_ID_MAX_LENGTH * 4 + 8 < 2700


def test_amount_trailing_zeros_and_exponents_are_fine() -> None:
    for text, expected in [(b"12.50", "12.50"), (b"12.5000", "12.50"), (b"1250e-2", "12.50")]:
        t = parse_transaction(payload().replace(b"3000.01", text), now=NOW)
        assert t.amount == Decimal(expected)


def test_future_skew_default_is_five_minutes() -> None:
    assert timedelta(minutes=5) == DEFAULT_MAX_FUTURE_SKEW


def test_event_time_up_to_the_skew_ahead_is_accepted() -> None:
    at_limit = VALID_TIME - DEFAULT_MAX_FUTURE_SKEW
    assert parse_transaction(payload(), now=at_limit).event_time == VALID_TIME
    err = rejected(payload(), now=at_limit - timedelta(microseconds=1))
    assert err.reason == "future_event_time"
    assert err.detail == (
        "event_time=2026-11-28T17:00:00.123Z is 0:05:00.000001 ahead of "
        "now=2026-11-28T16:55:00.122999Z, max 0:05:00"
    )


def test_future_skew_is_configurable() -> None:
    now = VALID_TIME - timedelta(hours=1)
    assert rejected(payload(), now=now).reason == "future_event_time"
    assert parse_transaction(payload(), now=now, max_future_skew=timedelta(hours=1))


def test_zero_skew_accepts_now_exactly() -> None:
    assert parse_transaction(payload(), now=VALID_TIME, max_future_skew=timedelta(0))
    err = rejected(
        payload(), now=VALID_TIME - timedelta(milliseconds=1), max_future_skew=timedelta(0)
    )
    assert err.reason == "future_event_time"


def test_default_now_is_the_current_time() -> None:
    soon = datetime.now(UTC) + timedelta(minutes=4)
    later = datetime.now(UTC) + timedelta(minutes=6)
    assert parse_transaction(payload(event_time=soon.isoformat()))
    assert rejected(payload(event_time=later.isoformat())).reason == "future_event_time"


def test_naive_now_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="naive"):
        parse_transaction(payload(), now=datetime(2026, 11, 28, 17))


def test_from_dict_applies_the_same_rules() -> None:
    obj = orjson.loads(payload())
    assert transaction_from_dict(obj, now=NOW).user_id == "user-42"
    with pytest.raises(InvalidRecord) as info:
        transaction_from_dict({**obj, "user_id": "a\ud800"}, now=NOW)
    assert info.value.reason == "control_character"
    with pytest.raises(InvalidRecord) as info:
        transaction_from_dict(obj, now=VALID_TIME - timedelta(hours=1))
    assert info.value.reason == "future_event_time"


@pytest.mark.parametrize(
    "raw",
    [
        b"\x00" * 10,
        b"\xef\xbb\xbf",
        b"{" * 100_000,
        b"[" * 65_536,
        b'{"a":"\\ud800"}',
        "{}",
        bytearray(b"{}"),
        memoryview(b"[]"),
    ],
)
def test_hostile_payloads_only_ever_raise_invalid_record(raw: bytes) -> None:
    assert rejected(raw).reason
