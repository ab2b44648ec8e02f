"""The producer binary against a real Kafka broker: what it reports delivered is in the
topic, exactly the generator's stream, keyed and labelled per the contract; SIGTERM ends
it cleanly; metrics are served; a missing topic or broker is a clear startup error."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from infra.components.kafka import KafkaBroker
from infra.components.process import free_port
from infra.components.wait import wait_until
from libs.schemas.transaction import parse_transaction
from services.producer.generator import PATTERNS, GeneratorConfig, generate

PRODUCER = Path(os.environ["PRODUCER_BIN"]).absolute()


@pytest.fixture(scope="module")
def broker(tmp_path_factory) -> Iterator[KafkaBroker]:
    kafka = KafkaBroker(data_dir=tmp_path_factory.mktemp("kafka"))
    kafka.start()
    kafka.create_topics({"transactions": 3, "transactions-sigterm": 3, "transactions-metrics": 1})
    yield kafka
    kafka.stop()


class Run:
    """The producer as a child process, its JSON log lines in a file."""

    def __init__(self, tmp_path: Path, bootstrap: str, *args: str) -> None:
        self.log_path = tmp_path / f"producer-{time.monotonic_ns()}.log"
        self.started = datetime.now(UTC)
        with open(self.log_path, "wb") as log:
            self.popen = subprocess.Popen(
                [str(PRODUCER), "--bootstrap-servers", bootstrap, *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def wait(self, timeout: float) -> int:
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            raise AssertionError(
                f"producer still running after {timeout} s:\n{self.text()}"
            ) from None

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def lines(self) -> list[dict]:
        out = []
        for line in self.text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out

    def summary(self) -> dict:
        stops = [x for x in self.lines() if x["msg"].startswith("producer stopped")]
        assert len(stops) == 1, self.text()
        return stops[0]


def topic_size(bootstrap: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "sizer"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        total = 0
        for p in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            total += high - low
        return total
    finally:
        consumer.close()


def consume(bootstrap: str, topic: str, at_least: int, timeout: float = 60) -> list[Message]:
    """Every message of `topic` from the beginning, once `at_least` have been read."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "check", "enable.auto.commit": False}
    )
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    messages: list[Message] = []

    def read_enough() -> bool:
        for msg in consumer.consume(1000, timeout=0.5):
            assert msg.error() is None, msg.error()
            messages.append(msg)
        return len(messages) >= at_least

    try:
        wait_until(read_enough, timeout, f"{at_least} read", lambda: f"read {len(messages)}")
    finally:
        consumer.close()
    return messages


