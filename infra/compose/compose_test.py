"""The compose stack (everything but the Grafana profile) under podman in its `secure`
profile (secrets made by //infra/compose:secrets: Kafka over SASL_SSL + SCRAM with ACLs,
PostgreSQL over TLS), one stack for the whole module, its tests run in order as steps of
one story:

1. `up` loads the Bazel-built images and returns once every service is healthy; the
   producer container's transactions, read back from Kafka through the published port,
   give exactly the alerts an independent reference computes, and those are what
   PostgreSQL holds; Prometheus scrapes every service and sends to Alertmanager; the
   notifier runs, healthy; a plaintext client to the published Kafka port is refused
   (this test reads as the quality monitor's principal, the database as its owner over
   verify-full TLS).
2. A crashed service (its process SIGKILLed, as the OOM killer would) is restarted by its
   restart policy and is healthy again.
3. The Spark worker container killed and started again: alerts keep arriving.
4. `down` keeping the volumes, then `up`: every service stopped on SIGTERM within its
   grace period (none killed); detection resumes from the checkpoint with its state (no
   CANNOT_LOAD_STATE_STORE, the commit log continues past its pre-down batch, alerts keep
   arriving); and over everything sent since step 1 the alerts table holds exactly the
   reference's alerts, once each.

Teardown: `down --volumes` removes it all. One stack, because `up` costs a minute or two.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import psycopg2
import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from infra.components.kafka_certs import KafkaPki
from infra.components.kafka_io import TopicReader, end_offsets
from infra.components.process import free_port
from infra.components.wait import wait_until
from infra.compose import compose_cli
from infra.compose import secrets as compose_secrets
from infra.e2e import harness
from infra.testing.table import keyed_diff
from libs.schemas.transaction import Transaction, parse_transaction

RATE, DURATION = 100, 40  # each run of the producer container: 4,000 transactions
PORTS = [
    "KAFKA_PORT", "POSTGRES_PORT", "PROMETHEUS_PORT", "SPARK_MASTER_UI_PORT",
    "PRODUCER_METRICS_PORT", "SINK_METRICS_PORT", "DETECTOR_METRICS_PORT",
    "QUALITY_METRICS_PORT", "GRAFANA_PORT", "ALERTMANAGER_PORT", "NOTIFIER_METRICS_PORT",
]  # fmt: skip
SERVICES = [
    "kafka", "postgres", "prometheus", "spark-master", "spark-worker", "detector",
    "alert-sink", "quality", "producer", "alertmanager", "notifier",
]  # fmt: skip


class Stack:
    """The running compose project and what the steps share: its settings, the compose
    command, and every transaction read back from Kafka so far."""

    def __init__(self, env: dict[str, str], env_file: Path, project: str) -> None:
        self.env, self.env_file, self.project = env, env_file, project
        self.common = ["--env-file", str(env_file), "--project-name", project]
        self.compose = compose_cli.compose_for(env_file, project)
        assert self.compose.overrides, "the secure profile's file is not used"
        self.engine = self.compose.engine
        self.bootstrap = f"127.0.0.1:{env['KAFKA_PORT']}"
        self.secrets = Path(env["FRAUD_SECRETS_DIR"])
        self.pki = KafkaPki(self.secrets / "pki")
        # The quality monitor's principal: it may read both topics (and describe them).
        self.client = self.pki.sasl("quality").librdkafka_config()
        self.reader: TopicReader | None = None

    @property
    def dsn(self) -> str:
        e = self.env
        password = (self.secrets / "postgres" / "owner.password").read_text().strip()
        return (
            f"host=localhost port={e['POSTGRES_PORT']} dbname={e['POSTGRES_DB']} "
            f"user=fraud_owner password={password} sslmode=verify-full "
            f"sslrootcert={self.pki.ca_file}"
        )

    def container(self, service: str) -> str:
        container = compose_cli.container_of(self.engine, self.project, service)
        assert container, f"no {service} container"
        return container

    def inspect(self, service: str, template: str) -> str:
        return subprocess.run(
            [self.engine, "inspect", "--format", template, self.container(service)],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip

    def podman(self, *args: str) -> None:
        subprocess.run([self.engine, *args], capture_output=True, check=True)

    def transactions(self) -> list[Transaction]:
        """Every transaction on the topic, read to its current end."""
        if self.reader is None:
            self.reader = TopicReader(
                self.bootstrap,
                "transactions",
                group=f"fraud-quality-test-{time.monotonic_ns()}",
                client=self.client,
            )
        want = sum(end_offsets(self.bootstrap, "transactions", client=self.client).values())
        self.reader.wait_for(lambda records: len(records) >= want, 60, "transactions read")
        return [parse_transaction(record.value) for record in self.reader.records]

    def checkpoint_commits(self) -> int:
        """The newest batch id in the detector's commit log (on the shared volume)."""
        mountpoint = subprocess.run(
            [self.engine, "volume", "inspect", "--format", "{{.Mountpoint}}",
             f"{self.project}_checkpoints"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        commits = Path(mountpoint, "checkpoints", "alerts", "commits")
        return max((int(p.name) for p in commits.iterdir() if p.name.isdigit()), default=-1)

    def logs(self, service: str) -> str:
        out = subprocess.run([self.engine, "logs", self.container(service)], capture_output=True)
        return (out.stdout + out.stderr).decode(errors="replace")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """The secure profile on free ports, its own project name and freshly made secrets."""
    made = compose_secrets.create(tmp_path_factory.mktemp("compose") / "secrets")
    env = compose_cli.read_env_file(made) | {name: str(free_port()) for name in PORTS}
    env |= {
        "PRODUCER_RATE": str(RATE),
        "PRODUCER_DURATION": str(DURATION),
        "SPARK_WORKER_MEMORY": "1g",
    }
    env_file = made.with_name("test.env")
    env_file.write_text("".join(f"{key}={value}\n" for key, value in env.items()))
    s = Stack(env, env_file, f"fraudtest{os.getpid()}")
    try:
        started = time.monotonic()
        assert compose_cli.main(["up", *s.common, "--timeout", "420"]) == 0, "up failed"
        print(f"up took {time.monotonic() - started:.0f} s")
        yield s
    finally:
        if s.reader is not None:
            s.reader.close()
        logs = os.environ.get("TEST_UNDECLARED_OUTPUTS_DIR")
        if logs:
            for name in SERVICES:
                if compose_cli.container_of(s.engine, s.project, name):
                    Path(logs, f"compose-{name}.log").write_text(s.logs(name))
        assert compose_cli.main(["down", *s.common, "--volumes"]) == 0


def _alerts_with_any_of(dsn: str, transaction_ids: set[str]) -> int:
    """How many alerts hold at least one of these transactions."""
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT transaction_ids FROM alerts")
        rows = cur.fetchall()
    conn.close()
    return sum(1 for (ids,) in rows if transaction_ids & set(ids))


def _wait_for_alerts_after(s: Stack, since: datetime, timeout: float, what: str) -> None:
    """Alerts arrive for transactions with an event time after `since`."""

    def arrived() -> bool:
        ids = {t.transaction_id for t in s.transactions() if t.event_time > since}
        return bool(ids) and _alerts_with_any_of(s.dsn, ids) > 0

    wait_until(arrived, timeout, what, interval=2, tolerate=Exception)


def _wait_exact(s: Stack, timeout: float) -> None:
    """The alerts table is exactly the reference's alerts over every transaction sent."""
    transactions = s.transactions()
    expected = harness.reference_alerts(transactions)
    assert expected, "a stream with injected fraud must give alerts"
    try:
        wait_until(
            lambda: harness.table_alerts(s.dsn) == expected,
            timeout,
            "alerts table complete",
            tolerate=Exception,
        )
    except TimeoutError:
        pytest.fail(keyed_diff(expected, harness.table_alerts(s.dsn)))


def _wait_exited(s: Stack, service: str, timeout: float) -> int:
    wait_until(
        lambda: s.inspect(service, "{{.State.Status}}") == "exited",
        timeout,
        f"{service} ended",
        tolerate=Exception,
    )
    return int(s.inspect(service, "{{.State.ExitCode}}"))


# -- 1. up, the producer's stream, Prometheus ---------------------------------------------


def test_stack_processes_the_producer_stream_into_exactly_the_expected_alerts(stack):
    assert _wait_exited(stack, "producer", DURATION + 120) == 0, "the producer run failed"
    transactions = stack.transactions()
    assert len(transactions) == RATE * DURATION
    _wait_exact(stack, 240)


def test_prometheus_scraped_every_service(stack):
    """Every service was scraped; all but the producer (done with its stream) still are."""
    base = f"http://127.0.0.1:{stack.env['PROMETHEUS_PORT']}/api/v1/query?query="

    def by_job(promql: str) -> dict[str, float]:
        url = base + urllib.parse.quote(promql)
        with urllib.request.urlopen(url, timeout=5) as response:
            result = json.load(response)["data"]["result"]
        return {r["metric"]["job"]: float(r["value"][1]) for r in result}

    running = {"detector", "alert_sink", "quality", "prometheus"}
    wait_until(
        lambda: (
            by_job("max_over_time(up[15m])").get("producer") == 1
            and all(by_job("up").get(job) == 1 for job in running)
        ),
        60,
        "every service scraped",
        tolerate=Exception,
    )


def test_prometheus_sends_to_the_healthy_alertmanager_and_the_notifier_runs(stack):
    compose_cli.wait_healthy(stack.compose, ["alertmanager", "notifier"], time.monotonic() + 60)
    url = f"http://127.0.0.1:{stack.env['PROMETHEUS_PORT']}/api/v1/alertmanagers"

    def active() -> list[str]:
        with urllib.request.urlopen(url, timeout=5) as response:
            data = json.load(response)["data"]
        return [a["url"] for a in data["activeAlertmanagers"]]

    wait_until(
        lambda: any("alertmanager:9093" in a for a in active()),
        60,
        "an active alertmanager",
        tolerate=Exception,
    )
    ready = f"http://127.0.0.1:{stack.env['ALERTMANAGER_PORT']}/-/ready"
    with urllib.request.urlopen(ready, timeout=5) as response:
        assert response.status == 200
    assert stack.inspect("notifier", "{{.State.Status}} {{.RestartCount}}") == "running 0"


def test_a_plaintext_client_to_the_published_kafka_port_is_refused(stack):
    admin = AdminClient({"bootstrap.servers": stack.bootstrap, "log_level": 0})
    with pytest.raises(KafkaException):
        admin.list_topics(timeout=5)
    # The same port with the quality monitor's credentials answers.
    secure = AdminClient({"bootstrap.servers": stack.bootstrap, **stack.client, "log_level": 3})
    assert "transactions" in secure.list_topics(timeout=10).topics


# -- 2. restart policies ---------------------------------------------------------------------


def test_a_crashed_service_is_restarted_by_its_restart_policy(stack):
    """The sink's and the quality monitor's processes SIGKILLed from outside (a crash, the
    OOM killer): `restart: unless-stopped` brings each back, healthy. (`podman kill` is a
    user's stop to podman, like `podman stop`, and is not restarted.)"""
    crashed = ["alert-sink", "quality"]
    before = {name: int(stack.inspect(name, "{{.RestartCount}}")) for name in crashed}
    for name in crashed:
        os.kill(int(stack.inspect(name, "{{.State.Pid}}")), signal.SIGKILL)
    for name in crashed:
        wait_until(
            lambda name=name: (
                int(stack.inspect(name, "{{.RestartCount}}")) > before[name]
                and stack.inspect(name, "{{.State.Status}}") == "running"
            ),
            60,
            f"{name} restarted",
            tolerate=Exception,
        )
    compose_cli.wait_healthy(stack.compose, crashed, time.monotonic() + 90)


# -- 3. the Spark worker lost and back --------------------------------------------------------


def test_alerts_keep_arriving_after_the_spark_worker_is_killed_and_started_again(stack):
    killed_at = datetime.now(UTC)
    stack.podman("kill", stack.container("spark-worker"))
    assert _wait_exited(stack, "spark-worker", 30) != 0
    stack.podman("start", stack.container("producer"))  # a new 40 s run
    stack.podman("start", stack.container("spark-worker"))
    compose_cli.wait_healthy(stack.compose, ["spark-worker"], time.monotonic() + 90)
    _wait_for_alerts_after(stack, killed_at, 180, "alerts after the worker came back")
    assert stack.inspect("detector", "{{.State.Status}}") == "running"


# -- 4. down, up: graceful stops, the checkpoint and its state ------------------------------


def _end_producer_run(s: Stack) -> None:
    """SIGTERM, as `down` sends it, if the run is still going: it ends before its grace
    period, not killed; either way the run ended with 0 (everything delivered)."""
    spec = compose_cli.active_services(s.compose.file, set())["producer"]
    stopped = compose_cli.stop_service(s.compose, "producer", compose_cli.grace_seconds(spec))
    if stopped is not None:
        assert not stopped.killed, f"the producer was killed after {stopped.grace:.0f} s"
        assert stopped.seconds < stopped.grace, f"the producer took {stopped.seconds:.1f} s"
    assert _wait_exited(s, "producer", 30) == 0, "the producer run failed"


def test_down_then_up_stops_gracefully_and_resumes_from_the_checkpoint(stack):
    # A fresh producer run, so `down` stops it mid-stream (the first thing it stops).
    _end_producer_run(stack)
    stack.podman("start", stack.container("producer"))
    compose_cli.wait_healthy(stack.compose, ["producer"], time.monotonic() + 60)
    running = {name for name in SERVICES if stack.inspect(name, "{{.State.Status}}") == "running"}
    assert "producer" in running

    if stack.reader is not None:  # no client of ours retrying through the outage
        stack.reader.close()
        stack.reader = None
    started = time.monotonic()
    stopped = compose_cli.down(stack.compose, volumes=False)
    took = time.monotonic() - started
    commits_before = stack.checkpoint_commits()
    print(
        f"down took {took:.1f} s: " + ", ".join(f"{s.service} {s.seconds:.1f} s" for s in stopped)
    )
    assert {s.service for s in stopped} == running
    for s in stopped:
        assert not s.killed, f"{s.service} was killed after its {s.grace:.0f} s grace"
        assert s.seconds < s.grace, f"{s.service} took {s.seconds:.1f} s to stop"

    up_at = datetime.now(UTC)
    started = time.monotonic()
    assert compose_cli.main(["up", *stack.common, "--timeout", "420"]) == 0, "up failed"
    print(f"up again took {time.monotonic() - started:.0f} s")
    _wait_for_alerts_after(stack, up_at, 180, "alerts after up")
    wait_until(
        lambda: stack.checkpoint_commits() > commits_before,
        60,
        "the commit log continued",
        tolerate=Exception,
    )
    detector_log = stack.logs("detector")
    assert "CANNOT_LOAD_STATE_STORE" not in detector_log
    assert stack.inspect("detector", "{{.State.Status}} {{.RestartCount}}") == "running 0"

    # Everything sent since step 1 is in the table, once.
    _end_producer_run(stack)
    _wait_exact(stack, 240)
    with psycopg2.connect(stack.dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*), count(DISTINCT (user_id, window_start)) FROM alerts")
        rows, keys = cur.fetchone()
    conn.close()
    assert rows == keys, f"{rows - keys} duplicate alert rows"
