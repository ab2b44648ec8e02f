"""Property tests: `parse_transaction` refuses every kind of hostile record with exactly the
expected reason, never raises anything but `InvalidRecord`, and valid records round-trip.

Why property-based: the validator is the detector's only defence against untrusted bytes,
and the record that once crashed it (a transaction_id nested ~990 levels deep) was not one
anybody had thought of writing by hand. Each test below generates one kind of hostile
record around a valid base record; the module prints how many records of each kind ran.

Profile: derandomized (the same examples on every run, so a failure reproduces), no
deadline (the build machines are shared), no example database (the runfiles tree is
read-only), `EXAMPLES` examples per test: about 6,000 records in well under a minute.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from libs.schemas import codec
from libs.schemas.alert import parse_alert
from libs.schemas.fields import InvalidRecord, Reason
from libs.schemas.transaction import (
    DEFAULT_MAX_FUTURE_SKEW,
    ISO_COUNTRIES,
    ISO_CURRENCIES,
    TRANSACTION_FIELDS,
    Transaction,
    parse_transaction,
    transaction_from_dict,
    transaction_to_json,
)

EXAMPLES = 300
settings.register_profile(
    "hostile",
    derandomize=True,
    deadline=None,
    database=None,
    max_examples=EXAMPLES,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("hostile")

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)  # the validator's clock in every test
NAMES = tuple(f.name for f in TRANSACTION_FIELDS)
STRING_LIMITS = {
    f.name: f.max_length for f in TRANSACTION_FIELDS if f.max_length
}  # transaction_id, user_id, merchant, merchant_category
COUNTS: Counter[str] = Counter()  # records tried per kind, printed at the end


# --- strategies -----------------------------------------------------------------------

# Text a valid record may hold: no control/format characters, no surrogates.
clean_text = st.characters(exclude_categories=("Cc", "Cf", "Cs"))
CONTROLS = [
    chr(c)
    for c in range(0x110000)
    if unicodedata.category(chr(c)) in ("Cc", "Cf")  # every one of them, also astral
]


@st.composite
def transactions(draw: st.DrawFn) -> Transaction:
    """Any valid Transaction (event_time not after NOW + skew, amount exact in a double)."""
    uuid = str(draw(st.uuids()))
    return Transaction(
        transaction_id=uuid.upper() if draw(st.booleans()) else uuid,
        user_id=draw(st.text(clean_text, min_size=1, max_size=128).filter(str.strip)),
        amount=Decimal(draw(st.integers(1, 10**15 - 1))).scaleb(-2),
        currency=draw(st.sampled_from(sorted(ISO_CURRENCIES))),
        merchant=draw(st.text(clean_text, max_size=256)),
        merchant_category=draw(st.text(clean_text, max_size=64)),
        country=draw(st.sampled_from(sorted(ISO_COUNTRIES))),
        event_time=draw(
            st.datetimes(
                min_value=datetime(2000, 1, 1),
                max_value=(NOW + DEFAULT_MAX_FUTURE_SKEW).replace(tzinfo=None),
                timezones=st.just(UTC),
            )
        ),
    )


def base_object(t: Transaction) -> dict[str, Any]:
    """A valid record as a decoded JSON object (what a producer would write)."""
    return orjson.loads(transaction_to_json(t))


valid_objects = transactions().map(base_object)
scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.text(max_size=8)
shallow_json = st.recursive(
    scalars | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
unknown_keys = st.text(min_size=1, max_size=12).filter(lambda k: k not in NAMES)


def members(obj: dict[str, Any]) -> list[bytes]:
    """`"key":value` texts of an object, to assemble records orjson cannot write."""
    return [orjson.dumps(k) + b":" + orjson.dumps(v) for k, v in obj.items()]


def assemble(parts: list[bytes]) -> bytes:
    return b"{" + b",".join(parts) + b"}"


def with_raw_value(obj: dict[str, Any], name: str, text: bytes) -> bytes:
    """The record with `name`'s value replaced by raw JSON text (possibly not JSON)."""
    return assemble([orjson.dumps(k) + b":" + (text if k == name else orjson.dumps(v))
                     for k, v in obj.items()])  # fmt: skip