def scrape(port: int) -> dict[str, float]:
    """Samples as {'name{label="v",...}': value}."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            samples[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return samples


def test_count_run_delivers_the_generators_stream(broker, tmp_path):
    run = Run(tmp_path, broker.bootstrap, "--topic", "transactions", "--count", "2000",
              "--rate", "5000", "--seed", "7", "--metrics-port", "0")  # fmt: skip
    assert run.wait(60) == 0, run.text()
    summary = run.summary()
    assert (summary["sent"], summary["delivered"], summary["errors"]) == (2000, 2000, 0)
    assert summary["undelivered"] == 0
    assert summary["elapsed_seconds"] >= 0.39, "paced to --rate, not sent flat out"

    messages = consume(broker.bootstrap, "transactions", 2000)
    assert len(messages) == 2000 == topic_size(broker.bootstrap, "transactions")
    by_id = {}
    partitions_by_key: dict[bytes, set[int]] = {}
    for msg in messages:
        t = parse_transaction(msg.value())
        headers = dict(msg.headers())
        assert msg.key() == t.user_id.encode()
        assert set(headers) == {"fraud-label", "fraud-pattern"}
        label, pattern = headers["fraud-label"].decode(), headers["fraud-pattern"].decode()
        assert (label, pattern in PATTERNS) in {("1", True), ("0", False)}
        assert label == "1" or pattern == ""
        assert msg.timestamp()[1] == round(t.event_time.timestamp() * 1000)
        partitions_by_key.setdefault(msg.key(), set()).add(msg.partition())
        by_id[t.transaction_id] = (t, label == "1", pattern)
    assert len(by_id) == 2000
    assert all(len(p) == 1 for p in partitions_by_key.values())
    fraud = sum(is_fraud for _, is_fraud, _ in by_id.values())
    assert 0.07 <= fraud / 2000 <= 0.13
    assert summary["fraud_delivered"] == fraud

    # The topic holds exactly the seeded stream: slot 0's event time is the start time.
    start = min(t.event_time for t, _, _ in by_id.values())
    assert run.started - timedelta(seconds=1) <= start <= run.started + timedelta(seconds=30)
    expected = generate(GeneratorConfig(start_time=start, rate=5000, seed=7, count=2000))
    assert {
        x.transaction.transaction_id: (x.transaction, x.fraud_label, x.pattern) for x in expected
    } == by_id


def test_sigterm_flushes_and_exits_promptly(broker, tmp_path):
    port = free_port()
    run = Run(tmp_path, broker.bootstrap, "--topic", "transactions-sigterm", "--duration", "60",
              "--rate", "2000", "--seed", "8", "--metrics-port", str(port),
              "--log-interval", "1")  # fmt: skip
    try:
        consume(broker.bootstrap, "transactions-sigterm", 1, timeout=60)

        # Metrics are served while it runs, and count deliveries.
        normal = 'fraud_producer_messages_total{fraud_label="0",pattern="none"}'
        samples: dict[str, float] = {}

        def counted() -> bool:
            with contextlib.suppress(OSError):  # not listening yet
                samples.update(scrape(port))
            return samples.get(normal, 0) > 0

        wait_until(counted, 30, "counting deliveries", lambda: str(samples))
        for pattern in PATTERNS:
            assert (
                f'fraud_producer_messages_total{{fraud_label="1",pattern="{pattern}"}}' in samples
            )
        for name in (
            "fraud_producer_delivery_errors_total",
            "fraud_producer_send_rate",
            "fraud_producer_queue_length",
        ):
            assert name in samples, sorted(samples)

        # Progress lines while it runs.
        wait_until(
            lambda: any(x["msg"] == "progress" for x in run.lines()), 30, "logging progress",
            run.text,
        )  # fmt: skip
        progress = [x for x in run.lines() if x["msg"] == "progress"]
        assert {"sent", "delivered", "rate", "errors", "queued"} <= set(progress[0])
    finally:
        run.popen.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    assert run.wait(30) == 0, run.text()
    assert time.monotonic() - signalled < 10, "exits promptly after SIGTERM"

    summary = run.summary()
    assert "SIGTERM" in summary["reason"]
    assert summary["errors"] == 0 and summary["undelivered"] == 0
    delivered = summary["delivered"]
    assert 0 < delivered == summary["sent"] < 120_000
    messages = consume(broker.bootstrap, "transactions-sigterm", delivered)
    assert len(messages) == delivered == topic_size(broker.bootstrap, "transactions-sigterm")


def test_missing_topic_is_a_clear_startup_error(broker, tmp_path):
    run = Run(
        tmp_path,
        broker.bootstrap,
        "--topic",
        "no-such-topic",
        "--count",
        "10",
        "--metrics-port",
        "0",
    )
    assert run.wait(60) == 2, run.text()
    message = f"topic no-such-topic does not exist on {broker.bootstrap}; create it or run"
    assert any(message in x["msg"] and x["level"] == "ERROR" for x in run.lines()), run.text()
    from confluent_kafka.admin import AdminClient

    topics = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=10).topics
    assert "no-such-topic" not in topics


def test_unreachable_broker_is_a_clear_startup_error(tmp_path):
    nowhere = f"127.0.0.1:{free_port()}"
    run = Run(tmp_path, nowhere, "--startup-timeout", "2", "--metrics-port", "0")
    assert run.wait(60) == 2, run.text()
    assert any(
        x["msg"].startswith(f"cannot reach Kafka at {nowhere} within 2 s") for x in run.lines()
    ), run.text()


def test_broker_lost_undelivered_are_reported_at_the_flush_deadline(tmp_path):
    kafka = KafkaBroker(data_dir=tmp_path / "kafka")
    kafka.start()
    try:
        kafka.create_topics({"transactions": 1})
        run = Run(tmp_path, kafka.bootstrap, "--duration", "60", "--rate", "2000", "--seed", "9",
                  "--flush-timeout", "2", "--log-interval", "1", "--metrics-port", "0")  # fmt: skip
        consume(kafka.bootstrap, "transactions", 1)
        kafka.kill()

        def stuck() -> bool:
            return any(
                x["msg"] == "progress" and x["sent"] - x["delivered"] > 100 for x in run.lines()
            )

        wait_until(stuck, 30, "stuck with undelivered messages", run.text)
        run.popen.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        assert run.wait(30) == 1, run.text()
        assert time.monotonic() - signalled < 15, "gives up at --flush-timeout"
    finally:
        kafka.stop()
    summary = run.summary()
    assert summary["level"] == "ERROR" and summary["undelivered"] > 0
    assert summary["sent"] == summary["delivered"] + summary["errors"] + summary["undelivered"]
