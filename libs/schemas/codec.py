"""JSON encoding and structural validation for any contract, driven by its `Field` tuple.

Contract modules (`transaction`, `alert`) add only their domain rules on top. Everything
here raises `InvalidRecord` with a stable reason, so a bad payload can be routed to the
DLQ and counted without ever stopping a consumer. `load_object` is total: for any input
(any bytes, any size, any nesting) it returns a dict or raises `InvalidRecord`, nothing
else. Checks, in order (the first failing one is reported):

| reason | limit / rule |
| --- | --- |
| not_utf8 | the payload is not bytes |
| empty | None or zero bytes |
| too_large | more than `max_bytes` (DEFAULT_MAX_BYTES = 64 KiB; alerts pass their own) |
| not_utf8 | invalid UTF-8 (detail: first bad byte and its offset) |
| not_json | not strict RFC 8259 JSON: NaN, Infinity, 1e400 (beyond a double), a BOM, |
| | a lone surrogate escape (orjson's message says where) |
| too_deep | arrays/objects nested more than MAX_DEPTH = 32 levels (the top level is 1); |
| | past orjson's own limit (1,024) this is reported before any syntax error after it |
| not_object | the top level is not an object |
| duplicate_key | a key occurs twice in one object, at any depth, also written with \\u escapes |

Then per field, in contract order (`read_fields`): missing_field, bad_type, too_long
(`Field.max_length`), control_character (`Field.no_controls`: Unicode Cc/Cf, lone
surrogates), bad_timestamp (not ISO-8601 with an explicit zone, impossible date, zone
offset outside -12:00..+14:00 or with minutes >= 60, before 2000-01-01), bad_amount
(DECIMAL: more decimals than the scale, too many integer digits) and bad_value (INT
outside 32 bits).

Why limits on depth and duplicates: orjson accepts 1,024 levels, and Python code that
walks such a value (json.dumps, repr) dies with RecursionError; a duplicate key is read
as the last value by orjson and possibly the first by another consumer, so two parsers
would see two different transactions.

Numbers: orjson parses JSON numbers into IEEE doubles, which round (1.0000000000000001
becomes 1.0). Top-level numbers written with a fraction or exponent are therefore
returned as `Decimal`s read from the JSON text itself, so DECIMAL fields see exactly what
was written. Amounts are also limited to `MAX_EXACT_DIGITS` significant digits, so every
accepted amount is also exact as the double that `dump_record` writes.

Speed: every record of the detector passes through here. The common case (no
backslash, one object) is checked with a few C-speed byte counts on the raw text; only
other payloads pay for a second, exact parse with the standard library.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal, DecimalException
from typing import Any

import orjson

from libs.schemas.fields import (
    MAX_EXACT_DIGITS,
    Field,
    InvalidRecord,
    Kind,
    Reason,
    control_character,
    field_names,
    show,
)

DEFAULT_MAX_BYTES = 64 * 1024
# Deepest nesting of arrays and objects, counting the top-level object as 1. Contracts
# need 2 (an alert's lists); the rest is room for producers' unknown fields.
MAX_DEPTH = 32
# Earliest accepted timestamp: anything before is a bug (epoch 0, year 1) rather than data.
MIN_TIMESTAMP = datetime(2000, 1, 1, tzinfo=UTC)
# Zone offsets in use worldwide range from -12:00 (Baker Island) to +14:00 (Kiribati).
MIN_OFFSET, MAX_OFFSET = timedelta(hours=-12), timedelta(hours=14)

# Explicit zone is required: `Z` or `+hh:mm`/`-hh:mm`. Up to nanosecond fractions are
# accepted (Java/Kafka producers emit them) and truncated to microseconds.
_TIMESTAMP_RE = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})", re.ASCII
)
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1
_ORJSON_DEPTH_LIMIT = 1024  # orjson refuses deeper input with "depth limit exceeded"


def json_type(value: object) -> str:
    """JSON name of a decoded value's type, for error details."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float | Decimal):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def load_object(
    raw: bytes | bytearray | memoryview | None,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    exact_keys: Iterable[str] | None = None,
) -> dict[str, Any]:
    """Decode a payload into a JSON object, or raise `InvalidRecord` (see the module doc).

    Top-level numbers under `exact_keys` (default: every key) come back exactly as
    written: a `Decimal` when written with a fraction or exponent, an `int` when written
    as an integer (also beyond 64 bits, which orjson turns into a double).
    """
    if type(raw) is not bytes:
        raw = _as_bytes(raw, max_bytes)
    size = len(raw)
    if size == 0:
        raise InvalidRecord(Reason.EMPTY, "payload is empty, expected a JSON object")
    if size > max_bytes:
        raise InvalidRecord(Reason.TOO_LARGE, f"payload is {size} bytes, max {max_bytes}")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as err:
        raise _decode_error(raw, err) from None
    objects = raw.count(b"{")
    # Each level of nesting needs a bracket, so few brackets (in strings too) bound depth.
    if objects + raw.count(b"[") > MAX_DEPTH:
        _check_depth(obj)
    if type(obj) is not dict:
        raise InvalidRecord(
            Reason.NOT_OBJECT, f"top-level value is {json_type(obj)}, expected object"
        )
    keys = obj.keys() if exact_keys is None else exact_keys
    if objects == 1 and b"\\" not in raw and _no_repeated_keys(raw, obj):
        for key in keys:
            if type(obj.get(key)) is float:
                number = _number_text(raw, key)
                if number is None:  # not found unambiguously: let the exact parse say
                    _make_exact(_exact_parse(raw), obj, keys)
                    break
                obj[key] = number
    else:
        _make_exact(_exact_parse(raw), obj, keys)
    return obj


