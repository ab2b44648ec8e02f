"""Spark (pyspark) with the pinned connector reads a Kafka topic as a stream."""

from __future__ import annotations

import pytest
from confluent_kafka import Producer

from infra.components.kafka import KafkaBroker
from libs.spark.kafka import kafka_session


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    kafka = KafkaBroker(data_dir=tmp_path_factory.mktemp("kafka"))
    kafka.start()
    yield kafka
    kafka.stop()


def test_structured_stream_reads_every_message(broker, tmp_path):
    broker.create_topics({"spark-in": 2})
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    expected = {f"k{i % 5}": 0 for i in range(5)}
    for i in range(120):
        producer.produce("spark-in", key=f"k{i % 5}".encode(), value=str(i).encode())
        expected[f"k{i % 5}"] += i
    assert producer.flush(30) == 0

    spark = kafka_session("spark-kafka-test", master="local[2]")
    try:
        stream = (
            spark.readStream.format("kafka")
            .option("kafka.bootstrap.servers", broker.bootstrap)
            .option("subscribe", "spark-in")
            .option("startingOffsets", "earliest")
            .load()
            .selectExpr("CAST(key AS STRING) AS k", "CAST(CAST(value AS STRING) AS INT) AS v")
        )
        query = (
            stream.writeStream.format("memory")
            .queryName("spark_in")
            .option("checkpointLocation", str(tmp_path / "checkpoint"))
            .trigger(availableNow=True)
            .start()
        )
        query.awaitTermination(240)
        assert query.exception() is None
        rows = spark.sql(
            "SELECT k, SUM(v) AS total, COUNT(*) AS n FROM spark_in GROUP BY k"
        ).collect()
        assert {r.k: r.total for r in rows} == expected
        assert sum(r.n for r in rows) == 120
    finally:
        spark.stop()
