"""The dead-letter publisher against a real broker: a 2 MB record (which the broker takes
lz4-compressed, but librdkafka refuses to produce) arrives cut, with the size and SHA-256
of the original; an unreachable broker fails the flush within its deadline, with a clear
error, and leaves nothing that a later producer or the old one could still deliver."""

from __future__ import annotations

import hashlib
import time

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer

from infra.components.kafka import KafkaBroker
from infra.components.kafka_io import TopicReader, end_offsets
from infra.components.process import free_port
from libs.dlq.dlq import (
    DEFAULT_MAX_VALUE_BYTES,
    DeadLetter,
    DeadLetterPublisher,
    DlqConfig,
    DlqError,
)

TOPIC = "transactions.dlq"


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    kafka = KafkaBroker(data_dir=tmp_path_factory.mktemp("kafka"))
    kafka.start()
    kafka.create_topics({TOPIC: 1, "transactions": 1})
    yield kafka
    kafka.stop()


def test_a_2mb_record_is_cut_and_described(broker):
    value = b'{"pad": "' + b"ab" * 1_000_000 + b'"}'  # 2 MB, compresses to almost nothing
    # The broker accepts it (lz4), but the DLQ producer could not re-produce it as it is.
    big = Producer({"bootstrap.servers": broker.bootstrap, "compression.type": "lz4",
                    "message.max.bytes": 4_000_000})  # fmt: skip
    big.produce("transactions", key=b"u1", value=value)
    assert big.flush(30) == 0
    with pytest.raises(KafkaException) as info:
        Producer({"bootstrap.servers": broker.bootstrap}).produce(TOPIC, value=value)
    assert info.value.args[0].code() == KafkaError.MSG_SIZE_TOO_LARGE

    pub = DeadLetterPublisher(DlqConfig(broker.bootstrap, TOPIC, deadline_s=30))
    letter = DeadLetter(b"u1", value, "too_large", "2000011 bytes > 65536", "transactions", 0, 7)
    assert pub.send_all([letter]) == 1

    reader = TopicReader(broker.bootstrap, TOPIC)
    try:
        reader.wait_for(lambda records: len(records) >= 1, 60, "the dead letter")
    finally:
        reader.close()
    (record,) = reader.records
    assert record.key == b"u1"
    assert record.value == value[:DEFAULT_MAX_VALUE_BYTES]
    assert record.headers["original-size"] == str(len(value)).encode()
    assert record.headers["original-sha256"] == hashlib.sha256(value).hexdigest().encode()
    assert record.headers["error"] == b"too_large: 2000011 bytes > 65536"
    assert record.headers["error-reason"] == b"too_large"
    assert (record.headers["source-topic"], record.headers["source-partition"]) == (
        b"transactions",
        b"0",
    )
    assert record.headers["source-offset"] == b"7"


def test_unreachable_broker_fails_in_time_and_leaves_nothing_behind(tmp_path):
    port = free_port()
    pub = DeadLetterPublisher(
        DlqConfig(f"127.0.0.1:{port}", TOPIC, deadline_s=3),
        # The client alone would keep these for 10 minutes: only the purge removes them.
        producer_options={"message.timeout.ms": 600_000, "log_level": 3},
    )
    for offset in range(3):
        pub.send(DeadLetter(b"old", b"old-%d" % offset, "not_json", "x", "transactions", 0, offset))
    old_producer = pub.producer
    started = time.monotonic()
    with pytest.raises(DlqError) as info:
        pub.flush()
    took = time.monotonic() - started
    print(f"flush failed after {took:.2f} s: {info.value}")
    assert 3 <= took < 8
    assert f"DLQ {TOPIC}: 3 of 3 dead letters not confirmed within 3 s" in str(info.value)
    assert "queue was purged" in str(info.value)
    assert pub.pending == 0
    # len() also counts client events (a "brokers down" error) that land after the purge;
    # flush serves those at once but would wait out its timeout for any message left queued.
    assert old_producer.flush(2) == 0

    # The broker comes up on that address: the next publish (a new producer) sends only its
    # own letter, and the old producer has nothing left to deliver either.
    kafka = KafkaBroker(data_dir=tmp_path / "kafka", port=port)
    kafka.start()
    try:
        kafka.create_topics({TOPIC: 1})
        assert pub.send_all([DeadLetter(b"new", b"new", "not_json", "x", "t", 0, 9)]) == 1
        assert pub.producer is not old_producer
        assert old_producer.flush(10) == 0
        reader = TopicReader(kafka.bootstrap, TOPIC)
        try:
            reader.wait_for(lambda records: len(records) >= 1, 60, "the new dead letter")
        finally:
            reader.close()
        assert [(r.key, r.value) for r in reader.records] == [(b"new", b"new")]
        assert end_offsets(kafka.bootstrap, TOPIC) == {0: 1}
    finally:
        kafka.stop()