def _as_bytes(raw: object, max_bytes: int) -> bytes:
    """bytes of any accepted payload type (copied only when small enough to parse)."""
    if raw is None:
        raise InvalidRecord(Reason.EMPTY, "payload is empty, expected a JSON object")
    if isinstance(raw, memoryview):
        if raw.nbytes > max_bytes:
            raise InvalidRecord(Reason.TOO_LARGE, f"payload is {raw.nbytes} bytes, max {max_bytes}")
        return raw.tobytes()
    if isinstance(raw, bytes | bytearray):
        if len(raw) > max_bytes:
            raise InvalidRecord(Reason.TOO_LARGE, f"payload is {len(raw)} bytes, max {max_bytes}")
        return bytes(raw)
    raise InvalidRecord(Reason.NOT_UTF8, f"payload is {type(raw).__name__}, expected bytes")


def _decode_error(raw: bytes, err: orjson.JSONDecodeError) -> InvalidRecord:
    """The reason for a payload orjson refused: bad UTF-8, too deep, or not JSON."""
    # orjson also rejects bad UTF-8; tell the two apart for a useful reason.
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as bad:
        return InvalidRecord(
            Reason.NOT_UTF8, f"invalid UTF-8 byte 0x{raw[bad.start]:02x} at offset {bad.start}"
        )
    message = str(err)[:200]
    if message.startswith("depth limit exceeded"):
        return InvalidRecord(
            Reason.TOO_DEEP,
            f"JSON nesting depth is more than {_ORJSON_DEPTH_LIMIT} ({message}), max {MAX_DEPTH}",
        )
    return InvalidRecord(Reason.NOT_JSON, message)


def _check_depth(obj: Any) -> None:
    """Raise too_deep if arrays/objects nest more than MAX_DEPTH levels (top level = 1)."""
    if type(obj) is dict:
        # Name the first top-level key whose value is too deep: the detail says where.
        for key, value in obj.items():
            depth = 1 + _depth(value)
            if depth > MAX_DEPTH:
                raise InvalidRecord(
                    Reason.TOO_DEEP,
                    f"JSON nesting depth is {depth} under key {show(key)}, max {MAX_DEPTH}",
                )
    else:
        depth = _depth(obj)
        if depth > MAX_DEPTH:
            raise InvalidRecord(Reason.TOO_DEEP, f"JSON nesting depth is {depth}, max {MAX_DEPTH}")


