"""The compose stack (everything but the Grafana profile) under podman: `up` loads the
Bazel-built images and returns once every service is healthy; the producer container's
transactions, read back from Kafka through the published port, give exactly the alerts
an independent reference computes, and those are what PostgreSQL holds; Prometheus
scrapes every service; `down --volumes` removes it all."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from infra.components import podman
from infra.components.kafka_io import TopicReader
from infra.components.process import free_port
from infra.compose import compose_cli
from infra.e2e import harness
from infra.stack import wait
from libs.schemas.transaction import parse_transaction

RATE, DURATION = 100, 40  # the producer container sends 4,000 transactions, then exits
PORTS = [
    "KAFKA_PORT", "POSTGRES_PORT", "PROMETHEUS_PORT", "SPARK_MASTER_UI_PORT",
    "PRODUCER_METRICS_PORT", "SINK_METRICS_PORT", "DETECTOR_METRICS_PORT",
    "QUALITY_METRICS_PORT", "GRAFANA_PORT",
]  # fmt: skip


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """The stack on free ports, its own project name and a random password."""
    env = {name: str(free_port()) for name in PORTS}
    env |= {
        "POSTGRES_USER": "fraud",
        "POSTGRES_PASSWORD": secrets.token_urlsafe(12),
        "POSTGRES_DB": "fraud",
        "GRAFANA_ADMIN_PASSWORD": secrets.token_urlsafe(12),
        "PRODUCER_RATE": str(RATE),
        "PRODUCER_DURATION": str(DURATION),
        "SPARK_WORKER_MEMORY": "1g",
    }
    env_file = tmp_path_factory.mktemp("compose") / "test.env"
    env_file.write_text("".join(f"{key}={value}\n" for key, value in env.items()))
    project = f"fraudtest{os.getpid()}"
    common = ["--env-file", str(env_file), "--project-name", project]
    try:
        assert compose_cli.main(["up", *common, "--timeout", "420"]) == 0, "up failed"
        yield env
    finally:
        logs = os.environ.get("TEST_UNDECLARED_OUTPUTS_DIR")
        if logs:
            for name in ("detector", "spark-worker", "alert-sink", "producer", "kafka"):
                container = compose_cli.container_of(podman.engine(), project, name)
                if container:
                    out = subprocess.run([podman.engine(), "logs", container], capture_output=True)
                    Path(logs, f"compose-{name}.log").write_bytes(out.stdout + out.stderr)
        assert compose_cli.main(["down", *common, "--volumes"]) == 0


def _dsn(env: dict[str, str]) -> str:
    return (
        f"host=127.0.0.1 port={env['POSTGRES_PORT']} dbname={env['POSTGRES_DB']} "
        f"user={env['POSTGRES_USER']} password={env['POSTGRES_PASSWORD']}"
    )


def test_stack_processes_the_producer_stream_into_exactly_the_expected_alerts(stack):
    reader = TopicReader(f"127.0.0.1:{stack['KAFKA_PORT']}", "transactions")
    count = RATE * DURATION

    def all_produced() -> bool:
        reader.poll(1.0)
        return len(reader.records) >= count

    wait(all_produced, DURATION + 120, "the producer container sent its transactions")
    transactions = [parse_transaction(record.value) for record in reader.records]
    assert len(transactions) == count
    expected = harness.reference_alerts(transactions)
    assert expected, "a stream with injected fraud must give alerts"
    try:
        wait(lambda: harness.table_alerts(_dsn(stack)) == expected, 240, "alerts table complete")
    except TimeoutError:
        pytest.fail(harness.diff(expected, harness.table_alerts(_dsn(stack))))


def test_prometheus_scraped_every_service(stack):
    """Every service was scraped; all but the producer (done with its stream) still are."""
    base = f"http://127.0.0.1:{stack['PROMETHEUS_PORT']}/api/v1/query?query="

    def by_job(promql: str) -> dict[str, float]:
        url = base + urllib.parse.quote(promql)
        with urllib.request.urlopen(url, timeout=5) as response:
            result = json.load(response)["data"]["result"]
        return {r["metric"]["job"]: float(r["value"][1]) for r in result}

    running = {"detector", "alert_sink", "quality", "prometheus"}
    wait(
        lambda: (
            by_job("max_over_time(up[15m])").get("producer") == 1
            and all(by_job("up").get(job) == 1 for job in running)
        ),
        60,
        "every service scraped",
    )
