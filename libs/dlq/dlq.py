"""The one dead-letter publisher of the pipeline (detector, alert sink, quality monitor).

Why one, and why it is careful: a dead letter is written exactly when input is already bad,
so the DLQ path is the one that meets the absurd records. It must not crash on them, nor
stall, nor leak:
- Too large: Kafka accepted a 2 MB lz4-compressible record, but librdkafka refuses to
  produce a value above message.max.bytes (1,000,000 by default, counted uncompressed).
  A value past `max_value_bytes` is cut to that size and the letter says so, with headers
  `original-size` and `original-sha256` of the whole original (an absurd key likewise,
  `original-key-size` and `original-key-sha256`). Should the broker refuse even that
  (a smaller topic limit), the value is cut further on each try.
- Stuck: a full local queue, a produce error or a delivery error is retried until a
  deadline; then `DlqError` says what failed, and the caller fails its Spark task or
  retries its batch.
- Leaking: a failed flush purges the producer's queue and drops the producer, so nothing
  of a failed attempt can be delivered later as part of an unrelated task; the next send
  gets a fresh producer.

Delivery is at-least-once, like Kafka's own producers: a letter purged while in flight may
still have reached the broker, and a retried batch sends it again (`source-partition` and
`source-offset` identify a repeat).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException, Producer

from libs.schemas.headers import (
    DLQ_ERROR_HEADER,
    DLQ_ERROR_REASON_HEADER,
    DLQ_ORIGINAL_SHA256_HEADER,
    DLQ_ORIGINAL_SIZE_HEADER,
    DLQ_SOURCE_OFFSET_HEADER,
    DLQ_SOURCE_PARTITION_HEADER,
    DLQ_SOURCE_TOPIC_HEADER,
)

# librdkafka's default message.max.bytes: the most a producer sends as one record (key,
# value, headers and framing, before compression).
MESSAGE_MAX_BYTES = 1_000_000
# Defaults below it: the value limit equals libs.schemas.alert.ALERT_MAX_BYTES, so an alert
# the sink refuses fits whole; keys are user ids, 16 KiB is already absurd.
DEFAULT_MAX_VALUE_BYTES = 900_000
DEFAULT_MAX_KEY_BYTES = 16 * 1024
# A header is metadata, not a copy of the payload: bound what an error detail can add.
MAX_ERROR_BYTES = 1024
# Room kept for the headers (error, source, sizes, digests) and librdkafka's framing.
HEADER_ROOM_BYTES = 8 * 1024
# The value is never cut below this on a broker's MSG_SIZE_TOO_LARGE: past it the limit is
# misconfigured, and retrying cannot help.
MIN_VALUE_BYTES = 1024

DLQ_ORIGINAL_KEY_SIZE_HEADER = "original-key-size"
DLQ_ORIGINAL_KEY_SHA256_HEADER = "original-key-sha256"

Headers = list[tuple[str, bytes]]

# How long one pass waits for deliveries before it re-sends what failed.
_FLUSH_STEP_S = 0.5
# Pause before re-sending a letter whose delivery failed (a broker that answers "no" at
# once must not be hammered in a loop until the deadline).
_RESEND_PAUSE_S = 0.2


class DlqError(Exception):
    """Dead letters were not confirmed by Kafka in time; nothing of them stays queued."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One refused record: its original key and bytes, why, and where it came from."""

    key: bytes | None
    value: bytes | None
    reason: str  # a bare token, e.g. "too_large" or "db_rejected"
    detail: str  # human-readable, e.g. "value is 2000000 bytes, limit 65536"
    source_topic: str
    source_partition: int
    source_offset: int


@dataclass(frozen=True)
class DlqConfig:
    """Where dead letters go and what one may hold. Frozen and hashable: the detector keeps
    one publisher per config in each Python worker."""

    bootstrap_servers: str
    topic: str
    # How long a send or a flush retries before DlqError; also librdkafka's
    # message.timeout.ms, so the client gives up on a record no later than this.
    deadline_s: float = 30.0
    max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES
    max_key_bytes: int = DEFAULT_MAX_KEY_BYTES
    message_max_bytes: int = MESSAGE_MAX_BYTES

    def __post_init__(self) -> None:
        if self.deadline_s <= 0:
            raise ValueError(f"DLQ deadline_s={self.deadline_s} must be > 0")
        if self.max_value_bytes < MIN_VALUE_BYTES or self.max_key_bytes < 1:
            raise ValueError(
                f"DLQ max_value_bytes={self.max_value_bytes} must be >= {MIN_VALUE_BYTES} "
                f"and max_key_bytes={self.max_key_bytes} >= 1"
            )
        room = self.message_max_bytes - HEADER_ROOM_BYTES
        if self.max_value_bytes + self.max_key_bytes > room:
            raise ValueError(
                f"DLQ max_value_bytes={self.max_value_bytes} + max_key_bytes="
                f"{self.max_key_bytes} must leave {HEADER_ROOM_BYTES} bytes for headers "
                f"below message.max.bytes={self.message_max_bytes} (at most {room} together)"
            )

    def producer_config(self) -> dict[str, Any]:
        return {
            "bootstrap.servers": self.bootstrap_servers,
            "enable.idempotence": True,  # acks=all; the client's retries add no duplicates
            "linger.ms": 5,
            "compression.type": "lz4",  # bad input is often repetitive
            "message.max.bytes": self.message_max_bytes,
            "message.timeout.ms": max(1, int(self.deadline_s * 1000)),
        }


