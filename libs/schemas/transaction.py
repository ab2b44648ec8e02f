"""Transaction contract (schema v1): the value of every message on Kafka `transactions`.

`TRANSACTION_FIELDS` is the single definition; the dataclass, JSON validation, Spark
struct (`libs.schemas.spark`) all follow it. `parse_transaction` is the gate between
untrusted bytes and the pipeline: anything it refuses goes to `transactions.dlq` with
`InvalidRecord.reason` as the `error` header.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from libs.schemas import codec
from libs.schemas.codec import DEFAULT_MAX_BYTES
from libs.schemas.fields import Field, InvalidRecord, Kind, Reason, check_record_class, show

AMOUNT_PRECISION, AMOUNT_SCALE = 15, 2

TRANSACTION_FIELDS: tuple[Field, ...] = (
    Field("transaction_id", Kind.STRING, "Unique id, canonical UUID text (8-4-4-4-12 hex)."),
    Field("user_id", Kind.STRING, "Card holder; the Kafka key and the aggregation key."),
    Field(
        "amount",
        Kind.DECIMAL,
        "Amount in `currency`, > 0, at most 2 decimals.",
        precision=AMOUNT_PRECISION,
        scale=AMOUNT_SCALE,
    ),
    Field("currency", Kind.STRING, "ISO 4217 code, 3 upper-case letters."),
    Field("merchant", Kind.STRING, "Merchant name as shown on the statement."),
    Field("merchant_category", Kind.STRING, "e.g. grocery, travel, electronics, gambling."),
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

_UUID_RE = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
_CURRENCY_RE = re.compile(r"[A-Z]{3}")
_COUNTRY_RE = re.compile(r"[A-Z]{2}")


def transaction_from_dict(obj: Mapping[str, Any]) -> Transaction:
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
    if not _CURRENCY_RE.fullmatch(v["currency"]):
        raise InvalidRecord(
            Reason.BAD_CURRENCY,
            f"currency={show(v['currency'])} must be 3 upper-case letters (ISO 4217)",
        )
    if not _COUNTRY_RE.fullmatch(v["country"]):
        raise InvalidRecord(
            Reason.BAD_COUNTRY,
            f"country={show(v['country'])} must be 2 upper-case letters (ISO 3166-1 alpha-2)",
        )
    return Transaction(**v)


def parse_transaction(raw: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Transaction:
    """Validate a Kafka message value; raise `InvalidRecord(reason, detail)` if bad."""
    return transaction_from_dict(codec.load_object(raw, max_bytes=max_bytes))


def transaction_to_json(transaction: Transaction) -> bytes:
    """UTF-8 JSON in contract field order; `parse_transaction` reads it back equal."""
    return codec.dump_record(transaction, TRANSACTION_FIELDS)
