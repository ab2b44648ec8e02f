"""A secure broker (SASL_SSL with SCRAM-SHA-512, mutual TLS, StandardAuthorizer) after the
setup step: each attack is refused with a clear error and writes nothing; each service's
principal can do what it needs and no more; the setup step is idempotent."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, Producer

from infra.components.kafka import KafkaBroker
from infra.components.kafka_certs import ADMIN, KafkaPki
from infra.components.kafka_io import TopicReader, end_offsets
from infra.components.kafka_setup import PIPELINE_ACCESS, acl_bindings, setup
from libs.kafka.security import KafkaSecurity
from libs.schemas.topics import (
    ALERTS_DLQ_TOPIC,
    ALERTS_TOPIC,
    NOTIFICATIONS_DLQ_TOPIC,
    TRANSACTIONS_DLQ_TOPIC,
    TRANSACTIONS_TOPIC,
)

TOPICS = {
    TRANSACTIONS_TOPIC: 1,
    ALERTS_TOPIC: 1,
    TRANSACTIONS_DLQ_TOPIC: 1,
    ALERTS_DLQ_TOPIC: 1,
    NOTIFICATIONS_DLQ_TOPIC: 1,
}
FORGED = b'{"user_id": "u1", "version": 2147483647, "fraud_score": 0}'


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> KafkaPki:
    return KafkaPki.create(tmp_path_factory.mktemp("pki"), PIPELINE_ACCESS)


@pytest.fixture(scope="module")
def broker(tmp_path_factory, pki):
    kafka = KafkaBroker(data_dir=tmp_path_factory.mktemp("kafka"), pki=pki)
    started = time.monotonic()
    kafka.start()
    setup(kafka.admin_config(), pki.passwords(), TOPICS)
    print(f"secure broker up and set up in {time.monotonic() - started:.1f} s")
    yield kafka
    kafka.stop()


def sasl(broker: KafkaBroker, principal: str) -> dict[str, Any]:
    return {"bootstrap.servers": broker.bootstrap, **broker.pki.sasl(principal).librdkafka_config()}


def ends(broker: KafkaBroker, topic: str) -> int:
    return sum(end_offsets(broker.bootstrap, topic, client=broker.admin_config()).values())


class Lines(logging.Handler):
    """librdkafka's log lines, as text."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def try_produce(
    config: Mapping[str, Any], topic: str, value: bytes = b"x", lines: Lines | None = None
) -> tuple[Any, list]:
    """Produce one record; (its delivery error or None, the client's errors)."""
    errors: list[KafkaError] = []
    delivered: list[Any] = []
    logger = logging.getLogger(f"librdkafka.{time.monotonic_ns()}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(lines or Lines())
    producer = Producer({**config, "message.timeout.ms": 4000, "error_cb": errors.append,
                         "logger": logger})  # fmt: skip
    producer.produce(topic, value=value, on_delivery=lambda err, _m: delivered.append(err))
    producer.flush(10)
    assert delivered, "no delivery report within the message timeout"
    return delivered[0], errors


def consume_one(config: Mapping[str, Any], topic: str, group: str) -> tuple[Any, list]:
    """Subscribe with `group` and read; (the first message or error, the client's errors)."""
    errors: list[KafkaError] = []
    consumer = Consumer({**config, "group.id": group, "auto.offset.reset": "earliest",
                         "error_cb": errors.append, "log_level": 2})  # fmt: skip
    consumer.subscribe([topic])
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None:
                return msg, errors
        return None, errors
    finally:
        consumer.close()


# -- refused ------------------------------------------------------------------------------


def test_a_client_without_credentials_is_refused(broker):
    before = ends(broker, TRANSACTIONS_TOPIC)
    # TLS to the SCRAM listener but no SASL: the broker drops the connection.
    no_sasl = {"bootstrap.servers": broker.bootstrap, "security.protocol": "SSL",
               "ssl.ca.location": str(broker.pki.ca_file)}  # fmt: skip
    err, _errors = try_produce(no_sasl, TRANSACTIONS_TOPIC)
    assert err is not None and err.code() == KafkaError._MSG_TIMED_OUT
    # TLS without a client certificate to the mutual-TLS listener: handshake refused.
    no_cert = {**no_sasl, "bootstrap.servers": broker.ssl_bootstrap}
    err, errors = try_produce(no_cert, TRANSACTIONS_TOPIC)
    assert err is not None
    assert any("certificate required" in e.str() for e in errors), errors
    assert ends(broker, TRANSACTIONS_TOPIC) == before


def test_a_wrong_password_is_refused(broker):
    before = ends(broker, TRANSACTIONS_TOPIC)
    config = {**sasl(broker, "producer"), "sasl.password": "not-the-password"}
    err, errors = try_produce(config, TRANSACTIONS_TOPIC)
    assert err is not None
    assert any(
        e.code() == KafkaError._AUTHENTICATION and "invalid credentials" in e.str() for e in errors
    ), errors
    assert ends(broker, TRANSACTIONS_TOPIC) == before


def test_plaintext_to_the_tls_listener_is_refused(broker):
    before = ends(broker, TRANSACTIONS_TOPIC)
    lines = Lines()
    err, errors = try_produce({"bootstrap.servers": broker.bootstrap}, TRANSACTIONS_TOPIC,
                              lines=lines)  # fmt: skip
    assert err is not None and err.code() == KafkaError._MSG_TIMED_OUT, err
    # The TLS listener hangs up on the first (plaintext) request.
    assert any("Disconnected" in line and "APIVERSION_QUERY" in line for line in lines.lines), (
        errors,
        lines.lines,
    )
    assert ends(broker, TRANSACTIONS_TOPIC) == before


def test_the_producer_cannot_forge_an_alert(broker):
    err, _ = try_produce(sasl(broker, "producer"), ALERTS_TOPIC, FORGED)
    assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, err
    # Not over mutual TLS either (same principal, same ACLs).
    mtls = {"bootstrap.servers": broker.ssl_bootstrap,
            **broker.pki.mtls("producer").librdkafka_config()}  # fmt: skip
    err, _ = try_produce(mtls, ALERTS_TOPIC, FORGED)
    assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, err
    assert ends(broker, ALERTS_TOPIC) == 0


@pytest.mark.parametrize(
    ("principal", "topic"),
    [
        ("sink", ALERTS_TOPIC),  # the sink reads alerts, it does not write them
        ("quality", TRANSACTIONS_TOPIC),
        ("notifier", ALERTS_TOPIC),
        ("detector", TRANSACTIONS_TOPIC),
        ("producer", TRANSACTIONS_DLQ_TOPIC),
    ],
)
def test_no_other_principal_writes_where_it_may_not(broker, principal, topic):
    before = ends(broker, topic)
    err, _ = try_produce(sasl(broker, principal), topic, FORGED)
    assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, err
    assert ends(broker, topic) == before


def test_reading_needs_the_topic_and_the_group(broker):
    msg, _ = consume_one(sasl(broker, "producer"), TRANSACTIONS_TOPIC, "fraud-alert-sink")
    assert msg is not None and msg.error() is not None
    assert msg.error().code() in (KafkaError.TOPIC_AUTHORIZATION_FAILED,
                                  KafkaError.GROUP_AUTHORIZATION_FAILED), msg.error()  # fmt: skip
    msg, _ = consume_one(sasl(broker, "sink"), ALERTS_TOPIC, "someone-elses-group")
    assert msg is not None and msg.error() is not None
    assert msg.error().code() == KafkaError.GROUP_AUTHORIZATION_FAILED, msg.error()


# -- allowed ------------------------------------------------------------------------------


def test_each_principal_does_what_it_may(broker):
    producer, detector = sasl(broker, "producer"), sasl(broker, "detector")
    assert try_produce(producer, TRANSACTIONS_TOPIC, b"tx")[0] is None
    msg, errors = consume_one(detector, TRANSACTIONS_TOPIC, "spark-kafka-source-test")
    assert msg is not None and msg.error() is None, (msg and msg.error(), errors)
    assert try_produce(detector, ALERTS_TOPIC, b"alert")[0] is None
    assert try_produce(detector, TRANSACTIONS_DLQ_TOPIC, b"bad tx")[0] is None

    sink = sasl(broker, "sink")
    msg, errors = consume_one(sink, ALERTS_TOPIC, "fraud-alert-sink")
    assert msg is not None and msg.error() is None and msg.value() == b"alert", errors
    assert try_produce(sink, ALERTS_DLQ_TOPIC, b"bad alert")[0] is None

    for topic in (TRANSACTIONS_TOPIC, ALERTS_TOPIC):
        msg, errors = consume_one(sasl(broker, "quality"), topic, "fraud-quality")
        assert msg is not None and msg.error() is None, errors

    notifier = sasl(broker, "notifier")
    msg, errors = consume_one(notifier, ALERTS_TOPIC, "fraud-notifier")
    assert msg is not None and msg.error() is None, errors
    assert try_produce(notifier, NOTIFICATIONS_DLQ_TOPIC, b"undeliverable")[0] is None


def test_mutual_tls_authenticates_as_the_certificates_cn(broker):
    config = {"bootstrap.servers": broker.ssl_bootstrap,
              **broker.pki.mtls("producer").librdkafka_config()}  # fmt: skip
    before = ends(broker, TRANSACTIONS_TOPIC)
    assert try_produce(config, TRANSACTIONS_TOPIC, b"tx over mTLS")[0] is None
    reader = TopicReader(broker.bootstrap, TRANSACTIONS_TOPIC, client=broker.admin_config())
    try:
        reader.wait_for(lambda r: len(r) > before, 20, "the mTLS record")
    finally:
        reader.close()
    assert reader.records[-1].value == b"tx over mTLS"


def test_the_setup_step_is_idempotent(broker, pki):
    from confluent_kafka.admin import (
        AclBindingFilter,
        AclOperation,
        AclPermissionType,
        AdminClient,
        ResourcePatternType,
        ResourceType,
    )

    setup(broker.admin_config(), pki.passwords(), TOPICS)  # again: nothing changes
    admin = AdminClient(broker.admin_config())
    everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                                  AclOperation.ANY, AclPermissionType.ANY)  # fmt: skip
    acls = admin.describe_acls(everything).result(timeout=10)
    assert len(acls) == len(acl_bindings(PIPELINE_ACCESS))
    assert try_produce(sasl(broker, "producer"), TRANSACTIONS_TOPIC)[0] is None


