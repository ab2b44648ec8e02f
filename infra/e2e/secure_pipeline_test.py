"""The whole pipeline over TLS + SCRAM-SHA-512 with ACLs, each service as its own principal:
a seeded stream written as the producer's principal and then the producer service itself
go through the detector (Spark source, sink and DLQ producer) and the alert sink, and the
`alerts` table equals the independent reference. No generated password appears in any
service's log or in any service's --help."""

from __future__ import annotations

import os
import subprocess
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from infra.components.kafka_io import TopicReader, end_offsets, produce
from infra.components.wait import wait_until
from infra.e2e import harness
from infra.stack import KAFKA_PRINCIPALS, SERVICES, DetectorSettings, Ports, Stack
from infra.testing.table import keyed_diff
from libs.runfiles.runfiles import runfiles_root
from libs.schemas.topics import ALERTS_TOPIC, TRANSACTIONS_DLQ_TOPIC, TRANSACTIONS_TOPIC
from libs.schemas.transaction import parse_transaction


@pytest.fixture(scope="module")
def stack():
    base = Path(tempfile.mkdtemp(prefix="e2e-secure-", dir="/tmp"))
    stack = Stack(
        base_dir=base,
        ports=Ports.free(),
        partitions=1,
        detector=DetectorSettings(shuffle_partitions=2, driver_memory="1g"),
        secure=True,
    )
    try:
        stack.start_infrastructure(prometheus=False)
        yield stack
    finally:
        stack.stop()
        harness.keep_logs(base / "logs", "secure")
        stack.wipe()


def table_equals(stack: Stack, expected: dict) -> None:
    try:
        wait_until(
            lambda: harness.table_alerts(stack.dsn) == expected,
            timeout=240,
            what="alerts table equals the reference",
            tolerate=Exception,  # the sink creates the table once it is up
        )
    except TimeoutError:
        raise AssertionError(keyed_diff(expected, harness.table_alerts(stack.dsn))) from None


def test_the_pipeline_over_tls_and_scram_matches_the_reference(stack):
    assert stack.pki is not None
    stack.start_service("alert_sink")
    stack.start_service("detector")
    stack.start_service("quality")
    t0 = harness.window_start(datetime.now(UTC) - timedelta(minutes=30))
    events = harness.generated(t0, seed=7, count=800, rate=25.0) + harness.edge_cases(
        t0 + timedelta(seconds=60)
    )
    bad = harness.bad_records(t0 + timedelta(seconds=60))
    as_producer = stack.pki.sasl("producer").librdkafka_config()
    produce(stack.bootstrap, TRANSACTIONS_TOPIC, [e.record() for e in events + bad],
            client=as_producer)  # fmt: skip
    expected = harness.reference_alerts([e.txn for e in events if e.txn is not None])
    assert len(expected) > 10
    table_equals(stack, expected)

    # Bad records reached transactions.dlq through the detector's DLQ producer (its own
    # principal, librdkafka in the Python workers).
    dlq = TopicReader(stack.bootstrap, TRANSACTIONS_DLQ_TOPIC, client=stack.kafka_client)
    try:
        dlq.wait_for(lambda rs: len(rs) >= len(bad), timeout=120, what="DLQ records")
    finally:
        dlq.close()

    # Now the producer service itself, as its principal: every transaction on the topic
    # (read back as the admin) is in the reference.
    before = sum(end_offsets(stack.bootstrap, TRANSACTIONS_TOPIC,
                             client=stack.kafka_client).values())  # fmt: skip
    producer = stack.start_service("producer", ["--count", "300", "--rate", "150", "--seed", "3"])
    assert producer.popen is not None and producer.popen.wait(120) == 0, (
        producer.log_path.read_text(errors="replace")[-3000:]
    )
    records = TopicReader(stack.bootstrap, TRANSACTIONS_TOPIC, client=stack.kafka_client)
    try:
        records.wait_for(lambda rs: len(rs) >= before + 300, 60, "the producer's records")
    finally:
        records.close()
    good = [e.txn for e in events if e.txn is not None]
    from_service = [parse_transaction(r.value) for r in records.records[before:]]
    assert len(from_service) == 300
    table_equals(stack, harness.reference_alerts(good + from_service))

    # The detector's alerts really went over the secure broker, as its principal.
    assert sum(end_offsets(stack.bootstrap, ALERTS_TOPIC, client=stack.kafka_client).values())


def test_no_secret_in_any_log_or_help(stack):
    assert stack.pki is not None
    secrets = stack.pki.passwords()
    assert len(secrets) == len(KAFKA_PRINCIPALS) + 1  # and the admin's
    logs = {p.name: p.read_text(errors="replace") for p in (stack.base_dir / "logs").iterdir()}
    logs["kafka broker"] = stack.kafka.process.log_path.read_text(errors="replace")
    assert {"alert_sink.log", "detector.log", "quality.log", "producer.log"} <= set(logs)
    binaries = {**SERVICES, "notifier": "services/notifier/notifier"}
    for name, path in binaries.items():
        env = {**os.environ, **stack.kafka_security_env(name)}
        shown = subprocess.run([str(runfiles_root() / "_main" / path), "--help"], env=env,
                               capture_output=True, text=True, timeout=60)  # fmt: skip
        assert shown.returncode == 0, shown.stderr
        assert "--kafka-password-file" in shown.stdout, name
        # --help shows each variable's name and the built-in default, never its value.
        assert f"{KAFKA_PRINCIPALS[name][1]}_KAFKA_PASSWORD_FILE" in shown.stdout, name
        logs[f"{name} --help"] = shown.stdout + shown.stderr
    for where, text in logs.items():
        for principal, password in secrets.items():
            assert password not in text, f"{principal}'s password is in {where}"


def test_a_service_with_a_wrong_password_stops_at_start_and_writes_nothing(stack, tmp_path):
    assert stack.pki is not None
    wrong = tmp_path / "wrong.password"
    wrong.write_text("not-the-producer-password\n")
    before = sum(end_offsets(stack.bootstrap, TRANSACTIONS_TOPIC,
                             client=stack.kafka_client).values())  # fmt: skip
    env = {"FRAUD_PRODUCER_KAFKA_PASSWORD_FILE": str(wrong)}
    producer = stack.start_service("producer", ["--count", "10", "--startup-timeout", "5"], env)
    assert producer.popen is not None and producer.popen.wait(60) == 2  # EXIT_STARTUP
    log = producer.log_path.read_text(errors="replace")
    # The start-up error names the broker and what the client was told.
    assert "cannot reach Kafka at " + stack.bootstrap in log, log[-2000:]
    assert "Authentication failed" in log and "invalid credentials" in log, log[-2000:]
    assert "not-the-producer-password" not in log
    after = sum(end_offsets(stack.bootstrap, TRANSACTIONS_TOPIC,
                            client=stack.kafka_client).values())  # fmt: skip
    assert after == before
