"""The detector service against a real broker: alerts and DLQ records come out, metrics are
served, SIGTERM stops it cleanly, a restart resumes from its checkpoint, and a query that
fails (after its task was retried) turns readiness off and exits non-zero."""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from infra.components.kafka import KafkaBroker
from infra.components.kafka_io import TopicReader, produce
from infra.components.metrics_scrape import scrape, total
from infra.components.process import ManagedProcess, free_port
from libs.schemas.alert import parse_alert
from libs.schemas.transaction import Transaction, transaction_to_json

DETECTOR = Path("services/detector/detector")


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    kafka = KafkaBroker(data_dir=tmp_path_factory.mktemp("kafka"))
    kafka.start()
    kafka.create_topics({"transactions": 2, "fraud_alerts": 2, "transactions.dlq": 1})
    yield kafka
    kafka.stop()


def _detector(
    broker, tmp_path, metrics_port: int, extra: dict[str, str] | None = None
) -> ManagedProcess:
    env = dict(os.environ)
    env |= {
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
        "FRAUD_DETECTOR_CHECKPOINT_DIR": str(tmp_path / "checkpoints"),
        "FRAUD_DETECTOR_METRICS_PORT": str(metrics_port),
        "SPARK_MASTER": "local[2,4]",
        "FRAUD_DETECTOR_SHUFFLE_PARTITIONS": "2",
        "FRAUD_DETECTOR_DRIVER_MEMORY": "1g",
    } | (extra or {})
    logs = Path(os.environ.get("TEST_UNDECLARED_OUTPUTS_DIR", tmp_path))
    name = "detector-failing" if extra else "detector"
    proc = ManagedProcess("detector", [str(DETECTOR)], logs / f"{name}.log", env=env)
    proc.start()
    return proc


def _txn(user: str, at: datetime, amount: str, country: str) -> bytes:
    return transaction_to_json(
        Transaction(str(uuid.uuid4()), user, Decimal(amount), "EUR", "m", "travel", country, at)
    )


def test_alerts_dlq_metrics_shutdown_and_restart(broker, tmp_path):
    t0 = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=5)
    good = [
        (b"big", _txn("big", t0 + timedelta(seconds=5), "4000.00", "FR"), None),
        (b"hop", _txn("hop", t0 + timedelta(seconds=5), "10.00", "FR"), None),
        (b"hop", _txn("hop", t0 + timedelta(seconds=6), "10.00", "BR"), None),
        (b"calm", _txn("calm", t0 + timedelta(seconds=7), "10.00", "FR"), None),
    ]
    bad = [(b"x", b"{not json", None), (b"y", b'{"user_id": "y"}', None)]
    produce(broker.bootstrap, "transactions", good + bad)

    port = free_port()
    detector = _detector(broker, tmp_path, port)
    alerts = TopicReader(broker.bootstrap, "fraud_alerts")
    dlq = TopicReader(broker.bootstrap, "transactions.dlq")
    try:
        alerts.wait_for(
            lambda rs: {parse_alert(r.value).user_id for r in rs} >= {"big", "hop"},
            timeout=180,
            what="alerts for big and hop",
        )
        dlq.wait_for(lambda rs: len(rs) >= 2, timeout=60, what="two DLQ records")
        by_user = {parse_alert(r.value).user_id: parse_alert(r.value) for r in alerts.records}
        assert set(by_user) == {"big", "hop"}
        assert by_user["big"].high_value and by_user["big"].fraud_score == 2
        assert by_user["hop"].location_change and by_user["hop"].distinct_countries == 2
        assert sorted(r.headers["error-reason"] for r in dlq.records) == [
            b"missing_field",
            b"not_json",
        ]
        assert {r.value for r in dlq.records} == {b"{not json", b'{"user_id": "y"}'}

        def metrics_show_work() -> bool:
            samples = scrape(f"http://127.0.0.1:{port}/metrics")
            return (
                total(samples, "fraud_detector_batches_total") > 0
                and total(samples, "fraud_detector_dlq_messages_total") == 2
                and total(samples, "fraud_detector_alerts_emitted_total") >= 2
            )

        detector.wait_until(metrics_show_work, timeout=60, what="metrics showing the work")
        detector.terminate()
        assert detector.popen.wait(60) == 0

        # Restart from the checkpoint: new input is processed, old input is not re-read.
        produce(
            broker.bootstrap,
            "transactions",
            [(b"late-big", _txn("late-big", t0 + timedelta(seconds=20), "5000.00", "FR"), None)],
        )
        seen = len(alerts.records)
        detector = _detector(broker, tmp_path, free_port())
        alerts.wait_for(
            lambda rs: any(parse_alert(r.value).user_id == "late-big" for r in rs),
            timeout=180,
            what="alert after restart",
        )
        alerts.poll(3)
        after = [parse_alert(r.value).user_id for r in alerts.records[seen:]]
        assert after == ["late-big"]
    finally:
        detector.stop()
        alerts.close()
        dlq.close()


def test_a_failed_query_is_retried_then_ends_readiness_and_the_process(broker, tmp_path):
    """Publishing alerts to an invalid topic fails every attempt of the task: local[2,4]
    tries it 4 times, then the query fails, fraud_detector_ready drops to 0 and the
    detector exits with status 1 (an orchestrator restarts it; its probe sees it first)."""
    broker.create_topics({"transactions-failing": 1})
    t0 = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=5)
    produce(
        broker.bootstrap,
        "transactions-failing",
        [(b"big", _txn("big", t0 + timedelta(seconds=5), "4000.00", "FR"), None)],
    )
    port = free_port()
    detector = _detector(
        broker,
        tmp_path,
        port,
        {
            "FRAUD_DETECTOR_INPUT_TOPIC": "transactions-failing",
            "FRAUD_DETECTOR_ALERTS_TOPIC": "bad topic!",
        },
    )
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        detector.wait_until(
            lambda: total(scrape(url), "fraud_detector_ready") == 1, timeout=180, what="ready"
        )
        readiness = []
        deadline = time.monotonic() + 300
        while detector.running and time.monotonic() < deadline:
            with contextlib.suppress(OSError):  # metrics gone: the process is exiting
                readiness.append(total(scrape(url, timeout=1), "fraud_detector_ready"))
            time.sleep(0.2)
        assert detector.popen.wait(60) == 1
        log = detector.log_path.read_text(errors="replace")
        assert '"query stopped"' in log, log[-3000:]
        assert "failed 4 times" in log, "the task was not retried 4 times: " + log[-3000:]
        # The metrics outlive the query by the time Spark takes to stop: 0 is seen, and
        # never 1 again after it.
        print(f"readiness scraped while failing: {readiness[-5:]}")
        assert 0 in readiness, readiness[-10:]
        assert 1 not in readiness[readiness.index(0) :], readiness[-10:]
    finally:
        detector.stop()