def dlq_headers(letter: DeadLetter) -> Headers:
    """docs/design.md's headers `error` ("<reason>: <detail>"), `source-topic`, `-partition`,
    `-offset`, plus `error-reason` (the bare token, for routing and counting)."""
    error = f"{letter.reason}: {letter.detail}".encode("utf-8", errors="replace")
    if len(error) > MAX_ERROR_BYTES:
        error = error[: MAX_ERROR_BYTES - 3].decode("utf-8", errors="ignore").encode() + b"..."
    return [
        (DLQ_ERROR_HEADER, error),
        (DLQ_ERROR_REASON_HEADER, letter.reason.encode("utf-8", errors="replace")[:256]),
        (DLQ_SOURCE_TOPIC_HEADER, letter.source_topic.encode()),
        (DLQ_SOURCE_PARTITION_HEADER, str(letter.source_partition).encode()),
        (DLQ_SOURCE_OFFSET_HEADER, str(letter.source_offset).encode()),
    ]


@dataclass(frozen=True, slots=True)
class Prepared:
    """What is produced for a letter: key and value within the limits, and headers."""

    key: bytes | None
    value: bytes | None
    headers: Headers


def prepare(letter: DeadLetter, max_value_bytes: int, max_key_bytes: int) -> Prepared:
    """The record for `letter`: the original key and bytes, cut past the limits, with the
    size and SHA-256 of what was cut."""
    headers = dlq_headers(letter)
    value, key = letter.value, letter.key
    if value is not None and len(value) > max_value_bytes:
        headers += _original(DLQ_ORIGINAL_SIZE_HEADER, DLQ_ORIGINAL_SHA256_HEADER, value)
        value = value[:max_value_bytes]
    if key is not None and len(key) > max_key_bytes:
        headers += _original(DLQ_ORIGINAL_KEY_SIZE_HEADER, DLQ_ORIGINAL_KEY_SHA256_HEADER, key)
        key = key[:max_key_bytes]
    return Prepared(key, value, headers)


def _original(size_header: str, sha_header: str, data: bytes) -> Headers:
    return [
        (size_header, str(len(data)).encode()),
        (sha_header, hashlib.sha256(data).hexdigest().encode()),
    ]


class ProducerLike(Protocol):  # the part of confluent_kafka.Producer used here
    def produce(self, topic: str, **kwargs: Any) -> None: ...
    def poll(self, timeout: float) -> int: ...
    def flush(self, timeout: float) -> int: ...
    def purge(self, in_queue: bool = True, in_flight: bool = True, blocking: bool = True): ...
    def __len__(self) -> int: ...


@dataclass(eq=False)
class _Pending:
    letter: DeadLetter
    on_delivered: Callable[[DeadLetter], None] | None
    value_limit: int
    state: str = "new"  # new -> queued -> ok | failed (-> queued again); or abandoned
    attempt: int = 0  # a late report of an earlier attempt is ignored
    resend_at: float = 0.0
    too_large: bool = False  # the broker refused the size: cut further before resending


