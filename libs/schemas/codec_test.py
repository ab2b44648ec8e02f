"""Tests for the contract-independent JSON layer: payload decoding and per-kind readers."""

from __future__ import annotations

import json
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


# --- total load_object: depth, duplicates, exact numbers --------------------------------


def nested(depth: int, leaf: bytes = b"1") -> bytes:
    """A JSON value of `depth` nested arrays around `leaf`."""
    return b"[" * depth + leaf + b"]" * depth


def test_max_depth_is_32_counting_the_top_level_object() -> None:
    assert codec.MAX_DEPTH == 32
    ok = b'{"a":' + nested(31) + b"}"
    assert codec.load_object(ok) == json.loads(ok)
    err = reason_of(codec.load_object, b'{"a":' + nested(32) + b"}")
    assert err.reason == "too_deep"
    assert err.detail == 'JSON nesting depth is 33 under key "a", max 32'


@pytest.mark.parametrize("depth", [33, 990, 1023, 1024, 1025, 20_000])
def test_deep_payloads_are_too_deep_at_any_depth(depth: int) -> None:
    # 990 is the record that crashed the detector; past 1024 orjson itself refuses.
    err = reason_of(codec.load_object, b'{"transaction_id":' + nested(depth) + b"}")
    assert err.reason == "too_deep"
    assert "max 32" in err.detail


def test_deep_top_level_array_is_too_deep_not_not_object() -> None:
    for depth in (40, 2000):
        assert reason_of(codec.load_object, nested(depth)).reason == "too_deep"


def test_brackets_inside_strings_do_not_count_as_depth() -> None:
    raw = b'{"a":"' + b"[" * 100 + b'","b":[[1]]}'
    assert codec.load_object(raw)["b"] == [[1]]


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        (b'{"a":1,"a":2}', "a"),
        (b'{"a":"x","b":1,"a":"x"}', "a"),  # same value twice is still two keys
        (b'{"user_id":"u1","user\\u005fid":"u2"}', "user_id"),  # escaped spelling
        (b'{"\\u0061":1,"a":2}', "a"),
        (b'{"a" : 1, "a" : 2}', "a"),  # whitespace around the colon
        (b'{"x":{"k":1,"k":2}}', "k"),  # nested object
        (b'{"x":[{"k":1},{"k":1,"k":1}]}', "k"),
        (b'{"\xc3\xa9":1,"\\u00e9":2}', "\u00e9"),
    ],
)
def test_duplicate_keys(raw: bytes, key: str) -> None:
    err = reason_of(codec.load_object, raw)
    assert err.reason == "duplicate_key"
    assert err.detail == f'key "{key}" occurs more than once in one JSON object'


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a":"a","b":"a"}',  # a key's text as a value is no duplicate
        b'{"a":["a","a"],"b":1}',
        b'{"x":{"k":1},"y":{"k":1}}',  # same key in different objects
        b'{"a":"\\"a\\":1"}',
        b'{"a": 1, "b": "c"}',
    ],
)
def test_no_false_duplicates(raw: bytes) -> None:
    assert codec.load_object(raw) == json.loads(raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"amount":1.0000000000000001}', Decimal("1.0000000000000001")),  # a double says 1.0
        (b'{"amount":1.50}', Decimal("1.50")),
        (b'{"amount":1e2}', Decimal("1E+2")),
        (b'{"amount" : 12.345 }', Decimal("12.345")),
        (b'{"amount":100000000000000000000}', 100000000000000000000),  # > 64 bits: still int
        (b'{"amount":7,"x":"\\n"}', 7),
        (b'{"m":"\\"","amount":0.30000000000000004}', Decimal("0.30000000000000004")),
        (b'{"amount":-0.0}', Decimal("-0.0")),
    ],
)
def test_top_level_numbers_are_exact_as_written(raw: bytes, expected: object) -> None:
    value = codec.load_object(raw)["amount"]
    assert value == expected
    assert type(value) is type(expected)


def test_exact_keys_limits_which_numbers_are_converted() -> None:
    obj = codec.load_object(b'{"amount":1.25,"other":0.5}', exact_keys=("amount",))
    assert obj == {"amount": Decimal("1.25"), "other": 0.5}
    assert type(obj["other"]) is float


def test_key_whose_text_could_straddle_strings_takes_the_exact_path() -> None:
    # `","` also occurs between the strings "a" and ":5"; the fast path must not read 5.
    obj = codec.load_object(b'{"k":"a",":5":2,",":1.5}')
    assert obj[","] == Decimal("1.5")


@pytest.mark.parametrize(
    ("raw", "in_detail"),
    [
        (b'{"a":NaN}', "unexpected character"),
        (b'{"a":Infinity}', "unexpected character"),
        (b'{"a":-Infinity}', ""),
        (b'{"a":1e400}', "infinity"),
        (b'{"a":-1e400}', "infinity"),
        (b'\xef\xbb\xbf{"a":1}', "byte order mark"),
        (b'{"a":"\\ud800"}', "surrogate"),
        (b'{"a":"\\udc00"}', "surrogate"),
        (b'{"a":"x\x00"}', "control character"),  # raw NUL inside a string
    ],
)
def test_not_strict_json(raw: bytes, in_detail: str) -> None:
    err = reason_of(codec.load_object, raw)
    assert err.reason == "not_json"
    assert in_detail in err.detail


