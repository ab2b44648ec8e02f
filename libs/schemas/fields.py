"""Field definitions: the vocabulary every contract (Transaction, Alert) is written in.

A contract is a tuple of `Field`s. JSON validation (`codec`), the Spark `StructType`
(`spark`) and the PostgreSQL DDL (`sql`) are all derived from that tuple, so renaming or
retyping a field happens in exactly one place. This module also defines the error type
raised for bad input and its stable reason tokens (metric labels, DLQ `error` header).
"""

from __future__ import annotations

import enum
import json
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
    and Spark `DecimalType(p, s)`).
    """

    name: str
    kind: Kind
    doc: str
    nullable: bool = False
    precision: int = 0
    scale: int = 0

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
    """Stable machine tokens for `InvalidRecord.reason` (metric label, DLQ header)."""

    EMPTY = "empty"  # no payload at all (None or zero bytes, e.g. a tombstone)
    TOO_LARGE = "too_large"
    NOT_UTF8 = "not_utf8"
    NOT_JSON = "not_json"
    NOT_OBJECT = "not_object"
    MISSING_FIELD = "missing_field"
    BAD_TYPE = "bad_type"
    EMPTY_FIELD = "empty_field"
    BAD_AMOUNT = "bad_amount"
    BAD_CURRENCY = "bad_currency"
    BAD_COUNTRY = "bad_country"
    BAD_TIMESTAMP = "bad_timestamp"
    BAD_UUID = "bad_uuid"
    BAD_VALUE = "bad_value"  # any other range/consistency rule (e.g. a negative count)


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


def show(value: object, limit: int = 80) -> str:
    """An offending value as JSON-like text, shortened so a hostile payload cannot flood logs."""
    if isinstance(value, Decimal):
        text = str(value)
    else:
        try:
            text = json.dumps(value, ensure_ascii=False)
        except (TypeError, ValueError):
            text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
