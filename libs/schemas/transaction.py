"""Transaction contract (schema v1): the value of every message on Kafka `transactions`.

`TRANSACTION_FIELDS` is the single definition; the dataclass, JSON validation, Spark
struct (`libs.schemas.spark`) all follow it. `parse_transaction` is the gate between
untrusted bytes and the pipeline: anything it refuses goes to `transactions.dlq` with
`InvalidRecord.reason` as the `error` header. It is total: whatever the bytes, it returns
a `Transaction` or raises `InvalidRecord`, never anything else (a detector that crashed
on one record would stop the whole stream).

Checks, in order; the first failing one is reported. Payload and per-field checks come
from `codec` (empty, too_large, not_utf8, too_deep, not_json, not_object, duplicate_key,
then for each field in contract order missing_field, bad_type, too_long,
control_character, bad_timestamp, bad_amount); then these rules, in field order:

| reason | rule |
| --- | --- |
| bad_uuid | transaction_id is not 8-4-4-4-12 hex digits |
| empty_field | user_id is empty or whitespace |
| bad_amount | amount <= 0 |
| bad_currency | currency is not an ISO 4217 code (pycountry; XTS and XXX are not currencies) |
| bad_country | country is not an assigned ISO 3166-1 alpha-2 code (pycountry) |
| future_event_time | event_time is more than `max_future_skew` (5 min) ahead of `now` |

String limits (characters; at most 4 UTF-8 bytes each, so user_id fits the alerts
table's btree index on (user_id, window_start), whose entries must stay under ~2,700
bytes): transaction_id 64, user_id 128, merchant 256, merchant_category 64. None of
them may hold a Unicode control or format character (Cc/Cf: NUL, tab, newline, bidi
overrides, zero-width characters) or a lone surrogate: they end up in log lines, DLQ
headers, metric labels and PostgreSQL text, where such characters corrupt or fail.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pycountry

from libs.schemas import codec
from libs.schemas.codec import DEFAULT_MAX_BYTES
from libs.schemas.fields import Field, InvalidRecord, Kind, Reason, check_record_class, show

AMOUNT_PRECISION, AMOUNT_SCALE = 15, 2

# String maxima in characters (see the module docstring for why these values).
TRANSACTION_ID_MAX_LENGTH = 64
USER_ID_MAX_LENGTH = 128
MERCHANT_MAX_LENGTH = 256
MERCHANT_CATEGORY_MAX_LENGTH = 64

# How far ahead of the validator's clock an event_time may be: producers' clocks drift,
# but an event from the future would move the detector's watermark past wall clock and
# make every on-time event "late".
DEFAULT_MAX_FUTURE_SKEW = timedelta(minutes=5)

# Built once at import from a maintained data package (pycountry tracks ISO 3166-1 and
# ISO 4217); a set lookup per record. XTS (testing) and XXX (no currency) are codes, but
# no card transaction is in them.
ISO_COUNTRIES: frozenset[str] = frozenset(c.alpha_2 for c in pycountry.countries)
ISO_CURRENCIES: frozenset[str] = frozenset(
    c.alpha_3 for c in pycountry.currencies if c.alpha_3 not in {"XTS", "XXX"}
)

TRANSACTION_FIELDS: tuple[Field, ...] = (
    Field(
        "transaction_id",
        Kind.STRING,
        "Unique id, canonical UUID text (8-4-4-4-12 hex).",
        max_length=TRANSACTION_ID_MAX_LENGTH,
        no_controls=True,
    ),
    Field(
        "user_id",
        Kind.STRING,
        "Card holder; the Kafka key and the aggregation key.",
        max_length=USER_ID_MAX_LENGTH,
        no_controls=True,
    ),
    Field(
        "amount",
        Kind.DECIMAL,
        "Amount in `currency`, > 0, at most 2 decimals.",
        precision=AMOUNT_PRECISION,
        scale=AMOUNT_SCALE,
    ),
    Field("currency", Kind.STRING, "ISO 4217 code, 3 upper-case letters."),
    Field(
        "merchant",
        Kind.STRING,
        "Merchant name as shown on the statement.",
        max_length=MERCHANT_MAX_LENGTH,
        no_controls=True,
    ),
    Field(
        "merchant_category",
        Kind.STRING,
        "e.g. grocery, travel, electronics, gambling.",
        max_length=MERCHANT_CATEGORY_MAX_LENGTH,
        no_controls=True,
    ),
    Field("country", Kind.STRING, "ISO 3166-1 alpha-2 country of the transaction."),
    Field("event_time", Kind.TIMESTAMP, "When the card was used; drives event-time windows."),
)


@dataclass(frozen=True, slots=True)
class Transaction:
    """A validated transaction. `event_time` is timezone-aware UTC."""

    transaction_id: str
    user_id: str
    amount: Decimal
    currency: str
    merchant: str
    merchant_category: str
    country: str
    event_time: datetime


check_record_class(Transaction, TRANSACTION_FIELDS)

_EXACT_KEYS = codec.decimal_names(TRANSACTION_FIELDS)
_UUID_RE = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
_CURRENCY_RE = re.compile(r"[A-Z]{3}")
_COUNTRY_RE = re.compile(r"[A-Z]{2}")


def transaction_from_dict(
    obj: Mapping[str, Any],
    *,
    now: datetime | None = None,
    max_future_skew: timedelta = DEFAULT_MAX_FUTURE_SKEW,
) -> Transaction:
    """Validate an already-decoded JSON object (see `parse_transaction`)."""
    v = codec.read_fields(obj, TRANSACTION_FIELDS)
    if not _UUID_RE.fullmatch(v["transaction_id"]):
        raise InvalidRecord(
            Reason.BAD_UUID,
            f"transaction_id={show(v['transaction_id'])} is not a UUID "
            "(expected 8-4-4-4-12 hex digits)",
        )
    if not v["user_id"].strip():
        raise InvalidRecord(Reason.EMPTY_FIELD, f"user_id={show(v['user_id'])} must be non-empty")
    if v["amount"] <= 0:
        raise InvalidRecord(Reason.BAD_AMOUNT, f"amount={v['amount']} must be > 0")
    if v["currency"] not in ISO_CURRENCIES:
        raise InvalidRecord(Reason.BAD_CURRENCY, _not_a_code("currency", v["currency"]))
    if v["country"] not in ISO_COUNTRIES:
        raise InvalidRecord(Reason.BAD_COUNTRY, _not_a_code("country", v["country"]))
    if now is None:
        now = datetime.now(UTC)
    elif now.utcoffset() is None:
        raise ValueError(f"now={now!r} is naive, expected a timezone-aware datetime")
    if v["event_time"] > now + max_future_skew:
        ahead = v["event_time"] - now
        raise InvalidRecord(
            Reason.FUTURE_EVENT_TIME,
            f"event_time={codec.format_timestamp(v['event_time'])} is {ahead} ahead of "
            f"now={codec.format_timestamp(now)}, max {max_future_skew}",
        )
    return Transaction(**v)


def _not_a_code(name: str, value: str) -> str:
    """Detail for a country/currency refusal: wrong shape, or well-formed but unassigned."""
    if name == "currency":
        shape, letters, standard = _CURRENCY_RE, 3, "ISO 4217"
    else:
        shape, letters, standard = _COUNTRY_RE, 2, "ISO 3166-1 alpha-2"
    if not shape.fullmatch(value):
        return f"{name}={show(value)} must be {letters} upper-case letters ({standard})"
    return f"{name}={show(value)} is not an {standard} code"


def parse_transaction(
    raw: bytes,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    now: datetime | None = None,
    max_future_skew: timedelta = DEFAULT_MAX_FUTURE_SKEW,
) -> Transaction:
    """Validate a Kafka message value; raise `InvalidRecord(reason, detail)` if bad.

    `now` (default: the current UTC time) is the clock event_time is checked against:
    the detector passes its own so that one batch is judged against one instant.
    """
    obj = codec.load_object(raw, max_bytes=max_bytes, exact_keys=_EXACT_KEYS)
    return transaction_from_dict(obj, now=now, max_future_skew=max_future_skew)


def transaction_to_json(transaction: Transaction) -> bytes:
    """UTF-8 JSON in contract field order; `parse_transaction` reads it back equal."""
    return codec.dump_record(transaction, TRANSACTION_FIELDS)
