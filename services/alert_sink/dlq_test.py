"""Dead letters: header contract, and delivery that re-sends only what Kafka did not confirm."""

from __future__ import annotations

from typing import Any

import pytest

from services.alert_sink.batching import SourceMessage
from services.alert_sink.dlq import (
    MAX_ERROR_CHARS,
    DeadLetter,
    DeliveryError,
    DlqDelivery,
    dlq_headers,
)

SOURCE = SourceMessage("fraud_alerts", 2, 1234, b"user-7", b"\xffnot json")


def test_headers_carry_reason_detail_and_source_position():
    headers = dlq_headers(SOURCE, "not_json", "unexpected character: line 1 column 1")
    assert headers == [
        ("error", b"not_json: unexpected character: line 1 column 1"),
        ("source-topic", b"fraud_alerts"),
        ("source-partition", b"2"),
        ("source-offset", b"1234"),
    ]


def test_long_details_are_shortened():
    error = dict(dlq_headers(SOURCE, "bad_value", "x" * 5000))["error"]
    assert len(error) == MAX_ERROR_CHARS and error.endswith(b"...")


class FakeProducer:
    """Confirms messages on flush, failing the ones whose offset is in `fail_offsets`."""

    def __init__(self, fail_offsets: set[int], full_once: bool = False) -> None:
        self.fail_offsets = fail_offsets
        self.full_once = full_once
        self.queued: list[dict[str, Any]] = []
        self.sent: list[dict[str, Any]] = []

    def produce(self, topic: str, **kwargs: Any) -> None:
        if self.full_once:
            self.full_once = False
            raise BufferError("queue full")
        self.queued.append({"topic": topic, **kwargs})

    def poll(self, timeout: float) -> int:
        return 0

    def flush(self, timeout: float) -> int:
        for item in self.queued:
            offset = int(dict(item["headers"])["source-offset"])
            failed = offset in self.fail_offsets
            item["on_delivery"]("broker down" if failed else None, None)
            if not failed:
                self.sent.append(item)
        self.queued = []
        return 0


def letters(n: int) -> list[DeadLetter]:
    return [
        DeadLetter(SourceMessage("fraud_alerts", 0, i, b"k%d" % i, b"v%d" % i), "not_json", "x")
        for i in range(n)
    ]


def test_delivery_keeps_key_value_and_counts_each_confirmation_once():
    confirmed: list[str] = []
    producer = FakeProducer(fail_offsets=set(), full_once=True)
    DlqDelivery(letters(3), confirmed.append).send(producer, "fraud_alerts.dlq")
    assert [(m["topic"], m["key"], m["value"]) for m in producer.sent] == [
        ("fraud_alerts.dlq", b"k0", b"v0"),
        ("fraud_alerts.dlq", b"k1", b"v1"),
        ("fraud_alerts.dlq", b"k2", b"v2"),
    ]
    assert confirmed == ["not_json"] * 3


def test_retry_resends_only_unconfirmed_letters():
    confirmed: list[str] = []
    producer = FakeProducer(fail_offsets={1})
    delivery = DlqDelivery(letters(3), confirmed.append)
    with pytest.raises(DeliveryError, match="1 dead letters not confirmed: broker down"):
        delivery.send(producer, "fraud_alerts.dlq")
    producer.fail_offsets = set()
    delivery.send(producer, "fraud_alerts.dlq")
    assert [m["key"] for m in producer.sent] == [b"k0", b"k2", b"k1"]
    assert delivery.done and len(confirmed) == 3
