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
the source-partition/offset headers identify a repeat). The publisher is libs/dlq's, shared
with the sink: a value too large for the producer is cut (with its size and SHA-256 in
headers), and a flush that cannot finish in time fails the task cleanly, leaving nothing
queued for a later task.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import ClassVar

import pyarrow as pa

from libs.dlq.dlq import (
    DEFAULT_MAX_VALUE_BYTES,
    DeadLetter,
    DeadLetterPublisher,
    DlqConfig,
)
from libs.dlq.dlq import dlq_headers as headers_of
from libs.schemas.codec import DEFAULT_MAX_BYTES
from libs.schemas.fields import InvalidRecord
from libs.schemas.transaction import DEFAULT_MAX_FUTURE_SKEW, parse_transaction

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
    flush_timeout_s: float = 60.0  # how long a batch's dead letters may take, then it fails
    max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES  # longer values are cut (libs/dlq)
    # librdkafka TLS/SASL settings (libs/kafka/security), as pairs so the target stays
    # hashable; they hold the password, hence kept out of repr.
    client_options: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    def config(self) -> DlqConfig:
        return DlqConfig(
            self.bootstrap,
            self.topic,
            deadline_s=self.flush_timeout_s,
            max_value_bytes=self.max_value_bytes,
        )


def dlq_headers(
    reason: str, detail: str, source_topic: str, partition: int, offset: int
) -> list[tuple[str, bytes]]:
    """docs/design.md's DLQ headers (plus `error-reason`, the bare token, for routing)."""
    return headers_of(DeadLetter(None, None, reason, detail, source_topic, partition, offset))


class _Publishers:
    """One publisher per Python worker process and target: Spark reuses workers between
    tasks, and a producer is worth keeping. Nothing of one task reaches the next: a flush
    either confirms every letter or purges them and drops its producer (libs/dlq), and a
    task that stopped between a send and its flush is purged when the next one starts."""

    _cache: ClassVar[dict[DeadLetters, DeadLetterPublisher]] = {}

    @classmethod
    def get(cls, target: DeadLetters) -> DeadLetterPublisher:
        publisher = cls._cache.get(target)
        if publisher is None:
            publisher = cls._cache[target] = DeadLetterPublisher(
                target.config(),
                producer_options={"client.id": "detector-dlq", **dict(target.client_options)},
            )
        if publisher.pending:
            publisher.abandon()
        return publisher


def validate_batches(
    batches: Iterator[pa.RecordBatch],
    max_bytes: int = DEFAULT_MAX_BYTES,
    dead_letters: DeadLetters | None = None,
    max_future_skew: timedelta = DEFAULT_MAX_FUTURE_SKEW,
) -> Iterator[pa.RecordBatch]:
    """For each batch of Kafka rows (key, value, partition, offset[, now_us]) yield one
    validated row per input row; refused rows are also published to `dead_letters` when
    given. An event_time more than `max_future_skew` ahead of `now_us` (the micro-batch's
    clock, epoch microseconds; without that column, this worker's clock) is refused as
    `future_event_time`."""
    publisher = _Publishers.get(dead_letters) if dead_letters else None
    try:
        yield from _validate(batches, max_bytes, dead_letters, publisher, max_future_skew)
    finally:
        if publisher is not None and publisher.pending:
            publisher.abandon()  # the task failed or stopped before its flush


def _validate(
    batches: Iterator[pa.RecordBatch],
    max_bytes: int,
    dead_letters: DeadLetters | None,
    publisher: DeadLetterPublisher | None,
    max_future_skew: timedelta,
) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        now = _batch_clock(batch)
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
                try:
                    txn = parse_transaction(
                        value, max_bytes=max_bytes, now=now, max_future_skew=max_future_skew
                    )
                except InvalidRecord:
                    raise
                except Exception as err:  # one record must never fail the task
                    raise InvalidRecord.unexpected(err) from err
            except InvalidRecord as bad:
                reason = str(bad.reason)
                reasons.append(reason)
                ids.append(None)
                users.append(None)
                cents.append(None)
                countries.append(None)
                times.append(None)
                if publisher is not None and dead_letters is not None:
                    source = dead_letters.source_topic
                    letter = DeadLetter(key, value, reason, bad.detail, source, partition, offset)
                    publisher.send(letter)
                continue
            reasons.append(None)
            ids.append(txn.transaction_id)
            users.append(txn.user_id)
            cents.append(int(txn.amount * 100))  # at most 2 decimals: exact
            countries.append(txn.country)
            delta = txn.event_time - _EPOCH
            times.append((delta.days * 86_400 + delta.seconds) * _EPOCH_US + delta.microseconds)
        if publisher is not None:
            publisher.flush()  # DlqError fails the task; Spark retries it
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


def _batch_clock(batch: pa.RecordBatch) -> datetime:
    """The instant event times are judged against: the batch's `now_us` (one value for a
    whole micro-batch), else the current UTC time."""
    if "now_us" in batch.schema.names and batch.num_rows:
        micros = batch.column("now_us")[0].as_py()
        if micros is not None:
            return _EPOCH + timedelta(microseconds=micros)
    return datetime.now(UTC)
