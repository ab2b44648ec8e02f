"""One poll's worth of `fraud_alerts` messages -> one database write and one offset commit.

Why a module of its own: the rules that make the sink effectively exactly-once are pure
and deserve their own tests, apart from Kafka and PostgreSQL:
- which alert of a batch wins for a key (the highest version; PostgreSQL refuses to touch
  one row twice in a single INSERT .. ON CONFLICT, so the batch must be deduplicated);
- which messages are bad input (they go to the DLQ, they never stop the batch);
- which offsets a batch may commit (each partition's last offset + 1, bad ones included).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from libs.schemas.alert import Alert, parse_alert
from libs.schemas.fields import InvalidRecord

TopicPartition = tuple[str, int]
AlertKey = tuple[str, datetime]


@dataclass(frozen=True, slots=True)
class SourceMessage:
    """What the sink keeps of a consumed Kafka message (a plain record, not librdkafka's)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None

    @property
    def position(self) -> TopicPartition:
        return (self.topic, self.partition)


@dataclass(frozen=True, slots=True)
class Decoded:
    """A valid alert and the message it came from."""

    alert: Alert
    message: SourceMessage

    @property
    def key(self) -> AlertKey:
        return (self.alert.user_id, self.alert.window_start)


@dataclass(frozen=True, slots=True)
class BadMessage:
    """A message that cannot be stored, with the DLQ reason token and a human detail."""

    message: SourceMessage
    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class Batch:
    """A decoded batch: `latest` is what to upsert, `bad` what to send to the DLQ."""

    messages: tuple[SourceMessage, ...]
    latest: tuple[Decoded, ...]  # one per key, the highest version in the batch
    bad: tuple[BadMessage, ...]
    superseded: int  # valid alerts dropped because the batch holds a newer or equal version

    def commit_offsets(self) -> dict[TopicPartition, int]:
        return commit_offsets(self.messages)


def decode_batch(
    messages: Sequence[SourceMessage], parse: Callable[[bytes], Alert] = parse_alert
) -> Batch:
    """Decode every message; bad ones are collected, never raised."""
    decoded: list[Decoded] = []
    bad: list[BadMessage] = []
    for message in messages:
        try:
            # parse_alert reports None/empty values itself (reason "empty").
            decoded.append(Decoded(parse(message.value), message))  # type: ignore[arg-type]
        except InvalidRecord as err:
            bad.append(BadMessage(message, err.reason, err.detail))
        except Exception as err:  # one record must never stop the service
            unexpected = InvalidRecord.unexpected(err)
            bad.append(BadMessage(message, unexpected.reason, unexpected.detail))
    latest = latest_per_key(decoded)
    return Batch(tuple(messages), tuple(latest), tuple(bad), len(decoded) - len(latest))


def latest_per_key(decoded: Iterable[Decoded]) -> list[Decoded]:
    """Highest version per (user_id, window_start), in first-seen key order.

    On a version tie the first one wins, as in the database: re-writing an equal version
    is ignored there (`WHERE alerts.version < EXCLUDED.version`).
    """
    best: dict[AlertKey, Decoded] = {}
    for item in decoded:
        current = best.get(item.key)
        if current is None or item.alert.version > current.alert.version:
            best[item.key] = item
    return list(best.values())


def commit_offsets(messages: Iterable[SourceMessage]) -> dict[TopicPartition, int]:
    """Kafka's committed offset is the *next* offset to read: last offset + 1 per partition."""
    offsets: dict[TopicPartition, int] = {}
    for m in messages:
        offsets[m.position] = max(offsets.get(m.position, 0), m.offset + 1)
    return offsets


def drop_partitions(
    batch: Batch,
    revoked: Collection[TopicPartition],
    parse: Callable[[bytes], Alert] = parse_alert,
) -> Batch:
    """The batch without messages of partitions this consumer no longer owns.

    After a rebalance their new owner re-reads them from the last committed offset, so
    writing them here would only be redundant, and committing them could move the new
    owner's offsets backwards. Rare (a rebalance while a batch waits for the database),
    so the rest is simply decoded again.
    """
    if not any(m.position in revoked for m in batch.messages):
        return batch
    return decode_batch([m for m in batch.messages if m.position not in revoked], parse)
