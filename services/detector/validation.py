"""Validation of raw Kafka records inside Spark, with libs/schemas' own parser, and the
dead-letter queue for what it refuses.

Why Python here: the contract's validator (`parse_transaction`) is the one source of truth
for what is a good transaction and why a bad one is bad; the DLQ reasons and the
end-to-end tests depend on Spark agreeing with it exactly. It runs through `mapInArrow`
(whole Arrow batches, one Python call per batch of thousands of rows), so the cost is a
tight loop over orjson, not a per-row UDF. Scoring stays in the JVM (libs/scoring).

Why the DLQ is written from here: a second streaming query just for bad records would read
and validate every record twice. Instead the validator publishes each refused record to
the DLQ as it finds it and flushes before the Spark task completes; a task that fails is
retried by Spark, so nothing is lost (like Spark's own Kafka sink, this is at-least-once:
the source-partition/offset headers identify a repeat).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import ClassVar

import pyarrow as pa

from libs.schemas.codec import DEFAULT_MAX_BYTES
from libs.schemas.fields import InvalidRecord
from libs.schemas.headers import (
    DLQ_ERROR_HEADER,
    DLQ_SOURCE_OFFSET_HEADER,
    DLQ_SOURCE_PARTITION_HEADER,
    DLQ_SOURCE_TOPIC_HEADER,
)
from libs.schemas.transaction import parse_transaction

# Spark schema (DDL) of what `validate_batches` yields: every input row, `error_reason`
# null for good ones. Amounts travel as cents and times as epoch microseconds: plain
# integers cross Arrow far faster than Python Decimal and datetime objects.
VALIDATED_DDL = (
    "partition INT, offset BIGINT, error_reason STRING, "
    "transaction_id STRING, user_id STRING, amount_cents BIGINT, country STRING, "
    "event_time_us BIGINT"
)

_SCHEMA = pa.schema(
    [
        ("partition", pa.int32()),
        ("offset", pa.int64()),
        ("error_reason", pa.string()),
        ("transaction_id", pa.string()),
        ("user_id", pa.string()),
        ("amount_cents", pa.int64()),
        ("country", pa.string()),
        ("event_time_us", pa.int64()),
    ]
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_US = 1_000_000


@dataclass(frozen=True)
class DeadLetters:
    """Where refused records go (the Kafka producer is made in each Python worker)."""

    bootstrap: str
    topic: str
    source_topic: str
    flush_timeout_s: float = 60.0


def dlq_headers(
    reason: str, detail: str, source_topic: str, partition: int, offset: int
) -> list[tuple[str, bytes]]:
    """DESIGN.md's DLQ headers (plus `error-reason`, the bare token, for routing)."""
    return [
        (DLQ_ERROR_HEADER, f"{reason}: {detail}".encode()),
        ("error-reason", reason.encode()),
        (DLQ_SOURCE_TOPIC_HEADER, source_topic.encode()),
        (DLQ_SOURCE_PARTITION_HEADER, str(partition).encode()),
        (DLQ_SOURCE_OFFSET_HEADER, str(offset).encode()),
    ]


class _Publisher:
    """A confluent-kafka producer that raises if anything it was given is not delivered."""

    _cache: ClassVar[dict[DeadLetters, _Publisher]] = {}

    def __init__(self, target: DeadLetters) -> None:
        from confluent_kafka import Producer

        self.target = target
        self.errors: list[str] = []
        self.producer = Producer(
            {
                "bootstrap.servers": target.bootstrap,
                "enable.idempotence": True,
                "linger.ms": 5,
            }
        )

    @classmethod
    def get(cls, target: DeadLetters) -> _Publisher:
        # One producer per Python worker process (Spark reuses workers between tasks).
        if target not in cls._cache:
            cls._cache[target] = cls(target)
        return cls._cache[target]

    def send(self, key: bytes | None, value: bytes | None, headers: list) -> None:
        def on_delivery(err, _msg) -> None:
            if err is not None:
                self.errors.append(str(err))

        while True:
            try:
                self.producer.produce(
                    self.target.topic,
                    key=key,
                    value=value,
                    headers=headers,
                    on_delivery=on_delivery,
                )
                return
            except BufferError:
                self.producer.poll(0.1)

    def flush(self) -> None:
        """Deliver everything or fail the Spark task (which Spark then retries)."""
        remaining = self.producer.flush(self.target.flush_timeout_s)
        errors, self.errors = self.errors, []
        if remaining or errors:
            raise RuntimeError(
                f"DLQ {self.target.topic}: {remaining} records undelivered, errors {errors[:3]}"
            )


def validate_batches(
    batches: Iterator[pa.RecordBatch],
    max_bytes: int = DEFAULT_MAX_BYTES,
    dead_letters: DeadLetters | None = None,
) -> Iterator[pa.RecordBatch]:
    """For each batch of Kafka rows (key, value, partition, offset) yield one validated row
    per input row; refused rows are also published to `dead_letters` when given."""
    publisher = _Publisher.get(dead_letters) if dead_letters else None
    for batch in batches:
        keys = batch.column("key").to_pylist()
        values = batch.column("value").to_pylist()
        partitions = batch.column("partition").to_pylist()
        offsets = batch.column("offset").to_pylist()
        reasons: list[str | None] = []
        ids: list[str | None] = []
        users: list[str | None] = []
        cents: list[int | None] = []
        countries: list[str | None] = []
        times: list[int | None] = []
        for key, value, partition, offset in zip(keys, values, partitions, offsets, strict=True):
            try:
                txn = parse_transaction(value, max_bytes=max_bytes)
            except InvalidRecord as bad:
                reason = str(bad.reason)
                reasons.append(reason)
                ids.append(None)
                users.append(None)
                cents.append(None)
                countries.append(None)
                times.append(None)
                if publisher is not None:
                    source = dead_letters.source_topic
                    headers = dlq_headers(reason, bad.detail, source, partition, offset)
                    publisher.send(key, value, headers)
                continue
            reasons.append(None)
            ids.append(txn.transaction_id)
            users.append(txn.user_id)
            cents.append(int(txn.amount * 100))  # at most 2 decimals: exact
            countries.append(txn.country)
            delta = txn.event_time - _EPOCH
            times.append((delta.days * 86_400 + delta.seconds) * _EPOCH_US + delta.microseconds)
        if publisher is not None:
            publisher.flush()
        yield pa.RecordBatch.from_arrays(
            [
                batch.column("partition"),
                batch.column("offset"),
                pa.array(reasons, pa.string()),
                pa.array(ids, pa.string()),
                pa.array(users, pa.string()),
                pa.array(cents, pa.int64()),
                pa.array(countries, pa.string()),
                pa.array(times, pa.int64()),
            ],
            schema=_SCHEMA,
        )
