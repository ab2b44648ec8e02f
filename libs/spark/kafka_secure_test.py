"""Spark's Kafka source and sink with libs/kafka/security's options against the secure
broker: the detector's principal over SCRAM (SASL_SSL) and over mutual TLS (the PEM
certificate and key inlined), and the producer's principal refused on `fraud_alerts`."""

from __future__ import annotations

import pytest

from infra.components.kafka import KafkaBroker
from infra.components.kafka_certs import KafkaPki
from infra.components.kafka_io import end_offsets, produce
from infra.components.kafka_setup import PIPELINE_ACCESS, setup
from libs.spark.kafka import kafka_session

TOPICS = {"transactions": 1, "fraud_alerts": 1}


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    pki = KafkaPki.create(tmp_path_factory.mktemp("pki"), PIPELINE_ACCESS)
    kafka = KafkaBroker(data_dir=tmp_path_factory.mktemp("kafka"), pki=pki)
    kafka.start()
    setup(kafka.admin_config(), pki.passwords(), TOPICS)
    as_producer = {"bootstrap.servers": kafka.bootstrap, **pki.sasl("producer").librdkafka_config()}
    produce(kafka.bootstrap, "transactions", [(b"u", str(i).encode()) for i in range(20)],
            client=as_producer)  # fmt: skip
    yield kafka
    kafka.stop()


@pytest.fixture(scope="module")
def spark():
    session = kafka_session("spark-kafka-secure-test", master="local[1]")
    yield session
    session.stop()


def read(spark, bootstrap: str, options: dict[str, str]) -> list[int]:
    rows = (
        spark.read.format("kafka")
        .option("kafka.bootstrap.servers", bootstrap)
        .option("subscribe", "transactions")
        .option("startingOffsets", "earliest")
        .options(**options)
        .load()
        .selectExpr("CAST(CAST(value AS STRING) AS INT) AS v")
        .collect()
    )
    return sorted(r.v for r in rows)


def write(spark, bootstrap: str, options: dict[str, str], value: str) -> None:
    (
        spark.createDataFrame([(value,)], "value STRING")
        .write.format("kafka")
        .option("kafka.bootstrap.servers", bootstrap)
        .option("topic", "fraud_alerts")
        .options(**options)
        .save()
    )


def alerts(broker: KafkaBroker) -> int:
    return sum(end_offsets(broker.bootstrap, "fraud_alerts", client=broker.admin_config()).values())


def test_the_detector_reads_and_writes_over_scram(broker, spark):
    options = broker.pki.sasl("detector").spark_options()
    assert read(spark, broker.bootstrap, options) == list(range(20))
    write(spark, broker.bootstrap, options, "alert over SCRAM")
    assert alerts(broker) == 1


def test_the_detector_reads_and_writes_over_mutual_tls(broker, spark):
    options = broker.pki.mtls("detector").spark_options()
    assert "kafka.ssl.keystore.key" in options  # inlined: executors need no files
    assert read(spark, broker.ssl_bootstrap, options) == list(range(20))
    before = alerts(broker)
    write(spark, broker.ssl_bootstrap, options, "alert over mTLS")
    assert alerts(broker) == before + 1


def test_the_producer_principal_cannot_write_alerts_through_spark(broker, spark):
    before = alerts(broker)
    options = broker.pki.sasl("producer").spark_options()
    options["kafka.max.block.ms"] = "10000"
    with pytest.raises(Exception, match=r"(?i)authoriz"):
        write(spark, broker.bootstrap, options, "forged")
    assert alerts(broker) == before
