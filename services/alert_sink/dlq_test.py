"""The sink's dead letters: the shared header contract, and delivery that re-sends only
what Kafka did not confirm."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError

from libs.dlq.dlq import MAX_ERROR_BYTES, DeadLetterPublisher, DlqConfig, DlqError, dlq_headers
from services.alert_sink.batching import SourceMessage
from services.alert_sink.dlq import DlqDelivery, dead_letter

SOURCE = SourceMessage("fraud_alerts", 2, 1234, b"user-7", b"\xffnot json")


def test_headers_carry_reason_detail_and_source_position():
    letter = dead_letter(SOURCE, "not_json", "unexpected character: line 1 column 1")
    assert (letter.key, letter.value) == (b"user-7", b"\xffnot json")
    assert dlq_headers(letter) == [
        ("error", b"not_json: unexpected character: line 1 column 1"),
        ("error-reason", b"not_json"),
        ("source-topic", b"fraud_alerts"),
        ("source-partition", b"2"),
        ("source-offset", b"1234"),
    ]


def test_long_details_are_shortened():
    error = dict(dlq_headers(dead_letter(SOURCE, "bad_value", "x" * 5000)))["error"]
    assert len(error) == MAX_ERROR_BYTES and error.endswith(b"...")


class FakeProducer:
    """Confirms messages on flush, failing the ones whose offset is in `fail_offsets`."""

    def __init__(self, fail_offsets: set[int]) -> None:
        self.fail_offsets = fail_offsets
        self.queued: list[dict[str, Any]] = []
        self.sent: list[dict[str, Any]] = []

    def produce(self, topic: str, **kwargs: Any) -> None:
        self.queued.append({"topic": topic, **kwargs})

    def poll(self, timeout: float) -> int:
        return 0

    def flush(self, timeout: float) -> int:
        for item in self.queued:
            offset = int(dict(item["headers"])["source-offset"])
            failed = offset in self.fail_offsets
            item["on_delivery"](KafkaError(KafkaError._TRANSPORT) if failed else None, None)
            if not failed:
                self.sent.append(item)
        self.queued = []
        return 0

    def purge(self, in_queue: bool = True, in_flight: bool = True, blocking: bool = True):
        self.queued = []

    def __len__(self) -> int:
        return len(self.queued)


def letters(n: int):
    return [
        dead_letter(SourceMessage("fraud_alerts", 0, i, b"k%d" % i, b"v%d" % i), "not_json", "x")
        for i in range(n)
    ]


def publisher(producer: FakeProducer) -> DeadLetterPublisher:
    return DeadLetterPublisher(
        DlqConfig("unused:9092", "fraud_alerts.dlq", deadline_s=0.5),
        producer_factory=lambda _conf: producer,
    )


def test_delivery_keeps_key_value_and_counts_each_confirmation_once():
    confirmed: list[str] = []
    producer = FakeProducer(fail_offsets=set())
    DlqDelivery(letters(3), confirmed.append).send(publisher(producer))
    assert [(m["topic"], m["key"], m["value"]) for m in producer.sent] == [
        ("fraud_alerts.dlq", b"k0", b"v0"),
        ("fraud_alerts.dlq", b"k1", b"v1"),
        ("fraud_alerts.dlq", b"k2", b"v2"),
    ]
    assert confirmed == ["not_json"] * 3


def test_retry_resends_only_unconfirmed_letters():
    confirmed: list[str] = []
    producer = FakeProducer(fail_offsets={1})
    pub = publisher(producer)
    delivery = DlqDelivery(letters(3), confirmed.append)
    with pytest.raises(DlqError, match=r"1 of 3 dead letters not confirmed within 0\.5 s"):
        delivery.send(pub)
    assert not delivery.done and len(confirmed) == 2
    producer.fail_offsets = set()
    delivery.send(pub)
    assert [m["key"] for m in producer.sent] == [b"k0", b"k2", b"k1"]
    assert delivery.done and len(confirmed) == 3