def escaped_key(key: str, mode: str) -> bytes:
    """JSON text of `key`: as is, non-ASCII escaped, or every character as \\uXXXX."""
    if mode == "plain":
        return orjson.dumps(key)
    if mode == "ascii":
        return json.dumps(key, ensure_ascii=True).encode()
    units = key.encode("utf-16-be")
    return (
        b'"'
        + b"".join(b"\\u%04x" % int.from_bytes(units[i : i + 2]) for i in range(0, len(units), 2))
        + b'"'
    )


def mutations(raw: bytes) -> st.SearchStrategy[bytes]:
    """`raw` with a few bytes replaced, inserted or deleted."""
    edits = st.tuples(st.integers(0, len(raw)), st.integers(0, 8), st.binary(max_size=4))
    return st.lists(edits, min_size=1, max_size=4).map(lambda es: _apply(raw, es))


def _apply(raw: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    for at, delete, insert in edits:
        at %= len(raw) + 1
        raw = raw[:at] + insert + raw[at + delete :]
    return raw


def refused(kind: str, raw: bytes, reason: str, **kwargs: Any) -> InvalidRecord:
    """parse_transaction must refuse `raw` with exactly `reason` and a safe detail."""
    COUNTS[kind] += 1
    event(kind)
    with pytest.raises(InvalidRecord) as info:
        parse_transaction(raw, now=NOW, **kwargs)
    err = info.value
    assert err.reason == reason, f"{kind}: expected {reason}, got {err} for {raw[:120]!r}"
    assert err.reason in set(Reason)
    # The detail goes to a Kafka header and a log line: bounded and encodable.
    assert len(err.detail) <= 400, err.detail
    str(err).encode("utf-8")
    return err


def nested_text(depth: int, style: str, leaf: bytes) -> bytes:
    """A JSON value nested `depth` levels deep (arrays, objects or both in turn)."""
    opens, closes = [], []
    for level in range(depth):
        as_array = style == "array" or (style == "mixed" and level % 2 == 0)
        opens.append(b"[" if as_array else b'{"k":')
        closes.append(b"]" if as_array else b"}")
    return b"".join(opens) + leaf + b"".join(reversed(closes))


# --- every kind of hostile record -------------------------------------------------------


@given(
    obj=valid_objects,
    depth=st.integers(codec.MAX_DEPTH, 5000),  # the value's own depth; the record adds 1
    style=st.sampled_from(["array", "object", "mixed"]),
    where=st.sampled_from(["field", "unknown", "in_list", "top"]),
    name=st.sampled_from(NAMES),
    leaf=st.sampled_from([b"1", b'"x"', b"null", b"[]", b"{}"]),
)
def test_deep_nesting_is_too_deep(
    obj: dict[str, Any], depth: int, style: str, where: str, name: str, leaf: bytes
) -> None:
    if leaf in (b"[]", b"{}"):
        depth -= 1  # the leaf is a level itself
    deep = nested_text(depth, style, leaf)
    if where == "field":
        raw = with_raw_value(obj, name, deep)
    elif where == "unknown":
        raw = assemble([*members(obj), b'"extra":' + deep])
    elif where == "in_list":
        raw = assemble([b'"extra":[1,' + deep + b"]", *members(obj)])
    else:
        raw = nested_text(depth + 1, style, leaf)  # the whole payload
    refused(f"too_deep ({where})", raw, Reason.TOO_DEEP)


@given(
    obj=valid_objects,
    depth=st.integers(1, codec.MAX_DEPTH - 1),
    style=st.sampled_from(["array", "object", "mixed"]),
)
def test_nesting_within_the_limit_is_accepted(obj: dict[str, Any], depth: int, style: str) -> None:
    COUNTS["nesting <= 32 (accepted)"] += 1
    raw = assemble([*members(obj), b'"extra":' + nested_text(depth, style, b"1")])
    assert parse_transaction(raw, now=NOW).user_id == obj["user_id"]
    # The same value in a contract field is a type error, not a depth error.
    refused(
        "bad_type (nested <= 32)",
        with_raw_value(obj, "user_id", nested_text(depth, style, b"1")),
        Reason.BAD_TYPE,
    )


@given(
    obj=valid_objects,
    extra=st.integers(1, 70_000),
    where=st.sampled_from(["pad", "merchant", "limit"]),
)
def test_oversized_is_too_large(obj: dict[str, Any], extra: int, where: str) -> None:
    raw = orjson.dumps(obj)
    if where == "limit":  # a smaller configured limit
        refused("too_large (max_bytes)", raw, Reason.TOO_LARGE, max_bytes=max(len(raw) - extra, 1))
        return
    size = codec.DEFAULT_MAX_BYTES - len(raw) + extra
    if where == "pad":
        raw = orjson.dumps({**obj, "pad": "x" * size})
    else:
        raw = orjson.dumps({**obj, "merchant": obj["merchant"] + "y" * size})
    assert len(raw) > codec.DEFAULT_MAX_BYTES
    refused(f"too_large ({where})", raw, Reason.TOO_LARGE)


@given(
    obj=valid_objects,
    name=st.sampled_from(sorted(STRING_LIMITS)),
    over=st.integers(1, 3000),
    chars=st.text(min_size=1, max_size=20),  # anything, control characters included
)
def test_long_strings_are_too_long(obj: dict[str, Any], name: str, over: int, chars: str) -> None:
    length = STRING_LIMITS[name] + over
    text = (chars * (length // len(chars) + 1))[:length]
    refused(f"too_long ({name})", orjson.dumps({**obj, name: text}), Reason.TOO_LONG)


@given(
    obj=valid_objects,
    name=st.sampled_from(sorted(STRING_LIMITS)),
    control=st.sampled_from(CONTROLS),
    at=st.integers(0, 10**6),
    ascii_only=st.booleans(),
)
def test_control_characters_are_refused(
    obj: dict[str, Any], name: str, control: str, at: int, ascii_only: bool
) -> None:
    value = obj[name][: STRING_LIMITS[name] - 1]
    at %= len(value) + 1
    record = {**obj, name: value[:at] + control + value[at:]}
    # Written raw by orjson (C0 as short escapes) or all \u-escaped by json.
    raw = json.dumps(record, ensure_ascii=True).encode() if ascii_only else orjson.dumps(record)
    err = refused(f"control_character ({name})", raw, Reason.CONTROL_CHARACTER)
    assert f"U+{ord(control):04X} at index {at}" in err.detail


@given(
    obj=valid_objects, name=st.sampled_from(sorted(STRING_LIMITS)), unit=st.integers(0xD800, 0xDFFF)
)
def test_lone_surrogates_are_refused(obj: dict[str, Any], name: str, unit: int) -> None:
    # As a JSON escape it is not valid JSON (orjson refuses it) ...
    refused(
        "not_json (lone surrogate escape)",
        with_raw_value(obj, name, b'"a\\u%04x"' % unit),
        Reason.NOT_JSON,
    )
    # ... and in an already-decoded object it is a control character.
    COUNTS["control_character (surrogate, decoded)"] += 1
    with pytest.raises(InvalidRecord) as info:
        transaction_from_dict({**obj, name: "a" + chr(unit)}, now=NOW)
    assert info.value.reason == Reason.CONTROL_CHARACTER
    str(info.value).encode("utf-8")  # the detail escapes it


not_a_country = (st.text(max_size=5) | st.from_regex(r"[A-Za-z]{2}", fullmatch=True)).filter(
    lambda c: c not in ISO_COUNTRIES
)
not_a_currency = (st.text(max_size=5) | st.from_regex(r"[A-Za-z]{3}", fullmatch=True)).filter(
    lambda c: c not in ISO_CURRENCIES
)


@given(obj=valid_objects, country=not_a_country, currency=not_a_currency, which=st.booleans())
def test_unknown_codes_are_refused(
    obj: dict[str, Any], country: str, currency: str, which: bool
) -> None:
    if which:
        refused("bad_country", orjson.dumps({**obj, "country": country}), Reason.BAD_COUNTRY)
    else:
        refused("bad_currency", orjson.dumps({**obj, "currency": currency}), Reason.BAD_CURRENCY)


@given(
    obj=valid_objects,
    token=st.sampled_from(
        [b"NaN", b"-NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e400", b"1E309", b"inf", b"nan"]
    ),
    name=st.sampled_from(["amount", "extra"]),
)
def test_non_finite_numbers_are_not_json(obj: dict[str, Any], token: bytes, name: str) -> None:
    raw = with_raw_value({**obj, "extra": 0}, name, token)
    refused(f"not_json ({token.decode()})", raw, Reason.NOT_JSON)


@given(
    obj=valid_objects,
    whole=st.integers(0, 10**12),
    zeros=st.integers(0, 30),
    digits=st.integers(1, 10**6),
    exponent=st.booleans(),
)
def test_more_than_two_decimals_are_refused(
    obj: dict[str, Any], whole: int, zeros: int, digits: int, exponent: bool
) -> None:
    # whole.DD then at least one non-zero digit later: 1.0000000000000001 is the classic
    # (a double rounds it to 1.0, so this is only visible in the JSON text).
    fraction = f"{digits:02d}"[:2] + "0" * zeros + str(digits % 9 + 1)
    text = f"{whole}.{fraction}"
    if exponent:  # the same value written as mantissa e-N
        text = f"{int(f'{whole}{fraction}')}e-{len(fraction)}"
    assert Decimal(text) != Decimal(text).quantize(Decimal("0.01"))
    err = refused(
        "bad_amount (decimals)", with_raw_value(obj, "amount", text.encode()), Reason.BAD_AMOUNT
    )
    assert "more than 2 decimals" in err.detail


json_numbers = st.from_regex(
    r"-?(0|[1-9][0-9]{0,20})(\.[0-9]{1,25})?([eE][+-]?[0-9]{1,26})?", fullmatch=True
)


huge_exponents = st.tuples(
    st.integers(1, 10**6), st.sampled_from("+-"), st.integers(10**17, 10**30)
).map(lambda t: f"{t[0]}e{t[1]}{t[2]}")


@given(obj=valid_objects, text=json_numbers | huge_exponents)
def test_any_json_number_as_amount_is_judged_on_its_exact_value(
    obj: dict[str, Any], text: str
) -> None:
    # The oracle: orjson refuses what a double cannot hold (not_json); otherwise the exact
    # decimal written must be > 0, < 10^13 and a whole number of cents.
    raw = with_raw_value(obj, "amount", text.encode())
    if math.isinf(float(text)):
        refused("not_json (number beyond a double)", raw, Reason.NOT_JSON)
        return
    try:
        exact = Decimal(text)
    except InvalidOperation:  # an exponent no Decimal holds
        refused("bad_amount (exponent beyond Decimal)", raw, Reason.BAD_AMOUNT)
        return
    cents = exact.scaleb(2) if exact and abs(exact.adjusted()) < 100 else None
    if cents is not None and 0 < exact < 10**13 and cents == cents.to_integral_value():
        COUNTS["amount any JSON number (accepted)"] += 1
        assert parse_transaction(raw, now=NOW).amount == exact
    else:
        refused("bad_amount (any JSON number)", raw, Reason.BAD_AMOUNT)


@given(obj=valid_objects, cents=st.integers(-(10**15), 0))
def test_non_positive_amounts_are_refused(obj: dict[str, Any], cents: int) -> None:
    refused(
        "bad_amount (<= 0)",
        with_raw_value(obj, "amount", str(Decimal(cents).scaleb(-2)).encode()),
        Reason.BAD_AMOUNT,
    )


@given(
    obj=valid_objects,
    key=st.sampled_from(NAMES) | unknown_keys,
    value=scalars,
    mode=st.sampled_from(["plain", "ascii", "all"]),
    at=st.integers(0, 100),
    nested=st.booleans(),
)
def test_duplicate_keys_are_refused(
    obj: dict[str, Any], key: str, value: Any, mode: str, at: int, nested: bool
) -> None:
    parts = members(obj)
    if nested:  # inside an unknown key's object, itself in a list
        inner = [orjson.dumps(key) + b":1", escaped_key(key, mode) + b":" + orjson.dumps(value)]
        parts.insert(at % (len(parts) + 1), b'"extra":[' + assemble(inner) + b"]")
        kind = "duplicate_key (nested)"
    else:
        if key not in obj:
            parts.append(orjson.dumps(key) + b":" + orjson.dumps(value))
        dup = escaped_key(key, mode) + b":" + orjson.dumps(obj.get(key, value))
        parts.insert(at % (len(parts) + 1), dup)
        kind = f"duplicate_key ({'contract' if key in NAMES else 'unknown'} key, {mode})"
    refused(kind, assemble(parts), Reason.DUPLICATE_KEY)


def render(instant: datetime, offset_minutes: int) -> str:
    return instant.astimezone(timezone(timedelta(minutes=offset_minutes))).isoformat()


offsets = st.integers(-12 * 4, 14 * 4).map(lambda quarter: quarter * 15)


@given(
    obj=valid_objects,
    ahead=st.timedeltas(timedelta(microseconds=1), timedelta(days=365 * 70)),
    offset=offsets,
)
def test_future_event_times_are_refused(obj: dict[str, Any], ahead: timedelta, offset: int) -> None:
    when = NOW + DEFAULT_MAX_FUTURE_SKEW + ahead
    err = refused(
        "future_event_time",
        orjson.dumps({**obj, "event_time": render(when, offset)}),
        Reason.FUTURE_EVENT_TIME,
    )
    assert "ahead of now=2026-12-01T12:00:00Z" in err.detail


@given(
    obj=valid_objects, behind=st.timedeltas(timedelta(0), DEFAULT_MAX_FUTURE_SKEW), offset=offsets
)
def test_event_times_within_the_skew_are_accepted(
    obj: dict[str, Any], behind: timedelta, offset: int
) -> None:
    COUNTS["event_time within skew (accepted)"] += 1
    when = NOW + DEFAULT_MAX_FUTURE_SKEW - behind
    assert (
        parse_transaction(
            orjson.dumps({**obj, "event_time": render(when, offset)}), now=NOW
        ).event_time
        == when
    )


@given(
    obj=valid_objects,
    old=st.datetimes(
        datetime(2, 1, 1), datetime(1999, 12, 31, 23, 59, 59, 999999), timezones=st.just(UTC)
    ),
    offset=offsets,
    bad_offset=st.integers(12 * 60 + 1, 24 * 60 - 1).flatmap(lambda m: st.sampled_from([m, -m])),
    not_iso=st.text(max_size=19),  # a valid timestamp has at least 20 characters
    which=st.sampled_from(["before 2000", "zone offset", "not ISO-8601"]),
)
def test_bad_timestamps_are_refused(
    obj: dict[str, Any], old: datetime, offset: int, bad_offset: int, not_iso: str, which: str
) -> None:
    if bad_offset > 0 and bad_offset <= 14 * 60:
        bad_offset = 14 * 60 + 1
    if which == "before 2000":
        text = render(old, offset)
    elif which == "zone offset":
        text = render(NOW - timedelta(days=1), bad_offset)
    else:
        text = not_iso
    refused(
        f"bad_timestamp ({which})", orjson.dumps({**obj, "event_time": text}), Reason.BAD_TIMESTAMP
    )


def wrong_types(name: str) -> st.SearchStrategy[Any]:
    if name == "amount":  # numbers are the right type; their value is judged later
        return shallow_json.filter(lambda v: isinstance(v, bool) or not isinstance(v, int | float))
    return shallow_json.filter(lambda v: not isinstance(v, str))


@given(
    obj=valid_objects,
    name_value=st.sampled_from(NAMES).flatmap(lambda n: st.tuples(st.just(n), wrong_types(n))),
)
def test_wrong_types_are_bad_type(obj: dict[str, Any], name_value: tuple[str, Any]) -> None:
    name, value = name_value
    refused(f"bad_type ({name})", orjson.dumps({**obj, name: value}), Reason.BAD_TYPE)


@given(obj=valid_objects, dropped=st.sets(st.sampled_from(NAMES), min_size=1))
def test_missing_fields_are_named(obj: dict[str, Any], dropped: set[str]) -> None:
    raw = orjson.dumps({k: v for k, v in obj.items() if k not in dropped})
    err = refused("missing_field", raw, Reason.MISSING_FIELD)
    assert err.detail == "missing " + ", ".join(n for n in NAMES if n in dropped)


INVALID_UTF8 = [
    b"\xff",
    b"\xfe",
    b"\xc3\x28",
    b"\xc0\xaf",
    b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80",
    b"\xe2\x82",
    b"\x80",
]


@given(obj=valid_objects, bad=st.sampled_from(INVALID_UTF8), at=st.integers(0, 10**6))
def test_invalid_utf8_is_not_utf8(obj: dict[str, Any], bad: bytes, at: int) -> None:
    raw = json.dumps(obj).encode()  # ASCII: the inserted bytes are the first invalid ones
    at %= len(raw) + 1
    err = refused("not_utf8", raw[:at] + bad + raw[at:], Reason.NOT_UTF8)
    assert f"invalid UTF-8 byte 0x{bad[0]:02x} at offset {at}" == err.detail


@given(obj=valid_objects, cut=st.integers(1, 10**6), bom=st.booleans())
def test_truncated_or_bom_prefixed_records_are_not_json(
    obj: dict[str, Any], cut: int, bom: bool
) -> None:
    raw = json.dumps(obj, ensure_ascii=True).encode()  # ASCII: a cut never splits a character
    if bom:
        refused("not_json (BOM)", b"\xef\xbb\xbf" + raw, Reason.NOT_JSON)
    else:
        refused("not_json (truncated)", raw[: cut % len(raw)], Reason.NOT_JSON)


@given(value=shallow_json.filter(lambda v: not isinstance(v, dict)))
def test_non_objects_are_not_object(value: Any) -> None:
    refused("not_object", orjson.dumps(value), Reason.NOT_OBJECT)


@given(
    obj=valid_objects,
    uuid=st.text(clean_text, max_size=64),
    blank=st.text(" \u00a0\u2003\u3000", max_size=8),
)
def test_bad_ids_are_refused(obj: dict[str, Any], uuid: str, blank: str) -> None:
    if not re.fullmatch(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}", uuid):
        refused("bad_uuid", orjson.dumps({**obj, "transaction_id": uuid}), Reason.BAD_UUID)
    refused("empty_field", orjson.dumps({**obj, "user_id": blank}), Reason.EMPTY_FIELD)


@given(raw=st.binary(max_size=400) | valid_objects.map(orjson.dumps).flatmap(mutations))
def test_any_bytes_give_a_record_or_invalid_record(raw: bytes) -> None:
    COUNTS["random or mutated bytes"] += 1
    for parse in (lambda r: parse_transaction(r, now=NOW), parse_alert, codec.load_object):
        try:
            parse(raw)
        except InvalidRecord as err:
            assert err.reason in set(Reason)
            str(err).encode("utf-8")


# --- valid records ---------------------------------------------------------------------


@given(t=transactions())
def test_valid_records_round_trip(t: Transaction) -> None:
    COUNTS["valid round trip"] += 1
    raw = transaction_to_json(t)
    assert parse_transaction(raw, now=NOW) == t
    assert transaction_to_json(parse_transaction(raw, now=NOW)) == raw
    # Also when every character is \u-escaped (the exact, slower path).
    assert parse_transaction(json.dumps(orjson.loads(raw)).encode(), now=NOW) == t


@pytest.fixture(scope="module", autouse=True)
def _report_counts(request: pytest.FixtureRequest) -> Iterator[None]:
    """After the module: how many records of each kind were tried (in the test log)."""
    yield
    lines = [f"{count:6d}  {kind}" for kind, count in sorted(COUNTS.items())]
    lines.append(f"{sum(COUNTS.values()):6d}  records in total")
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print("\nhostile_test: records tried per kind\n" + "\n".join(lines))
