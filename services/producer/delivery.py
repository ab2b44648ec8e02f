"""What the producer knows about its messages: delivery reports, totals, metrics.

Why separate: librdkafka tells us about each message asynchronously (in `poll`/`flush`),
and "delivered" must mean acknowledged by the broker, never merely handed to the client.
Counting that in one small unit keeps the send loop in `producer.py` about pacing only,
and lets the counting be tested without a broker.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge

from services.producer.generator import PATTERNS

LOGGED_ERRORS = 10  # delivery errors logged one by one; later ones only in progress lines

log = logging.getLogger("producer.delivery")


class DeliveredMessage(Protocol):
    """The parts of `confluent_kafka.Message` a delivery report reads."""

    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def key(self) -> bytes | None: ...


class Metrics:
    """The producer's Prometheus metrics, in their own registry (no global state).

    `fraud_producer_messages_total{fraud_label, pattern}` counts delivered messages;
    normal traffic is `fraud_label="0", pattern="none"` (an empty label value would read
    as a missing label in PromQL).
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.messages = Counter(
            "fraud_producer_messages",
            "Messages delivered to Kafka (acknowledged by the broker), by ground truth",
            ["fraud_label", "pattern"],
            registry=self.registry,
        )
        self.errors = Counter(
            "fraud_producer_delivery_errors",
            "Messages Kafka failed to deliver",
            registry=self.registry,
        )
        self.send_rate = Gauge(
            "fraud_producer_send_rate",
            "Messages handed to the client per second, over the last few seconds",
            registry=self.registry,
        )
        self.queue_length = Gauge(
            "fraud_producer_queue_length",
            "Messages in the client waiting for delivery",
            registry=self.registry,
        )
        self.schedule_lag = Gauge(
            "fraud_producer_schedule_lag_seconds",
            "How far sending is behind the --rate schedule (0 when keeping up)",
            registry=self.registry,
        )
        # One child per header value, so every series exists (at 0) from the start.
        self.by_pattern = {b"": self.messages.labels(fraud_label="0", pattern="none")}
        for pattern in PATTERNS:
            self.by_pattern[pattern.encode()] = self.messages.labels(
                fraud_label="1", pattern=pattern
            )


@dataclass
class Totals:
    """Counts so far; `sent` = delivered + errors + still queued."""

    sent: int = 0
    delivered: int = 0
    fraud_delivered: int = 0
    errors: int = 0
    last_error: str = ""
    by_pattern: dict[str, int] = field(default_factory=dict)


class DeliveryReports:
    """librdkafka delivery callbacks: counts, metrics, error logs (never silent).

    One callback per pattern, passed with each message (`callback(item.pattern)`):
    delivery reports do not carry the message headers back, and reusing five callables
    costs nothing per message, unlike a closure per message.
    """

    def __init__(self, metrics: Metrics, totals: Totals) -> None:
        self.metrics = metrics
        self.totals = totals
        self._callbacks = {p: self._report_for(p) for p in ("", *PATTERNS)}

    def callback(self, pattern: str) -> Callable[[object | None, DeliveredMessage], None]:
        """The `on_delivery` callback for a message of `pattern` ("" for normal)."""
        return self._callbacks[pattern]

    def _report_for(self, pattern: str) -> Callable[[object | None, DeliveredMessage], None]:
        totals, errors = self.totals, self.metrics.errors
        delivered = self.metrics.by_pattern[pattern.encode()]
        name, is_fraud = pattern or "none", bool(pattern)
        totals.by_pattern.setdefault(name, 0)

        def report(err: object | None, msg: DeliveredMessage) -> None:
            if err is None:
                totals.delivered += 1
                totals.fraud_delivered += is_fraud
                totals.by_pattern[name] += 1
                delivered.inc()
                return
            totals.errors += 1
            totals.last_error = str(err)
            errors.inc()
            if totals.errors <= LOGGED_ERRORS:
                log.error(
                    "delivery failed",
                    extra={
                        "error": str(err),
                        "topic": msg.topic(),
                        "partition": msg.partition(),
                        "key": (msg.key() or b"").decode(errors="replace"),
                        "pattern": name,
                        "errors": totals.errors,
                    },
                )
                if totals.errors == LOGGED_ERRORS:
                    log.error("further delivery errors are only counted (see progress lines)")

        return report


class RateWindow:
    """Rate over roughly the last `seconds`, from (time, count) samples."""

    def __init__(self, seconds: float = 5.0) -> None:
        self.seconds = seconds
        self.samples: deque[tuple[float, int]] = deque()

    def add(self, now: float, count: int) -> float:
        self.samples.append((now, count))
        while len(self.samples) > 2 and now - self.samples[1][0] >= self.seconds:
            self.samples.popleft()
        then, before = self.samples[0]
        return (count - before) / (now - then) if now > then else 0.0
