"""The dead-letter publisher against a scripted producer: the header contract, cutting what
cannot be sent, retries within the deadline, and nothing left behind after a failure."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from libs.dlq.dlq import (
    DEFAULT_MAX_KEY_BYTES,
    DEFAULT_MAX_VALUE_BYTES,
    HEADER_ROOM_BYTES,
    MAX_ERROR_BYTES,
    MESSAGE_MAX_BYTES,
    DeadLetter,
    DeadLetterPublisher,
    DlqConfig,
    DlqError,
    dlq_headers,
    prepare,
)
from libs.schemas.alert import ALERT_MAX_BYTES

LETTER = DeadLetter(b"user-7", b"\xffnot json", "not_json", "line 1", "fraud_alerts", 2, 1234)


def letters(n: int, value: bytes = b"v") -> list[DeadLetter]:
    return [DeadLetter(b"k%d" % i, value, "bad", "x", "src", 0, i) for i in range(n)]


def test_headers_are_the_design_contract_plus_the_bare_reason():
    assert dlq_headers(LETTER) == [
        ("error", b"not_json: line 1"),
        ("error-reason", b"not_json"),
        ("source-topic", b"fraud_alerts"),
        ("source-partition", b"2"),
        ("source-offset", b"1234"),
    ]


def test_long_details_are_shortened_to_valid_utf8():
    letter = DeadLetter(None, b"", "bad_value", "é" * 5000, "t", 0, 0)
    error = dict(dlq_headers(letter))["error"]
    assert len(error) <= MAX_ERROR_BYTES and error.endswith(b"...")
    error.decode()  # still UTF-8: no character was cut in half


def test_small_records_are_sent_as_they_are():
    record = prepare(LETTER, 100, 100)
    assert (record.key, record.value) == (LETTER.key, LETTER.value)
    assert "original-size" not in dict(record.headers)


def test_a_value_past_the_limit_is_cut_with_its_size_and_digest():
    value = b"0123456789" * 200_000  # 2 MB
    record = prepare(DeadLetter(b"k", value, "too_large", "big", "t", 0, 5), 900_000, 100)
    headers = dict(record.headers)
    assert record.value == value[:900_000]
    assert headers["original-size"] == b"2000000"
    assert headers["original-sha256"] == hashlib.sha256(value).hexdigest().encode()
    assert record.key == b"k" and "original-key-size" not in headers


def test_an_absurd_key_is_cut_too():
    key = b"u" * 50_000
    record = prepare(DeadLetter(key, b"v", "too_large", "big", "t", 0, 5), 100, 16)
    headers = dict(record.headers)
    assert record.key == b"u" * 16
    assert headers["original-key-size"] == b"50000"
    assert headers["original-key-sha256"] == hashlib.sha256(key).hexdigest().encode()
    assert record.value == b"v" and "original-size" not in headers


def test_the_defaults_fit_the_producer_and_an_alert_fits_whole():
    assert DEFAULT_MAX_VALUE_BYTES + DEFAULT_MAX_KEY_BYTES + HEADER_ROOM_BYTES <= MESSAGE_MAX_BYTES
    assert ALERT_MAX_BYTES <= DEFAULT_MAX_VALUE_BYTES  # a refused alert needs no cut


def test_limits_that_leave_no_room_for_headers_are_refused():
    with pytest.raises(ValueError, match="leave 8192 bytes for headers"):
        DlqConfig("b:9092", "t", max_value_bytes=1_000_000)
    with pytest.raises(ValueError, match="deadline_s=0 must be > 0"):
        DlqConfig("b:9092", "t", deadline_s=0)


class ScriptedProducer:
    """A stand-in for confluent_kafka.Producer: `script` decides each produce() call and
    each delivery ("ok", "fail", "buffer", "too_large", "never")."""

    instances: list[ScriptedProducer]

    def __init__(self, produce_script=(), delivery_script=(), max_value: int | None = None):
        self.produce_script = list(produce_script)
        self.delivery_script = list(delivery_script)
        self.max_value = max_value
        self.queue: list[dict[str, Any]] = []
        self.delivered: list[dict[str, Any]] = []
        self.purged = 0

    def produce(self, topic: str, **kwargs: Any) -> None:
        step = self.produce_script.pop(0) if self.produce_script else "ok"
        if step == "buffer":
            raise BufferError("Local: Queue full")
        value = kwargs["value"] or b""
        if step == "too_large" or (self.max_value is not None and len(value) > self.max_value):
            raise KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
        self.queue.append({"topic": topic, **kwargs})

    def poll(self, timeout: float) -> int:
        return 0

    def flush(self, timeout: float) -> int:
        keep = []
        for item in self.queue:
            step = self.delivery_script.pop(0) if self.delivery_script else "ok"
            if step == "never":
                keep.append(item)
            elif step == "ok":
                self.delivered.append(item)
                item["on_delivery"](None, None)
            else:
                code = {"fail": KafkaError._MSG_TIMED_OUT, "too_large": 10}[step]
                item["on_delivery"](KafkaError(code), None)
        self.queue = keep
        if keep:
            time.sleep(min(timeout, 0.01))
        return len(self.queue)

    def purge(self, in_queue: bool = True, in_flight: bool = True, blocking: bool = True):
        self.purged += len(self.queue)
        self.queue = []

    def __len__(self) -> int:
        return len(self.queue)


def publisher(*producers: ScriptedProducer, deadline_s: float = 2.0) -> DeadLetterPublisher:
    made = list(producers)
    return DeadLetterPublisher(
        DlqConfig("unused:9092", "x.dlq", deadline_s=deadline_s),
        producer_factory=lambda _conf: made.pop(0),
    )


def test_full_queue_and_failed_deliveries_are_retried_and_counted_once():
    producer = ScriptedProducer(produce_script=["buffer", "ok"], delivery_script=["fail", "ok"])
    confirmed: list[DeadLetter] = []
    pub = publisher(producer)
    assert pub.send_all(letters(2), confirmed.append) == 2
    assert [m["key"] for m in producer.delivered] == [b"k1", b"k0"]  # k0 re-sent
    assert sorted(c.source_offset for c in confirmed) == [0, 1]
    assert pub.pending == 0


def test_a_size_refusal_cuts_the_value_further_and_says_so():
    producer = ScriptedProducer(max_value=200_000)  # the producer's limit is lower than ours
    pub = publisher(producer)
    value = bytes(range(256)) * 4000  # 1,024,000 bytes
    pub.send_all([DeadLetter(b"k", value, "too_large", "big", "t", 0, 0)])
    (sent,) = producer.delivered
    headers = dict(sent["headers"])
    assert len(sent["value"]) <= 200_000 and value.startswith(sent["value"])
    assert headers["original-size"] == b"1024000"
    assert headers["original-sha256"] == hashlib.sha256(value).hexdigest().encode()


def test_a_broker_size_refusal_is_retried_smaller():
    producer = ScriptedProducer(delivery_script=["too_large", "ok"])
    pub = publisher(producer)
    pub.send_all([DeadLetter(b"k", b"x" * 500_000, "too_large", "big", "t", 0, 0)])
    assert [len(m["value"]) for m in producer.delivered] == [250_000]


def test_undelivered_letters_fail_within_the_deadline_and_are_purged():
    stuck = ScriptedProducer(delivery_script=["never"] * 100_000)
    fresh = ScriptedProducer()
    pub = publisher(stuck, fresh, deadline_s=0.3)
    for letter in letters(3):
        pub.send(letter)
    started = time.monotonic()
    with pytest.raises(DlqError, match=r"DLQ x\.dlq: 3 of 3 dead letters not confirmed within"):
        pub.flush()
    assert time.monotonic() - started < 2
    assert stuck.purged == 3 and len(stuck) == 0 and pub.pending == 0
    # The next publish gets a new producer and sends only its own letter.
    pub.send_all([DeadLetter(b"next", b"v", "bad", "x", "src", 0, 99)])
    assert [m["key"] for m in fresh.delivered] == [b"next"]


def test_a_queue_that_stays_full_fails_the_send_within_the_deadline():
    class Full(ScriptedProducer):
        def produce(self, topic: str, **kwargs: Any) -> None:
            raise BufferError("Local: Queue full")

        def poll(self, timeout: float) -> int:
            time.sleep(timeout)  # as librdkafka waits for deliveries that never come
            return 0

    pub = publisher(Full(), deadline_s=0.3)
    started = time.monotonic()
    with pytest.raises(DlqError, match=r"could not queue a dead letter within 0\.3 s"):
        pub.send(LETTER)
    assert 0.3 <= time.monotonic() - started < 2
    assert pub.pending == 0


def test_a_fatal_producer_error_fails_at_once():
    class Fatal(ScriptedProducer):
        def produce(self, topic: str, **kwargs: Any) -> None:
            raise KafkaException(KafkaError(KafkaError._FATAL, "fenced", fatal=True))

    pub = publisher(Fatal(), deadline_s=30)
    started = time.monotonic()
    with pytest.raises(DlqError, match="failed fatally"):
        pub.send(LETTER)
    assert time.monotonic() - started < 1
