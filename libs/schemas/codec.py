"""JSON encoding and structural validation for any contract, driven by its `Field` tuple.

Contract modules (`transaction`, `alert`) add only their domain rules on top. Everything
here raises `InvalidRecord` with a stable reason, so a bad payload can be routed to the
DLQ and counted without ever stopping a consumer.

Numbers: orjson parses JSON numbers into IEEE doubles. A double carries 15 significant
digits exactly, so DECIMAL values are taken from the shortest repr of the double and are
rejected when they have more integer digits than that guarantees (see `MAX_EXACT_DIGITS`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson

from libs.schemas.fields import MAX_EXACT_DIGITS, Field, InvalidRecord, Kind, Reason, show

DEFAULT_MAX_BYTES = 64 * 1024

# Explicit zone is required: `Z` or `+hh:mm`/`-hh:mm`. Up to nanosecond fractions are
# accepted (Java/Kafka producers emit them) and truncated to microseconds.
_TIMESTAMP_RE = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})", re.ASCII
)
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1


def json_type(value: object) -> str:
    """JSON name of a decoded value's type, for error details."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def load_object(
    raw: bytes | bytearray | memoryview | None, *, max_bytes: int = DEFAULT_MAX_BYTES
) -> dict[str, Any]:
    """Decode a payload into a JSON object, or raise `InvalidRecord`."""
    if raw is None or len(raw) == 0:
        raise InvalidRecord(Reason.EMPTY, "payload is empty, expected a JSON object")
    size = raw.nbytes if isinstance(raw, memoryview) else len(raw)
    if size > max_bytes:
        raise InvalidRecord(Reason.TOO_LARGE, f"payload is {size} bytes, max {max_bytes}")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as err:
        # orjson also rejects bad UTF-8; tell the two apart for a useful reason.
        try:
            bytes(raw).decode("utf-8")
        except UnicodeDecodeError as bad:
            byte = bytes(raw)[bad.start]
            raise InvalidRecord(
                Reason.NOT_UTF8, f"invalid UTF-8 byte 0x{byte:02x} at offset {bad.start}"
            ) from None
        raise InvalidRecord(Reason.NOT_JSON, str(err)) from None
    if not isinstance(obj, dict):
        raise InvalidRecord(
            Reason.NOT_OBJECT, f"top-level value is {json_type(obj)}, expected object"
        )
    return obj


def read_fields(obj: Mapping[str, Any], fields: tuple[Field, ...]) -> dict[str, Any]:
    """Type-check and convert every contract field; unknown keys are ignored.

    Ignoring unknown keys lets producers add fields before consumers know them.
    """
    missing = [f.name for f in fields if f.name not in obj]
    if missing:
        raise InvalidRecord(Reason.MISSING_FIELD, f"missing {', '.join(missing)}")
    return {f.name: read_value(f, obj[f.name]) for f in fields}


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
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad_type(field, value)
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidRecord(Reason.BAD_AMOUNT, f"{field.name}={value} must be finite")
    # repr() is the shortest text that round-trips the double, i.e. the JSON text as
    # written whenever it had <= 15 significant digits.
    number = Decimal(value) if isinstance(value, int) else Decimal(repr(value))
    exponent = int(number.as_tuple().exponent)  # an int: the number is finite
    if exponent < -field.scale:
        raise InvalidRecord(
            Reason.BAD_AMOUNT,
            f"{field.name}={number} has more than {field.scale} decimals",
        )
    int_digits = min(field.precision, MAX_EXACT_DIGITS) - field.scale
    if number != 0 and number.adjusted() >= int_digits:
        raise InvalidRecord(
            Reason.BAD_AMOUNT,
            f"{field.name}={number} must be < {10**int_digits} in absolute value",
        )
    return number.quantize(Decimal(1).scaleb(-field.scale))


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
        return datetime.fromisoformat(value).astimezone(UTC)
    except (ValueError, OverflowError) as err:
        raise InvalidRecord(Reason.BAD_TIMESTAMP, f"{field.name}={show(value)}: {err}") from None


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
