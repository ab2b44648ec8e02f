"""Small Kafka client helpers for tests, the local stack and benchmarks: produce a list of
records, drain a topic with a deadline, read committed/end offsets and group members.

Why: every end-to-end check needs "read everything on this topic until this condition
holds or the deadline passes", and it should be written once, correctly. This is the
only copy: test helpers (infra/testing) build on it. Each takes an optional `client`:
librdkafka settings added to its own (e.g. a secure broker's credentials, see
libs/kafka/security.py and KafkaBroker.admin_config).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from infra.components.wait import wait_until

Headers = dict[str, bytes]
# (key, value) or (key, value, headers)
ProduceRecord = (
    tuple[bytes | None, bytes | None] | tuple[bytes | None, bytes | None, Headers | None]
)


@dataclass(frozen=True)
class Record:
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]
    partition: int
    offset: int
    timestamp_ms: int

    @property
    def text_headers(self) -> dict[str, str]:
        """Headers decoded as UTF-8 (a header without a value reads as '')."""
        return {k: (v or b"").decode() for k, v in self.headers.items()}


def produce(
    bootstrap: str,
    topic: str,
    records: Iterable[ProduceRecord],
    timeout: float = 60.0,
    client: Mapping[str, Any] | None = None,
) -> int:
    """Produce (key, value[, headers]) records idempotently, in order; returns how many were
    delivered (KafkaException if any was not, within `timeout`)."""
    producer = Producer(
        {"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5,
         **(client or {})}
    )  # fmt: skip
    errors: list[str] = []
    delivered = 0

    def on_delivery(err, _msg) -> None:
        nonlocal delivered
        if err is not None:
            errors.append(str(err))
        else:
            delivered += 1

    for record in records:
        key, value = record[0], record[1]
        headers = record[2] if len(record) > 2 else None
        while True:
            try:
                producer.produce(
                    topic,
                    key=key,
                    value=value,
                    headers=list((headers or {}).items()),
                    on_delivery=on_delivery,
                )
                break
            except BufferError:
                producer.poll(0.1)
    remaining = producer.flush(timeout)
    if errors or remaining:
        raise KafkaException(
            f"produce to {topic}: {len(errors)} errors {errors[:3]}, {remaining} undelivered"
        )
    return delivered


class TopicReader:
    """Reads a topic from the beginning, accumulating records across calls."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        group: str | None = None,
        client: Mapping[str, Any] | None = None,
    ) -> None:
        self.topic = topic
        self.records: list[Record] = []
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group or f"reader-{topic}-{time.monotonic_ns()}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                **(client or {}),
            }
        )
        self._consumer.subscribe([topic])

    def poll(self, seconds: float = 0.5) -> int:
        """Read what arrives within `seconds`; returns the number of new records."""
        deadline = time.monotonic() + seconds
        new = 0
        while time.monotonic() < deadline:
            batch = self._consumer.consume(1000, timeout=0.2)
            for msg in batch:
                if msg.error() is not None:
                    continue
                self.records.append(
                    Record(
                        msg.key(),
                        msg.value(),
                        dict(msg.headers() or []),
                        msg.partition(),
                        msg.offset(),
                        msg.timestamp()[1],
                    )
                )
                new += 1
        return new

    def wait_for(self, done: Callable[[list[Record]], bool], timeout: float, what: str) -> None:
        """Read until `done(records)` holds; AssertionError with what was seen at the deadline."""

        def read_more() -> bool:
            if done(self.records):
                return True
            self.poll(0.5)  # blocks while it reads: no pause needed between rounds
            return done(self.records)

        wait_until(
            read_more,
            timeout,
            what,
            show=lambda: f"{len(self.records)} records read on {self.topic}",
            interval=0.001,
        )

    def close(self) -> None:
        self._consumer.close()


def end_offsets(
    bootstrap: str, topic: str, timeout: float = 10.0, client: Mapping[str, Any] | None = None
) -> dict[int, int]:
    """partition -> high watermark."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "offsets-probe", **(client or {})}
    )
    try:
        meta = consumer.list_topics(topic, timeout=timeout)
        ends = {}
        for partition in meta.topics[topic].partitions:
            _low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout)
            ends[partition] = high
        return ends
    finally:
        consumer.close()


def committed_offsets(
    bootstrap: str,
    group: str,
    topic: str,
    timeout: float = 10.0,
    client: Mapping[str, Any] | None = None,
) -> dict:
    """partition -> committed offset of `group` (negative when nothing committed)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, **(client or {})})
    try:
        meta = consumer.list_topics(topic, timeout=timeout)
        parts = [TopicPartition(topic, p) for p in meta.topics[topic].partitions]
        return {tp.partition: tp.offset for tp in consumer.committed(parts, timeout=timeout)}
    finally:
        consumer.close()


def read_records(
    bootstrap: str,
    topic: str,
    count: int,
    timeout: float = 60.0,
    client: Mapping[str, Any] | None = None,
) -> list[Record]:
    """The first `count` records read from the beginning of `topic` (AssertionError if
    fewer arrive within `timeout`)."""
    reader = TopicReader(bootstrap, topic, client=client)
    try:
        reader.wait_for(lambda records: len(records) >= count, timeout, f"{count} records")
    finally:
        reader.close()
    return reader.records[:count]


def group_members(
    bootstrap: str, group: str, timeout: float = 10.0, client: Mapping[str, Any] | None = None
) -> int:
    """How many members consumer group `group` has now."""
    admin = AdminClient({"bootstrap.servers": bootstrap, **(client or {})})
    described = admin.describe_consumer_groups([group])[group].result(timeout=timeout)
    return len(described.members)