def _depth(value: Any) -> int:
    """Nesting depth of a decoded JSON value (a scalar is 0), without recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        kind = type(node)
        if kind is dict:
            children = node.values()
        elif kind is list:
            children = node
        else:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children if type(child) in (dict, list))
    return deepest


def _no_repeated_keys(raw: bytes, obj: dict[str, Any]) -> bool:
    """True if no key repeats, for a payload with one object and no backslash.

    Then every `"` delimits a string, so the text holds exactly (keys + string values)
    strings when orjson dropped no repeated key, and more when it did. False means a
    key repeats (the exact path finds which).
    """
    types = list(map(type, obj.values()))
    strings = len(obj) + types.count(str)
    if list in types:  # strings inside lists count too (no objects there: one object)
        strings += sum(_strings_in(value) for value in obj.values() if type(value) is list)
    return raw.count(b'"') == 2 * strings


def _strings_in(items: list[Any]) -> int:
    """Number of strings in a list of lists and scalars."""
    count = 0
    for item in items:
        kind = type(item)
        if kind is str:
            count += 1
        elif kind is list:
            count += _strings_in(item)
    return count


def _number_text(raw: bytes, key: str) -> Decimal | int | None:
    """The exact number written after top-level `key`, for the payloads
    `_no_repeated_keys` vouched for; None when the text cannot be found unambiguously."""
    pattern = _number_pattern(key)
    match = pattern.search(raw) if pattern is not None else None
    if match is None:
        return None
    text, fraction, exponent = match.groups()
    # An integer beyond 64 bits is a double for orjson; keep it an int, as json does.
    if fraction is None and exponent is None:
        return int(text)
    return _exact_decimal(key, text.decode())


def _exact_decimal(key: str, text: str) -> Decimal:
    number = _decimal_or_text(text)
    if type(number) is not Decimal:
        # e.g. 1e-999999999999999999999999: orjson reads 0.0, no Decimal can hold it.
        shown = text if len(text) <= 40 else text[:37] + "..."  # ASCII: a JSON number
        raise InvalidRecord(Reason.BAD_AMOUNT, f"{key}={shown} is beyond the range of decimals")
    return number


def _decimal_or_text(text: str) -> Decimal | _Unrepresentable:
    """`parse_float` of the exact parse: a Decimal, or the text when no Decimal holds it."""
    try:
        return Decimal(text)
    except DecimalException:
        return _Unrepresentable(text)


class _Unrepresentable(str):
    """A JSON number's text whose exponent is beyond what `Decimal` represents."""


@functools.lru_cache(maxsize=256)
def _number_pattern(key: str) -> re.Pattern[bytes] | None:
    # Two adjacent JSON strings are always separated by "," or ":", so for a key without
    # them, `"key"` cannot straddle two strings: with no backslash it is the key itself.
    if "," in key or ":" in key or '"' in key:
        return None
    return re.compile(
        re.escape(b'"' + key.encode() + b'"')
        + rb"[ \t\n\r]*:[ \t\n\r]*(-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?)"
    )


def _exact_parse(raw: bytes) -> dict[str, Any]:
    """The slow, exact path: parse again with the standard library, which reports repeated
    keys whatever their escapes, and keeps each number's text (`parse_float`)."""
    try:
        return json.loads(
            raw.decode("utf-8"), object_pairs_hook=_unique_keys, parse_float=_decimal_or_text
        )
    except InvalidRecord:
        raise
    except (ValueError, RecursionError) as err:  # orjson accepted it: should not happen
        raise InvalidRecord(Reason.NOT_JSON, show(str(err), 200)) from None


def _make_exact(exact: dict[str, Any], obj: dict[str, Any], keys: Iterable[str]) -> None:
    """Replace orjson's top-level doubles under `keys` by the exact parse's numbers."""
    for key in keys:
        if type(obj.get(key)) is float:
            number = exact[key]
            obj[key] = _exact_decimal(key, number) if type(number) is _Unrepresentable else number


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise InvalidRecord(
                    Reason.DUPLICATE_KEY,
                    f"key {show(key)} occurs more than once in one JSON object",
                )
            seen.add(key)
    return obj


def read_fields(obj: Mapping[str, Any], fields: tuple[Field, ...]) -> dict[str, Any]:
    """Type-check and convert every contract field; unknown keys are ignored.

    Ignoring unknown keys lets producers add fields before consumers know them.
    """
    names, plan = _plan(fields)
    if not obj.keys() >= names:
        missing = [f.name for f in fields if f.name not in obj]
        raise InvalidRecord(Reason.MISSING_FIELD, f"missing {', '.join(missing)}")
    return {name: read(field, obj[name]) for name, field, read in plan}


