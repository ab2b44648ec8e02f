"""Field definitions: the vocabulary every contract (Transaction, Alert) is written in.

A contract is a tuple of `Field`s. JSON validation (`codec`), the Spark `StructType`
(`spark`) and the PostgreSQL DDL (`sql`) are all derived from that tuple, so renaming or
retyping a field happens in exactly one place. This module also defines the error type
raised for bad input and its stable reason tokens (metric labels, DLQ `error` header).

`Reason` is the one list of reason tokens: services label metrics and DLQ headers with
it, so a new rule needs a new member here (and a line in libs/schemas/README.md), never
an ad-hoc string. `show()` renders offending values for error details: it never raises
and its cost is bounded by `limit`, whatever the value (deeply nested, huge, surrogates,
control characters), because it runs on exactly the inputs that are hostile.
"""

from __future__ import annotations

import enum
import json
import math
import unicodedata
from dataclasses import dataclass
from decimal import Decimal

# An IEEE double (what orjson parses JSON numbers into) carries 15 significant decimal
# digits exactly, so a JSON amount is exact only up to this many digits.
MAX_EXACT_DIGITS = 15


class Kind(enum.Enum):
    """Logical type of a field; each representation maps it to its own type."""

    STRING = "string"
    INT = "integer"  # 32-bit signed, like SQL `integer` and Spark `IntegerType`
    BOOL = "boolean"
    DECIMAL = "number"  # exact decimal with a fixed scale (money)
    TIMESTAMP = "ISO-8601 timestamp with zone"
    STRING_LIST = "array of strings"


_SQL_TYPES: dict[Kind, str] = {
    Kind.STRING: "text",
    Kind.INT: "integer",
    Kind.BOOL: "boolean",
    Kind.TIMESTAMP: "timestamptz",
    Kind.STRING_LIST: "text[]",
}


@dataclass(frozen=True, slots=True)
class Field:
    """One field of a contract.

    `precision`/`scale` apply to DECIMAL fields only (same meaning as SQL `numeric(p, s)`
    and Spark `DecimalType(p, s)`). `max_length` (characters, 0: no limit) and
    `no_controls` (refuse Unicode Cc/Cf characters and lone surrogates) apply to STRING
    fields only; the codec enforces them before any contract rule.
    """

    name: str
    kind: Kind
    doc: str
    nullable: bool = False
    precision: int = 0
    scale: int = 0
    max_length: int = 0
    no_controls: bool = False

    def __post_init__(self) -> None:
        if not self.name.isidentifier() or self.name != self.name.lower():
            raise ValueError(f"field name {self.name!r} must be a lower-case identifier")
        if self.kind is Kind.DECIMAL:
            if not 0 <= self.scale < self.precision <= 38:
                raise ValueError(
                    f"field {self.name}: decimal({self.precision}, {self.scale}) "
                    "needs 0 <= scale < precision <= 38"
                )
        elif self.precision or self.scale:
            raise ValueError(f"field {self.name}: precision/scale only apply to DECIMAL")
        if (self.max_length or self.no_controls) and self.kind is not Kind.STRING:
            raise ValueError(f"field {self.name}: max_length/no_controls only apply to STRING")
        if self.max_length < 0:
            raise ValueError(f"field {self.name}: max_length must be >= 0")
        if "\n" in self.doc:
            raise ValueError(f"field {self.name}: doc must be a single line")

    @property
    def sql_type(self) -> str:
        """PostgreSQL column type."""
        if self.kind is Kind.DECIMAL:
            return f"numeric({self.precision},{self.scale})"
        return _SQL_TYPES[self.kind]


def field_names(fields: tuple[Field, ...]) -> tuple[str, ...]:
    """Names in contract order."""
    return tuple(f.name for f in fields)


def check_record_class(cls: type, fields: tuple[Field, ...]) -> None:
    """Fail at import time if a record dataclass drifts from its field tuple."""
    declared = tuple(getattr(cls, "__dataclass_fields__", {}))
    expected = field_names(fields)
    if declared != expected:
        raise TypeError(f"{cls.__name__} fields {declared} != contract fields {expected}")


class Reason(enum.StrEnum):
    """Stable machine tokens for `InvalidRecord.reason` (metric label, DLQ header).

    In the order the checks run (codec, then each contract's rules in field order);
    libs/schemas/README.md has the table with every limit.
    """

    EMPTY = "empty"  # no payload at all (None or zero bytes, e.g. a tombstone)
    TOO_LARGE = "too_large"  # payload over max_bytes (64 KiB transactions, 1 MiB alerts)
    NOT_UTF8 = "not_utf8"  # invalid UTF-8, or not bytes at all
    NOT_JSON = "not_json"  # not strict JSON (incl. NaN, Infinity, 1e400, a BOM, bad escapes)
    TOO_DEEP = "too_deep"  # arrays/objects nested deeper than codec.MAX_DEPTH
    NOT_OBJECT = "not_object"  # valid JSON whose top level is not an object
    DUPLICATE_KEY = "duplicate_key"  # a key twice in one object (at any depth)
    MISSING_FIELD = "missing_field"
    BAD_TYPE = "bad_type"
    TOO_LONG = "too_long"  # a string over its field's max_length
    CONTROL_CHARACTER = "control_character"  # Cc/Cf character or lone surrogate
    EMPTY_FIELD = "empty_field"
    BAD_AMOUNT = "bad_amount"
    BAD_CURRENCY = "bad_currency"  # not an ISO 4217 code
    BAD_COUNTRY = "bad_country"  # not an ISO 3166-1 alpha-2 code
    BAD_TIMESTAMP = "bad_timestamp"  # not ISO-8601 with zone, impossible, before 2000
    FUTURE_EVENT_TIME = "future_event_time"  # event_time beyond now + allowed skew
    BAD_UUID = "bad_uuid"
    BAD_VALUE = "bad_value"  # any other range/consistency rule (e.g. a negative count)
    # A decoder raised something other than InvalidRecord: a bug of ours, never expected
    # (the parsers are total), but one record must not stop a service, so it is a dead
    # letter with the exception in its detail.
    INTERNAL_ERROR = "internal_error"