def test_the_admin_is_a_super_user_and_the_broker_log_has_no_password(broker, pki):
    err, _ = try_produce(sasl(broker, ADMIN), ALERTS_DLQ_TOPIC, b"admin may")
    assert err is None
    log = broker.process.log_path.read_text(errors="replace")
    for principal, password in pki.passwords().items():
        assert password not in log, f"{principal}'s password is in the broker log"


def test_client_settings_from_the_pki_are_consistent(pki):
    assert pki.sasl("sink") == KafkaSecurity(
        "SASL_SSL",
        kafka_sasl_username="sink",
        kafka_password_file=pki.password_file("sink"),
        kafka_ca_file=pki.ca_file,
    )
    assert pki.password("sink") not in repr(pki.sasl("sink"))


def test_the_setup_cli_runs_as_the_admin_over_mutual_tls(broker, pki, capsys):
    from infra.components.kafka_setup import main

    argv = [
        f"--bootstrap-servers={broker.ssl_bootstrap}",
        "--kafka-security-protocol=SSL",
        f"--kafka-ca-file={pki.ca_file}",
        f"--kafka-cert-file={pki.cert_file(ADMIN)}",
        f"--kafka-key-file={pki.key_file(ADMIN)}",
        f"--users-dir={pki.directory}",
    ]
    assert main(argv) == 0
    out = capsys.readouterr()
    assert "6 SCRAM users" in out.out, out
    assert not any(p in out.out + out.err for p in pki.passwords().values())
    assert try_produce(sasl(broker, "producer"), TRANSACTIONS_TOPIC)[0] is None
    # Without the admin's certificate the setup is refused, and says so.
    no_admin = [f"--bootstrap-servers={broker.bootstrap}", "--kafka-security-protocol=SSL",
                f"--kafka-ca-file={pki.ca_file}", "--timeout=3"]  # fmt: skip
    assert main(no_admin) == 1
    assert "kafka_setup:" in capsys.readouterr().err