_Reader = Callable[[Field, Any], Any]
# Per contract (keyed by the tuple's id; the tuple is kept so the id stays its own):
# field names and each field's reader, so a record costs no per-field dispatch.
_PLANS: dict[
    int, tuple[tuple[Field, ...], frozenset[str], tuple[tuple[str, Field, _Reader], ...]]
] = {}


def _plan(
    fields: tuple[Field, ...],
) -> tuple[frozenset[str], tuple[tuple[str, Field, _Reader], ...]]:
    entry = _PLANS.get(id(fields))
    if entry is None or entry[0] is not fields:
        plan = tuple((f.name, f, read_value if f.nullable else _READERS[f.kind]) for f in fields)
        entry = (fields, frozenset(field_names(fields)), plan)
        if len(_PLANS) < 64:  # contracts are few; ad-hoc tuples are simply not cached
            _PLANS[id(fields)] = entry
    return entry[1], entry[2]


def decimal_names(fields: tuple[Field, ...]) -> tuple[str, ...]:
    """Names of the DECIMAL fields: the keys whose numbers `load_object` must keep exact."""
    return tuple(f.name for f in fields if f.kind is Kind.DECIMAL)


def read_value(field: Field, value: Any) -> Any:
    """Convert one decoded JSON value to its Python type, or raise `InvalidRecord`."""
    if value is None and field.nullable:
        return None
    return _READERS[field.kind](field, value)


def _bad_type(field: Field, value: Any) -> InvalidRecord:
    return InvalidRecord(
        Reason.BAD_TYPE,
        f"{field.name}={show(value)} is {json_type(value)}, expected {field.kind.value}",
    )


def _read_string(field: Field, value: Any) -> str:
    if not isinstance(value, str):
        raise _bad_type(field, value)
    if field.max_length and len(value) > field.max_length:
        raise InvalidRecord(
            Reason.TOO_LONG,
            f"{field.name}={show(value)} is {len(value)} characters, max {field.max_length}",
        )
    if field.no_controls and not value.isprintable():  # isprintable: the C-speed fast path
        found = control_character(value)
        if found is not None:
            index, char = found
            raise InvalidRecord(
                Reason.CONTROL_CHARACTER,
                f"{field.name}={show(value)} has control character U+{ord(char):04X} "
                f"at index {index} (Unicode Cc/Cf and lone surrogates are refused)",
            )
    return value


def _read_int(field: Field, value: Any) -> int:
    # bool is a subclass of int in Python but not a number in the contract.
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad_type(field, value)
    if not _INT_MIN <= value <= _INT_MAX:
        raise InvalidRecord(Reason.BAD_VALUE, f"{field.name}={value} is outside 32-bit range")
    return value


def _read_bool(field: Field, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _bad_type(field, value)
    return value


def _read_decimal(field: Field, value: Any) -> Decimal:
    """int, exact Decimal (from `load_object`) or float (an already-decoded dict)."""
    if type(value) is Decimal:
        number = value
    elif isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise _bad_type(field, value)
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, Decimal):
        number = value
    elif not math.isfinite(value):
        raise InvalidRecord(Reason.BAD_AMOUNT, f"{field.name}={value} must be finite")
    else:
        # repr() is the shortest text that round-trips the double, i.e. the JSON text as
        # written whenever it had <= 15 significant digits.
        number = Decimal(repr(value))
    if not number.is_finite():
        raise InvalidRecord(Reason.BAD_AMOUNT, f"{field.name}={show(number)} must be finite")
    int_digits = min(field.precision, MAX_EXACT_DIGITS) - field.scale
    if number and number.adjusted() >= int_digits:
        raise InvalidRecord(
            Reason.BAD_AMOUNT,
            f"{field.name}={show(number)} must be < {10**int_digits} in absolute value",
        )
    try:
        exact = number.quantize(_QUANTUM[field.scale])
    except DecimalException:  # e.g. 1e-999999999: no such quantum in the context
        exact = None
    if exact != number:  # by value: 1.50 and 1.500 are fine, 1.0000000000000001 is not
        raise InvalidRecord(
            Reason.BAD_AMOUNT,
            f"{field.name}={show(number)} has more than {field.scale} decimals",
        )
    return exact


