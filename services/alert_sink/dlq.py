"""Dead letters: the record for a `fraud_alerts` message the sink cannot store, and its
confirmed delivery.

Why: bad input must never stop the sink, and it must not vanish either. The DLQ message
keeps the original key and bytes and says, in headers, what was wrong and where it came
from, so it can be inspected and replayed (same header contract as `transactions.dlq`).
The sink commits the offsets that cover a dead letter only after Kafka confirmed it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from services.alert_sink.batching import SourceMessage

DEFAULT_DLQ_TOPIC = "fraud_alerts.dlq"

# Reason for an alert that decoded but that PostgreSQL (or the driver) refused, e.g. a
# NUL character in a text field; the parse reasons come from libs.schemas.fields.Reason.
DB_REJECTED = "db_rejected"

# A header is metadata, not a copy of the payload: bound what an error detail can add.
MAX_ERROR_CHARS = 1000

FLUSH_SECONDS = 10.0

Headers = list[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    source: SourceMessage
    reason: str
    detail: str


def dlq_headers(source: SourceMessage, reason: str, detail: str) -> Headers:
    """Headers `error` ("<reason>: <detail>"), `source-topic`, `-partition`, `-offset`."""
    error = f"{reason}: {detail}"
    if len(error) > MAX_ERROR_CHARS:
        error = error[: MAX_ERROR_CHARS - 3] + "..."
    return [
        ("error", error.encode("utf-8", errors="replace")),
        ("source-topic", source.topic.encode()),
        ("source-partition", str(source.partition).encode()),
        ("source-offset", str(source.offset).encode()),
    ]


class DeliveryError(Exception):
    """Some dead letters were not confirmed by Kafka; retrying sends only those."""


class _Producer(Protocol):  # the part of confluent_kafka.Producer used here
    def produce(self, topic: str, **kwargs: Any) -> None: ...
    def poll(self, timeout: float) -> int: ...
    def flush(self, timeout: float) -> int: ...


class DlqDelivery:
    """Delivery state of one batch's dead letters, so a retry never re-sends a confirmed one.

    `on_delivered(reason)` is called once per confirmed letter (the DLQ metric).
    """

    def __init__(self, letters: Sequence[DeadLetter], on_delivered: Callable[[str], None]) -> None:
        self.letters = list(letters)
        self.state = ["new"] * len(self.letters)  # new -> pending -> ok | failed
        self.on_delivered = on_delivered
        self.last_error = ""

    @property
    def done(self) -> bool:
        return all(s == "ok" for s in self.state)

    def send(self, producer: _Producer, topic: str, flush_seconds: float = FLUSH_SECONDS) -> None:
        """Produce what is new or failed, wait for confirmations; DeliveryError if any lack."""
        for i, letter in enumerate(self.letters):
            if self.state[i] not in ("new", "failed"):
                continue  # confirmed, or still in the producer's queue from a former try
            self.state[i] = "pending"
            kwargs = {
                "key": letter.source.key,
                "value": letter.source.value,
                "headers": dlq_headers(letter.source, letter.reason, letter.detail),
                "on_delivery": self._callback(i),
            }
            while True:
                try:
                    producer.produce(topic, **kwargs)
                    break
                except BufferError:  # local queue full: let deliveries drain
                    producer.poll(0.1)
        producer.flush(flush_seconds)
        if not self.done:
            missing = sum(s != "ok" for s in self.state)
            raise DeliveryError(f"{missing} dead letters not confirmed: {self.last_error}")

    def _callback(self, i: int) -> Callable[[Any, Any], None]:
        def on_delivery(err: Any, _msg: Any) -> None:
            if err is None:
                self.state[i] = "ok"
                self.on_delivered(self.letters[i].reason)
            else:
                self.state[i] = "failed"
                self.last_error = str(err)

        return on_delivery
