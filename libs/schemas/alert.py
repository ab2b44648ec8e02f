"""Alert contract: the value on Kafka `fraud_alerts` and a row of PostgreSQL `alerts`.

One alert describes one (user_id, window_start) window that scored at or above the alert
threshold, plus what explains it (contributing transactions, rule reasons, rule version).

Versioning: the detector emits an alert again whenever the window's aggregates change,
and uses `txn_count` as `version`. Within a window the aggregates only grow with each new
transaction, so a larger `txn_count` is always the newer state; the sink's upsert keeps
the row with the highest version and ignores older or repeated ones (idempotent replay).

`parse_alert` is total like `parse_transaction` (any bytes: an `Alert` or `InvalidRecord`)
and applies the same payload checks (`codec`: empty, too_large at ALERT_MAX_BYTES,
not_utf8, too_deep, not_json, not_object, duplicate_key, then per field missing_field,
bad_type, too_long, control_character, bad_timestamp, bad_amount, bad_value). user_id has
the transaction's limits (at most `USER_ID_MAX_LENGTH` = 128 characters, no Cc/Cf
characters or lone surrogates), so the sink refuses such an alert itself instead of
PostgreSQL (NUL in text) or the (user_id, window_start) btree index (entry size).
Then: empty_field (blank user_id), bad_value (window_end <= window_start, negative
counters, version < 1) and bad_amount (negative amounts).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from libs.schemas import codec
from libs.schemas.fields import Field, InvalidRecord, Kind, Reason, check_record_class, show
from libs.schemas.transaction import AMOUNT_PRECISION, AMOUNT_SCALE, USER_ID_MAX_LENGTH

# Alerts carry transaction ids, so they can be far larger than one transaction. The bound
# stays below librdkafka's default message.max.bytes (1,000,000) with room for a key and
# headers, so an alert the sink refuses still fits the DLQ whole (libs/dlq's default
# value limit is this same number).
ALERT_MAX_BYTES = 900_000

# Spark's sum() of decimal(p, s) is decimal(p + 10, s): the detector needs no cast.
TOTAL_PRECISION = AMOUNT_PRECISION + 10

ALERT_FIELDS: tuple[Field, ...] = (
    Field(
        "user_id",
        Kind.STRING,
        "Card holder the window belongs to (key part 1).",
        max_length=USER_ID_MAX_LENGTH,
        no_controls=True,
    ),
    Field("window_start", Kind.TIMESTAMP, "Event-time window start, inclusive (key part 2)."),
    Field("window_end", Kind.TIMESTAMP, "Event-time window end, exclusive."),
    Field("txn_count", Kind.INT, "Transactions in the window."),
    Field("distinct_countries", Kind.INT, "Distinct transaction countries in the window."),
    Field(
        "max_amount",
        Kind.DECIMAL,
        "Largest amount in the window.",
        precision=AMOUNT_PRECISION,
        scale=AMOUNT_SCALE,
    ),
    Field(
        "total_amount",
        Kind.DECIMAL,
        "Sum of amounts in the window.",
        precision=TOTAL_PRECISION,
        scale=AMOUNT_SCALE,
    ),
    Field("high_value", Kind.BOOL, "Rule flag: max_amount above the high-value amount."),
    Field("location_change", Kind.BOOL, "Rule flag: enough distinct countries."),
    Field("high_frequency", Kind.BOOL, "Rule flag: enough transactions."),
    Field("fraud_score", Kind.INT, "Weighted sum of the rule flags."),
    Field("transaction_ids", Kind.STRING_LIST, "Contributing transaction ids."),
    Field("reasons", Kind.STRING_LIST, "One human-readable line per triggered rule."),
    Field("rule_version", Kind.STRING, "Version of the rule set that scored the window."),
    Field("detected_at", Kind.TIMESTAMP, "Processing time this alert version was produced."),
    Field(
        "last_event_time",
        Kind.TIMESTAMP,
        "Event time of the newest contributing transaction (end-to-end latency).",
    ),
    Field("version", Kind.INT, "Grows per (user_id, window_start); the detector uses txn_count."),
)

_EXACT_KEYS = codec.decimal_names(ALERT_FIELDS)

# Counters that cannot be negative; `version` starts at 1 (a window has >= 1 transaction).
_NON_NEGATIVE = ("txn_count", "distinct_countries", "fraud_score")


@dataclass(frozen=True, slots=True)
class Alert:
    """A validated alert. Datetimes are timezone-aware UTC; lists are tuples (frozen)."""

    user_id: str
    window_start: datetime
    window_end: datetime
    txn_count: int
    distinct_countries: int
    max_amount: Decimal
    total_amount: Decimal
    high_value: bool
    location_change: bool
    high_frequency: bool
    fraud_score: int
    transaction_ids: tuple[str, ...]
    reasons: tuple[str, ...]
    rule_version: str
    detected_at: datetime
    last_event_time: datetime
    version: int


check_record_class(Alert, ALERT_FIELDS)


def alert_from_dict(obj: Mapping[str, Any]) -> Alert:
    """Validate an already-decoded JSON object (see `parse_alert`)."""
    v = codec.read_fields(obj, ALERT_FIELDS)
    if not v["user_id"].strip():
        raise InvalidRecord(Reason.EMPTY_FIELD, f"user_id={show(v['user_id'])} must be non-empty")
    if v["window_end"] <= v["window_start"]:
        raise InvalidRecord(
            Reason.BAD_VALUE,
            f"window_end={codec.format_timestamp(v['window_end'])} must be after "
            f"window_start={codec.format_timestamp(v['window_start'])}",
        )
    for name in _NON_NEGATIVE:
        if v[name] < 0:
            raise InvalidRecord(Reason.BAD_VALUE, f"{name}={v[name]} must be >= 0")
    if v["version"] < 1:
        raise InvalidRecord(Reason.BAD_VALUE, f"version={v['version']} must be >= 1")
    for name in ("max_amount", "total_amount"):
        if v[name] < 0:
            raise InvalidRecord(Reason.BAD_AMOUNT, f"{name}={v[name]} must be >= 0")
    return Alert(**v)


def parse_alert(raw: bytes, *, max_bytes: int = ALERT_MAX_BYTES) -> Alert:
    """Validate a `fraud_alerts` message value; raise `InvalidRecord(reason, detail)` if bad."""
    return alert_from_dict(codec.load_object(raw, max_bytes=max_bytes, exact_keys=_EXACT_KEYS))


def alert_to_json(alert: Alert) -> bytes:
    """UTF-8 JSON in contract field order (timestamps as ISO-8601 `Z`, amounts as numbers)."""
    return codec.dump_record(alert, ALERT_FIELDS)