_QUANTUM = {scale: Decimal(1).scaleb(-scale) for scale in range(39)}


def _read_timestamp(field: Field, value: Any) -> datetime:
    if not isinstance(value, str):
        raise _bad_type(field, value)
    if not _TIMESTAMP_RE.fullmatch(value):
        raise InvalidRecord(
            Reason.BAD_TIMESTAMP,
            f"{field.name}={show(value)} is not ISO-8601 with an explicit zone, "
            "expected e.g. 2026-11-28T17:00:00.123Z or 2026-11-28T18:00:00+01:00",
        )
    try:
        parsed = datetime.fromisoformat(value)
        # An offset beyond +-14:00 is no real zone (and near year 1 or 9999 the UTC
        # conversion overflows); either way the value is not a usable event time.
        if value[-1] != "Z":  # Z is UTC: nothing to check
            if int(value[-2:]) >= 60:  # fromisoformat reads +05:60 as +06:00; no zone is
                raise ValueError(f"zone offset {value[-6:]} has minutes >= 60")
            offset = parsed.utcoffset()
            if offset is None or not MIN_OFFSET <= offset <= MAX_OFFSET:
                raise ValueError(f"zone offset {value[-6:]} is outside -12:00..+14:00")
        utc = parsed.astimezone(UTC)
    except (ValueError, OverflowError) as err:
        raise InvalidRecord(Reason.BAD_TIMESTAMP, f"{field.name}={show(value)}: {err}") from None
    if utc < MIN_TIMESTAMP:
        raise InvalidRecord(
            Reason.BAD_TIMESTAMP, f"{field.name}={show(value)} is before 2000-01-01T00:00:00Z"
        )
    return utc


def _read_string_list(field: Field, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise _bad_type(field, value)
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise InvalidRecord(
                Reason.BAD_TYPE,
                f"{field.name}[{i}]={show(item)} is {json_type(item)}, expected string",
            )
    return tuple(value)


_READERS: dict[Kind, Callable[[Field, Any], Any]] = {
    Kind.STRING: _read_string,
    Kind.INT: _read_int,
    Kind.BOOL: _read_bool,
    Kind.DECIMAL: _read_decimal,
    Kind.TIMESTAMP: _read_timestamp,
    Kind.STRING_LIST: _read_string_list,
}


def format_timestamp(value: datetime) -> str:
    """UTC ISO-8601 with a `Z` suffix; naive datetimes are refused (their zone is a guess)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"timestamp {value!r} is naive, expected a timezone-aware datetime")
    utc = value.astimezone(UTC)
    # Shortest exact form: whole seconds, milliseconds (the usual case) or microseconds.
    if utc.microsecond == 0:
        spec = "seconds"
    elif utc.microsecond % 1000 == 0:
        spec = "milliseconds"
    else:
        spec = "microseconds"
    return utc.isoformat(timespec=spec).removesuffix("+00:00") + "Z"


def decimal_to_float(value: Decimal) -> float:
    """A float that orjson writes as exactly this decimal, or ValueError."""
    as_float = float(value)
    if not math.isfinite(as_float) or Decimal(repr(as_float)) != value:
        raise ValueError(f"{value} cannot be written exactly as a JSON number")
    return as_float


def to_json_value(field: Field, value: Any) -> Any:
    """Python value -> value orjson can write, per the field's kind."""
    if value is None:
        if not field.nullable:
            raise ValueError(f"{field.name} is None but not nullable")
        return None
    if field.kind is Kind.DECIMAL:
        return decimal_to_float(value)
    if field.kind is Kind.TIMESTAMP:
        return format_timestamp(value)
    if field.kind is Kind.STRING_LIST:
        return list(value)
    return value


def dump_record(record: object, fields: tuple[Field, ...]) -> bytes:
    """Serialize a record dataclass as a JSON object with keys in contract order."""
    return orjson.dumps({f.name: to_json_value(f, getattr(record, f.name)) for f in fields})