class InvalidRecord(ValueError):
    """A payload that does not satisfy its contract.

    `reason` is a `Reason` token; `detail` names the offending value and what was
    expected, e.g. ``amount=-5 must be > 0``.
    """

    def __init__(self, reason: str, detail: str) -> None:
        # Both go to Exception.args so the error pickles (Spark ships it between processes).
        super().__init__(reason, detail)
        self.reason = str(reason)
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}"

    @classmethod
    def unexpected(cls, err: BaseException) -> InvalidRecord:
        """An `internal_error` for an exception a decoder was never meant to raise."""
        return cls(Reason.INTERNAL_ERROR, f"{type(err).__name__}: {show(str(err))}")


# Characters `show` escapes as \uXXXX: they would corrupt a log line or a header
# (controls, format characters such as bidi overrides, line separators) or make the text
# unencodable as UTF-8 (lone surrogates).
_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def show(value: object, limit: int = 80) -> str:
    """An offending value as JSON-like text of at most `limit` characters.

    Total and bounded: it never raises, and it looks at no more of the value than the
    `limit` characters it can print (a list nested 1,000 deep or a 60 KiB string costs
    the same as a short one). The text is always valid UTF-8: control and format
    characters and lone surrogates appear as `\\uXXXX` escapes.
    """
    limit = max(limit, 4)
    parts: list[str] = []
    try:
        _render(value, parts, [limit + 1])
        text = "".join(parts)
    except Exception:  # a detail must never turn into a second error
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _render(value: object, parts: list[str], budget: list[int]) -> None:
    """Append JSON-like text for `value` to `parts` until `budget[0]` characters are used."""
    if budget[0] <= 0:
        return
    if value is None:
        text = "null"
    elif value is True:
        text = "true"
    elif value is False:
        text = "false"
    elif isinstance(value, str):
        text = _quote(value[: budget[0]])
    elif isinstance(value, int):
        # str() of an int over 4,300 digits raises; such a value is shown by its size.
        text = (
            str(value) if value.bit_length() < 1000 else f"<integer of {value.bit_length()} bits>"
        )
    elif isinstance(value, float):
        text = repr(value) if math.isfinite(value) else _NON_FINITE[repr(value)]
    elif isinstance(value, Decimal):
        text = str(value)
    elif isinstance(value, list | tuple | dict):
        _render_container(value, parts, budget)
        return
    elif isinstance(value, bytes | bytearray):
        text = repr(bytes(value[: budget[0]]))
    else:
        text = repr(value)
    text = text[: budget[0]]
    parts.append(text)
    budget[0] -= len(text)


def _render_container(
    value: list[object] | tuple[object, ...] | dict[object, object],
    parts: list[str],
    budget: list[int],
) -> None:
    opening, closing = ("{", "}") if isinstance(value, dict) else ("[", "]")
    parts.append(opening)
    budget[0] -= 1
    items = iter(value.items()) if isinstance(value, dict) else iter(value)
    first = True
    for item in items:
        if budget[0] <= 0:
            return  # the caller truncates; no need to look at more items
        if not first:
            parts.append(", ")
            budget[0] -= 2
        first = False
        if isinstance(value, dict):
            key, item = item  # type: ignore[misc]
            _render(key, parts, budget)
            parts.append(": ")
            budget[0] -= 2
        _render(item, parts, budget)
    parts.append(closing)
    budget[0] -= 1


_NON_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def _quote(text: str) -> str:
    """`text` as a JSON string literal, with unsafe characters escaped."""
    if text.isprintable():
        return json.dumps(text, ensure_ascii=False)
    return '"' + "".join(_escape(char) for char in text) + '"'


def _escape(char: str) -> str:
    if char in '"\\':
        return "\\" + char
    if unicodedata.category(char) in _ESCAPED_CATEGORIES:
        return f"\\u{ord(char):04x}" if ord(char) <= 0xFFFF else f"\\U{ord(char):08x}"
    return char


def control_character(text: str) -> tuple[int, str] | None:
    """(index, character) of the first Unicode Cc/Cf character or lone surrogate, or None."""
    if text.isprintable():  # fast path: no Cc, Cf or Cs character at all
        return None
    for index, char in enumerate(text):
        if unicodedata.category(char) in _CONTROL_CATEGORIES:
            return index, char
    return None


# Control (Cc: NUL, tab, newline, C1), format (Cf: bidi overrides, zero-width, BOM) and
# surrogate (Cs, only lone ones can occur in a Python str) characters.
_CONTROL_CATEGORIES = frozenset({"Cc", "Cf", "Cs"})
