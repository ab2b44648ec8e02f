"""The service images, run under podman on the host network against the local stack's
Kafka and PostgreSQL, process a stream end to end: the producer image's transactions,
read back from Kafka, give exactly the alerts an independent reference computes, and
the detector and sink images put exactly those in the `alerts` table."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from infra.components import podman
from infra.components.kafka_io import TopicReader
from infra.components.metrics_scrape import scrape, total
from infra.components.wait import wait_until
from infra.e2e import harness
from infra.stack import DetectorSettings, Ports, Stack
from infra.testing.table import keyed_diff
from libs.schemas.transaction import parse_transaction

TARBALLS = {
    "producer": "PRODUCER_TARBALL",
    "detector": "DETECTOR_TARBALL",
    "alert_sink": "ALERT_SINK_TARBALL",
}
COUNT = 3000  # 10 s of traffic at 300/s


def _runfile(env_var: str) -> Path:
    return Path(os.environ["TEST_SRCDIR"]) / "_main" / os.environ[env_var]


@pytest.fixture(scope="module")
def stack():
    images = {name: podman.load(_runfile(var)) for name, var in TARBALLS.items()}
    base = Path(tempfile.mkdtemp(prefix="e2e-containers-", dir="/tmp"))
    stack = Stack(
        base_dir=base,
        ports=Ports.free(),
        detector=DetectorSettings(shuffle_partitions=2, driver_memory="1g"),
        containers=images,
    )
    try:
        stack.start_infrastructure(prometheus=False)
        yield stack
    finally:
        stack.stop()
        logs = os.environ.get("TEST_UNDECLARED_OUTPUTS_DIR")
        if logs and (base / "logs").is_dir():
            for log in (base / "logs").iterdir():
                Path(logs, f"containers-{log.name}").write_bytes(log.read_bytes())
        stack.wipe()


def test_images_process_a_stream_into_exactly_the_expected_alerts(stack):
    stack.start_service("alert_sink")
    stack.start_service("detector")
    stack.wait_metrics("alert_sink", timeout=60)
    stack.wait_metrics("detector", timeout=240)  # Spark in a fresh container: 20-60 s
    stack.start_service("producer", args=["--count", str(COUNT), "--rate", "300", "--seed", "7"])

    reader = TopicReader(stack.bootstrap, "transactions")

    def all_produced() -> bool:
        reader.poll(1.0)
        return len(reader.records) >= COUNT

    wait_until(all_produced, 120, "the producer image sent every transaction", tolerate=Exception)
    transactions = [parse_transaction(record.value) for record in reader.records]
    assert len(transactions) == COUNT
    expected = harness.reference_alerts(transactions)
    assert expected, "a seeded stream with injected fraud must give alerts"

    detector = stack.metrics_url("detector")
    wait_until(
        lambda: total(scrape(detector), "fraud_detector_input_rows_total") >= COUNT,
        timeout=180,
        what="detector read every transaction",
        tolerate=Exception,
    )
    try:
        wait_until(
            lambda: harness.table_alerts(stack.dsn) == expected,
            120,
            "alerts table complete",
            tolerate=Exception,
        )
    except TimeoutError:
        pytest.fail(keyed_diff(expected, harness.table_alerts(stack.dsn)))

    # The producer container exits 0 once its count is sent; the others stop on SIGTERM.
    assert stack.services["producer"].popen.wait(timeout=60) == 0
    for name in ("detector", "alert_sink"):
        assert stack.stop_service(name) == 0, f"{name} container did not stop cleanly"