@pytest.mark.parametrize("raw", ["{}", 42, ["a"]])
def test_payload_that_is_not_bytes(raw: object) -> None:
    err = reason_of(codec.load_object, raw)
    assert err.reason == "not_utf8"
    assert "expected bytes" in err.detail


@pytest.mark.parametrize("raw", [b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf", b"\xe2\x82"])
def test_encoded_surrogates_and_overlong_forms_are_not_utf8(raw: bytes) -> None:
    err = reason_of(codec.load_object, b'{"a":"' + raw + b'"}')
    assert err.reason == "not_utf8"
    assert "at offset 6" in err.detail


# --- string limits ------------------------------------------------------------------------

LIMITED = Field("id", Kind.STRING, "d", max_length=5, no_controls=True)


def test_string_max_length_is_inclusive() -> None:
    assert codec.read_value(LIMITED, "abcde") == "abcde"
    assert codec.read_value(LIMITED, "東京東京東") == "東京東京東"  # characters, not bytes
    err = reason_of(codec.read_value, LIMITED, "abcdef")
    assert (err.reason, err.detail) == ("too_long", 'id="abcdef" is 6 characters, max 5')


@pytest.mark.parametrize(
    ("value", "code", "index"),
    [("a\x00", "0000", 1), ("\t", "0009", 0), ("a\u202eb", "202E", 1), ("\ud800", "D800", 0)],
)
def test_control_characters_are_refused(value: str, code: str, index: int) -> None:
    err = reason_of(codec.read_value, LIMITED, value)
    assert err.reason == "control_character"
    assert f"control character U+{code} at index {index}" in err.detail
    err.detail.encode("utf-8")  # shown escaped


def test_strings_without_limits_accept_anything() -> None:
    assert codec.read_value(NAME, "a\x00" * 10_000) == "a\x00" * 10_000
    assert codec.read_value(LIMITED, "a\u00a0b") == "a\u00a0b"  # no-break space is no control


# --- timestamp sanity ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "in_detail"),
    [
        ("1999-12-31T23:59:59.999Z", "before 2000-01-01"),
        ("1970-01-01T00:00:00Z", "before 2000-01-01"),
        ("0001-01-01T00:00:00Z", "before 2000-01-01"),
        ("2000-01-01T00:30:00+01:00", "before 2000-01-01"),  # 1999 in UTC
        ("2026-11-28T17:00:00+14:01", "zone offset +14:01"),
        ("2026-11-28T17:00:00-12:01", "zone offset -12:01"),
        ("2026-11-28T17:00:00+23:59", "outside -12:00..+14:00"),
        ("9999-12-31T23:00:00-11:00", ""),  # UTC would be year 10000
    ],
)
def test_timestamp_absurd_values(text: str, in_detail: str) -> None:
    err = reason_of(codec.read_value, WHEN, text)
    assert err.reason == "bad_timestamp"
    assert in_detail in err.detail


@pytest.mark.parametrize(
    "text", ["2000-01-01T00:00:00Z", "2026-11-28T17:00:00+14:00", "2026-11-28T17:00:00-12:00"]
)
def test_timestamp_limits_are_inclusive(text: str) -> None:
    assert codec.read_value(WHEN, text) >= codec.MIN_TIMESTAMP


@pytest.mark.parametrize(
    ("value", "expected"),
    [(Decimal("1.500"), Decimal("1.50")), (Decimal("2E+1"), Decimal("20.00"))],
)
def test_decimal_trailing_zeros_are_not_decimals(value: Decimal, expected: Decimal) -> None:
    assert codec.read_value(AMOUNT, value) == expected


@pytest.mark.parametrize(
    "value", [Decimal("1.0000000000000001"), Decimal("1E-400"), Decimal("0.001")]
)
def test_decimal_exact_value_with_more_decimals(value: Decimal) -> None:
    err = reason_of(codec.read_value, AMOUNT, value)
    assert err.reason == "bad_amount"
    assert "has more than 2 decimals" in err.detail


@pytest.mark.parametrize("value", [Decimal("NaN"), Decimal("Infinity"), Decimal("1E+400")])
def test_decimal_non_finite_or_huge_decimal(value: Decimal) -> None:
    assert reason_of(codec.read_value, AMOUNT, value).reason == "bad_amount"


@pytest.mark.parametrize(
    "raw",
    [
        b'{"amount":1e-999999999999999999999999}',  # orjson: 0.0; Decimal: InvalidOperation
        b'{"amount":1e-999999999999999999999999,"m":"\\n"}',  # the exact (slow) path
    ],
)
def test_exponent_beyond_decimal_is_bad_amount_not_a_crash(raw: bytes) -> None:
    err = reason_of(codec.load_object, raw, exact_keys=("amount",))
    assert err.reason == "bad_amount"
    assert err.detail == "amount=1e-999999999999999999999999 is beyond the range of decimals"


def test_exponent_beyond_decimal_elsewhere_stays_a_double() -> None:
    raw = b'{"x":[1e-999999999999999999999999],"amount":1}'
    assert codec.load_object(raw) == {"x": [0.0], "amount": 1}
