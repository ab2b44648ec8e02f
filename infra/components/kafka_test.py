"""The pinned Kafka broker starts in KRaft mode and round-trips messages with confluent-kafka."""

from __future__ import annotations

import pytest
from confluent_kafka import Consumer, Producer

from infra.components.kafka import KafkaBroker
from infra.components.wait import wait_until


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    kafka = KafkaBroker(data_dir=tmp_path_factory.mktemp("kafka"))
    seconds = kafka.start()
    print(f"kafka ready in {seconds:.1f} s at {kafka.bootstrap}")
    yield kafka
    kafka.stop()


def test_produce_and_consume_keyed_messages(broker):
    broker.create_topics({"roundtrip": 3})
    producer = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True})
    sent = {f"user-{i % 7}:{i}".encode(): f"user-{i % 7}".encode() for i in range(200)}
    for value, key in sent.items():
        producer.produce("roundtrip", key=key, value=value)
    assert producer.flush(30) == 0

    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": "roundtrip-test",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe(["roundtrip"])
    received: dict[bytes, tuple[bytes, int]] = {}

    def received_all() -> bool:
        for msg in consumer.consume(1000, timeout=0.5):
            assert msg.error() is None, msg.error()
            received[msg.value()] = (msg.key(), msg.partition())
        return len(received) >= len(sent)

    try:
        wait_until(received_all, 60, "every record read back", lambda: f"{len(received)} read")
    finally:
        consumer.close()

    assert set(received) == set(sent)
    assert all(received[v][0] == k for v, k in sent.items())
    # The same key always lands in the same partition (per-user ordering).
    partitions_by_key: dict[bytes, set[int]] = {}
    for key, partition in received.values():
        partitions_by_key.setdefault(key, set()).add(partition)
    assert all(len(p) == 1 for p in partitions_by_key.values())
    assert len({p for ps in partitions_by_key.values() for p in ps}) > 1


def test_topics_are_not_created_implicitly(broker):
    from confluent_kafka.admin import AdminClient

    producer = Producer({"bootstrap.servers": broker.bootstrap, "message.timeout.ms": 3000})
    producer.produce("never-created", value=b"x")
    producer.flush(10)
    topics = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=10).topics
    assert "never-created" not in topics


def test_create_topics_is_idempotent(broker):
    broker.create_topics({"twice": 2})
    broker.create_topics({"twice": 2})
    from confluent_kafka.admin import AdminClient

    meta = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=10)
    assert len(meta.topics["twice"].partitions) == 2