@dataclass
class DeadLetterPublisher:
    """Queue dead letters with `send`, then `flush` to wait until Kafka confirmed each one.

    Either every letter sent since the last flush is confirmed, or `DlqError` is raised and
    none of them is left in any queue. One thread only (librdkafka's callbacks run inside
    this object's poll/flush calls).
    """

    config: DlqConfig
    # Extra librdkafka settings (client.id, error_cb, logger); they win over the defaults.
    producer_options: Mapping[str, Any] = field(default_factory=dict)
    producer_factory: Callable[[dict[str, Any]], ProducerLike] = Producer
    _producer: ProducerLike | None = field(default=None, init=False, repr=False)
    _pending: list[_Pending] = field(default_factory=list, init=False, repr=False)
    _last_error: str = field(default="", init=False, repr=False)

    @property
    def pending(self) -> int:
        """Letters sent since the last flush (confirmed or not)."""
        return len(self._pending)

    @property
    def producer(self) -> ProducerLike:
        if self._producer is None:
            self._producer = self.producer_factory(
                {**self.config.producer_config(), **self.producer_options}
            )
        return self._producer

    def send(
        self, letter: DeadLetter, on_delivered: Callable[[DeadLetter], None] | None = None
    ) -> None:
        """Queue `letter`; `on_delivered(letter)` runs once Kafka confirmed it. Waits (up to
        the deadline) while the local queue is full; DlqError past it."""
        entry = _Pending(letter, on_delivered, self.config.max_value_bytes)
        self._pending.append(entry)
        self._produce(entry, time.monotonic() + self.config.deadline_s)

    def send_all(
        self,
        letters: Sequence[DeadLetter],
        on_delivered: Callable[[DeadLetter], None] | None = None,
    ) -> int:
        """`send` each letter, then `flush`."""
        for letter in letters:
            self.send(letter, on_delivered)
        return self.flush()

    def flush(self) -> int:
        """Wait until every letter sent since the last flush is confirmed, re-sending those
        whose delivery failed, and return how many there were. DlqError at the deadline,
        after purging them all from the producer (which is then dropped)."""
        deadline = time.monotonic() + self.config.deadline_s
        while True:
            now = time.monotonic()
            for entry in self._pending:
                if entry.state == "failed" and now >= entry.resend_at:
                    if entry.too_large:
                        self._shrink(entry)
                    self._produce(entry, deadline)
            if all(e.state == "ok" for e in self._pending):
                confirmed = len(self._pending)
                self._pending.clear()
                return confirmed
            left = deadline - time.monotonic()
            if left <= 0:
                break
            if any(e.state == "queued" for e in self._pending):
                self.producer.flush(min(left, _FLUSH_STEP_S))  # runs the callbacks
            else:  # only failed letters: wait for the first one's resend time
                first = min(e.resend_at for e in self._pending if e.state == "failed")
                time.sleep(min(left, max(0.01, first - time.monotonic())))
        missing = sum(e.state != "ok" for e in self._pending)
        raise self._failed(
            f"{missing} of {len(self._pending)} dead letters not confirmed within "
            f"{self.config.deadline_s:g} s (last error: {self._last_error or 'none reported'})"
        )

    def abandon(self) -> None:
        """Forget every letter since the last flush: purge them from the producer's queues
        and drop the producer, so none can be delivered by a later, unrelated task."""
        producer, self._producer = self._producer, None
        for entry in self._pending:
            entry.state = "abandoned"  # their purge reports below change nothing
        self._pending.clear()
        if producer is None:
            return
        try:
            producer.purge(in_queue=True, in_flight=True, blocking=True)
            producer.poll(0)  # purged messages' callbacks run now, not in a later task
        except (KafkaException, RuntimeError):
            pass  # a broken producer: it is dropped either way

    def poll(self) -> None:
        """Serve the producer's callbacks and logs (cheap; call it from a loop)."""
        if self._producer is not None:
            self._producer.poll(0)

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued within `timeout`, then drop the producer."""
        if self._producer is not None:
            self._producer.flush(timeout)
        self.abandon()

    # -- internals -----------------------------------------------------------------------

    def _produce(self, entry: _Pending, deadline: float) -> None:
        """Hand `entry` to the producer, retrying a full queue and produce errors until
        `deadline`; a value the client finds too large is cut further."""
        while True:
            record = prepare(entry.letter, entry.value_limit, self.config.max_key_bytes)
            entry.attempt += 1
            try:
                self.producer.produce(
                    self.config.topic,
                    key=record.key,
                    value=record.value,
                    headers=record.headers,
                    on_delivery=self._callback(entry, entry.attempt),
                )
                entry.state = "queued"
                return
            except BufferError:
                self._last_error = "the producer's local queue is full"
            except KafkaException as err:
                error = err.args[0] if err.args else None
                code = error.code() if isinstance(error, KafkaError) else None
                self._last_error = f"produce: {err}"
                if code == KafkaError.MSG_SIZE_TOO_LARGE:
                    self._shrink(entry)
                    continue
                if isinstance(error, KafkaError) and error.fatal():
                    raise self._failed(f"the DLQ producer failed fatally: {error}") from err
            if time.monotonic() >= deadline:
                raise self._failed(
                    f"could not queue a dead letter within {self.config.deadline_s:g} s "
                    f"({self._last_error})"
                )
            self.producer.poll(0.1)  # let deliveries drain the queue

    def _shrink(self, entry: _Pending) -> None:
        size = len(entry.letter.value or b"")
        smaller = min(entry.value_limit, size) // 2
        if smaller < MIN_VALUE_BYTES:
            raise self._failed(
                f"a dead letter of {size} bytes is still too large at {entry.value_limit} "
                f"bytes ({self._last_error}); check DLQ max_value_bytes against the "
                "producer's message.max.bytes and the topic's max.message.bytes"
            )
        entry.value_limit = smaller
        entry.too_large = False

    def _callback(self, entry: _Pending, attempt: int) -> Callable[[Any, Any], None]:
        # Runs inside poll()/flush(): it only records, never raises.
        def on_delivery(err: Any, _msg: Any) -> None:
            if entry.state != "queued" or entry.attempt != attempt:
                return  # abandoned, or an older attempt's late report
            if err is None:
                entry.state = "ok"
                if entry.on_delivered is not None:
                    entry.on_delivered(entry.letter)
                return
            entry.state = "failed"
            entry.resend_at = time.monotonic() + _RESEND_PAUSE_S
            entry.too_large = err.code() == KafkaError.MSG_SIZE_TOO_LARGE  # broker's limit
            self._last_error = f"delivery: {err}"

        return on_delivery

    def _failed(self, why: str) -> DlqError:
        """Abandon everything since the last flush; the error to raise."""
        self.abandon()
        return DlqError(f"DLQ {self.config.topic}: {why}; its queue was purged")
