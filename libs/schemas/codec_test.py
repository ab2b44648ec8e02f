"""Tests for the contract-independent JSON layer: payload decoding and per-kind readers."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from libs.schemas import codec
from libs.schemas.fields import Field, InvalidRecord, Kind

AMOUNT = Field("amount", Kind.DECIMAL, "d", precision=15, scale=2)
COUNT = Field("n", Kind.INT, "d")
WHEN = Field("t", Kind.TIMESTAMP, "d")
IDS = Field("ids", Kind.STRING_LIST, "d")
FLAG = Field("f", Kind.BOOL, "d")
NAME = Field("s", Kind.STRING, "d")
OPTIONAL = Field("o", Kind.STRING, "d", nullable=True)


def reason_of(fn: Callable[..., object], *args: Any, **kwargs: Any) -> InvalidRecord:
    with pytest.raises(InvalidRecord) as info:
        fn(*args, **kwargs)
    return info.value


# --- load_object -------------------------------------------------------------------


@pytest.mark.parametrize("raw", [None, b""])
def test_empty_payload(raw: bytes | None) -> None:
    assert reason_of(codec.load_object, raw).reason == "empty"


def test_size_limit_is_inclusive_and_configurable() -> None:
    raw = b'{"a":"' + b"x" * 100 + b'"}'
    assert codec.load_object(raw, max_bytes=len(raw)) == {"a": "x" * 100}
    err = reason_of(codec.load_object, raw, max_bytes=len(raw) - 1)
    assert err.reason == "too_large"
    assert f"{len(raw)} bytes, max {len(raw) - 1}" in err.detail


def test_default_size_limit_is_64_kib() -> None:
    assert codec.DEFAULT_MAX_BYTES == 65536
    raw = b'{"a":"' + b"x" * 65536 + b'"}'
    assert reason_of(codec.load_object, raw).reason == "too_large"


def test_memoryview_size_counts_bytes() -> None:
    raw = memoryview(b'{"a":1}')
    assert codec.load_object(raw, max_bytes=7) == {"a": 1}
    assert reason_of(codec.load_object, raw, max_bytes=6).reason == "too_large"


def test_invalid_utf8_is_not_utf8_with_offset() -> None:
    err = reason_of(codec.load_object, b'{"a":"\xff"}')
    assert err.reason == "not_utf8"
    assert "0xff at offset 6" in err.detail


@pytest.mark.parametrize("raw", [b"{", b"not json", b'{"a":NaN}', b'{"a":1e400}', b"{'a':1}"])
def test_not_json(raw: bytes) -> None:
    assert reason_of(codec.load_object, raw).reason == "not_json"


@pytest.mark.parametrize(
    ("raw", "kind"), [(b"[]", "array"), (b'"s"', "string"), (b"1", "integer"), (b"null", "null")]
)
def test_not_object(raw: bytes, kind: str) -> None:
    err = reason_of(codec.load_object, raw)
    assert err.reason == "not_object"
    assert f"is {kind}, expected object" in err.detail


# --- readers -----------------------------------------------------------------------


def test_missing_fields_are_all_named() -> None:
    err = reason_of(codec.read_fields, {"n": 1}, (COUNT, NAME, FLAG))
    assert err.reason == "missing_field"
    assert err.detail == "missing s, f"


def test_unknown_fields_are_ignored() -> None:
    assert codec.read_fields({"n": 1, "extra": [1]}, (COUNT,)) == {"n": 1}


def test_null_only_for_nullable_fields() -> None:
    assert codec.read_value(OPTIONAL, None) is None
    err = reason_of(codec.read_value, NAME, None)
    assert (err.reason, err.detail) == ("bad_type", "s=null is null, expected string")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        (NAME, 1),
        (COUNT, True),  # bool is not a number
        (COUNT, 1.0),
        (COUNT, "1"),
        (FLAG, 1),
        (FLAG, "true"),
        (AMOUNT, True),
        (AMOUNT, False),
        (AMOUNT, "12.50"),
        (WHEN, 1700000000),
        (IDS, "a"),
    ],
)
def test_bad_type(field: Field, value: object) -> None:
    err = reason_of(codec.read_value, field, value)
    assert err.reason == "bad_type"
    assert err.detail.startswith(f"{field.name}=")
    assert f"expected {field.kind.value}" in err.detail


def test_bool_detail_names_it_boolean() -> None:
    err = reason_of(codec.read_value, AMOUNT, True)
    assert err.detail == "amount=true is boolean, expected number"


def test_string_list_element_type() -> None:
    assert codec.read_value(IDS, ["a", "b"]) == ("a", "b")
    assert codec.read_value(IDS, []) == ()
    err = reason_of(codec.read_value, IDS, ["a", 2])
    assert (err.reason, err.detail) == ("bad_type", "ids[1]=2 is integer, expected string")


def test_int_range_is_32_bit() -> None:
    assert codec.read_value(COUNT, 2**31 - 1) == 2**31 - 1
    assert codec.read_value(COUNT, -(2**31)) == -(2**31)
    assert reason_of(codec.read_value, COUNT, 2**31).reason == "bad_value"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (5, Decimal("5.00")),
        (3000.01, Decimal("3000.01")),
        (0.1, Decimal("0.10")),
        (1e2, Decimal("100.00")),
        (9999999999999.99, Decimal("9999999999999.99")),
    ],
)
def test_decimal_is_exact_and_quantized(value: float, expected: Decimal) -> None:
    got = codec.read_value(AMOUNT, value)
    assert got == expected
    assert got.as_tuple().exponent == -2


@pytest.mark.parametrize("value", [1.005, 0.001, 12.345])
def test_decimal_more_than_scale_decimals(value: float) -> None:
    err = reason_of(codec.read_value, AMOUNT, value)
    assert err.reason == "bad_amount"
    assert err.detail == f"amount={value} has more than 2 decimals"


@pytest.mark.parametrize("value", [1e13, 10**13, 1e300, -1e13])
def test_decimal_beyond_exact_range(value: float) -> None:
    err = reason_of(codec.read_value, AMOUNT, value)
    assert err.reason == "bad_amount"
    assert "must be < 10000000000000" in err.detail


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_decimal_non_finite(value: float) -> None:
    # orjson never yields these, but read_fields also serves already-decoded dicts.
    err = reason_of(codec.read_value, AMOUNT, value)
    assert err.reason == "bad_amount"
    assert "must be finite" in err.detail


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-28T17:00:00Z", datetime(2026, 11, 28, 17, tzinfo=UTC)),
        ("2026-11-28T17:00:00.123Z", datetime(2026, 11, 28, 17, 0, 0, 123000, tzinfo=UTC)),
        ("2026-11-28T18:00:00+01:00", datetime(2026, 11, 28, 17, tzinfo=UTC)),
        ("2026-11-28T12:30:00-04:30", datetime(2026, 11, 28, 17, tzinfo=UTC)),
        ("2026-11-28T17:00:00.123456789Z", datetime(2026, 11, 28, 17, 0, 0, 123456, tzinfo=UTC)),
    ],
)
def test_timestamp_with_zone_normalized_to_utc(text: str, expected: datetime) -> None:
    got = codec.read_value(WHEN, text)
    assert got == expected
    assert got.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-28T17:00:00",  # no zone
        "2026-11-28 17:00:00Z",  # space separator
        "2026-11-28T17:00:00+0100",  # offset without colon
        "2026-11-28T17:00:00+01",  # hour-only offset
        "2026-11-28T17:00Z",  # no seconds
        "2026-11-28",
        "2026-11-28T17:00:00z",
        "2026-11-28T17:00:00 UTC",
        "2026-11-28T17:00:00Z\n",
        "",
        "yesterday",
    ],
)
def test_timestamp_format_rejected(text: str) -> None:
    err = reason_of(codec.read_value, WHEN, text)
    assert err.reason == "bad_timestamp"
    assert "explicit zone" in err.detail


@pytest.mark.parametrize(
    "text", ["2026-02-30T17:00:00Z", "2026-11-28T24:00:00Z", "2026-11-28T17:00:00+24:00"]
)
def test_timestamp_impossible_values(text: str) -> None:
    assert reason_of(codec.read_value, WHEN, text).reason == "bad_timestamp"


# --- writers -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (datetime(2026, 11, 28, 17, tzinfo=UTC), "2026-11-28T17:00:00Z"),
        (datetime(2026, 11, 28, 17, 0, 0, 123000, tzinfo=UTC), "2026-11-28T17:00:00.123Z"),
        (datetime(2026, 11, 28, 17, 0, 0, 123456, tzinfo=UTC), "2026-11-28T17:00:00.123456Z"),
        (datetime(2026, 11, 28, 18, tzinfo=timezone(timedelta(hours=1))), "2026-11-28T17:00:00Z"),
    ],
)
def test_format_timestamp(value: datetime, text: str) -> None:
    assert codec.format_timestamp(value) == text
    assert codec.read_value(WHEN, text) == value


def test_format_timestamp_refuses_naive() -> None:
    with pytest.raises(ValueError, match="naive"):
        codec.format_timestamp(datetime(2026, 11, 28, 17))


def test_decimal_to_float_is_exact_or_refuses() -> None:
    assert codec.decimal_to_float(Decimal("3000.01")) == 3000.01
    with pytest.raises(ValueError, match="exactly"):
        codec.decimal_to_float(Decimal("12345678901234567.89"))
    with pytest.raises(ValueError, match="exactly"):
        codec.decimal_to_float(Decimal("NaN"))


def test_to_json_value_refuses_none_for_required() -> None:
    with pytest.raises(ValueError, match="not nullable"):
        codec.to_json_value(NAME, None)
    assert codec.to_json_value(OPTIONAL, None) is None
