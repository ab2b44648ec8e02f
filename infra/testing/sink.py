"""The alert sink under test: a real Kafka and PostgreSQL, the sink binary as a process,
and probes of its offsets and metrics.

Why: the sink's integration tests (happy path, crash/restart, database outage, health,
refused rows) and its benchmark need the same pieces; every wait polls against a
deadline (infra.components.wait) and says what it saw when it gives up.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from infra.components.kafka import KafkaBroker
from infra.components.kafka_io import committed_offsets, end_offsets
from infra.components.postgres import PostgresServer
from infra.components.process import free_port
from infra.components.wait import wait_until
from libs.schemas.topics import ALERTS_DLQ_TOPIC, ALERTS_TOPIC

TOPIC = ALERTS_TOPIC
DLQ_TOPIC = ALERTS_DLQ_TOPIC
GROUP = "fraud-alert-sink"  # the sink's default --group-id


# -- components --------------------------------------------------------------------------


def start_postgres(port: int = 0) -> PostgresServer:
    """PostgreSQL under /tmp, world-searchable: as root the server runs as `nobody`."""
    data_dir = Path(tempfile.mkdtemp(prefix="sink-pg-", dir="/tmp"))
    os.chmod(data_dir, 0o755)
    server = PostgresServer(data_dir=data_dir / "cluster", port=port)
    server.start()
    return server


def stop_postgres_fast(server: PostgresServer, timeout: float = 30.0) -> None:
    """Stop PostgreSQL in "fast" mode (SIGINT: sessions are ended), as `pg_ctl stop` does.

    PostgresServer.stop() sends SIGTERM, PostgreSQL's "smart" mode, which waits for every
    client to disconnect; a sink keeps its connection, so that would wait out the timeout.
    """
    popen = server.process.popen if server.process else None
    if popen is None or popen.poll() is not None:
        return
    os.killpg(popen.pid, signal.SIGINT)
    try:
        popen.wait(timeout)
    except subprocess.TimeoutExpired:
        server.kill()


def start_kafka(data_dir: Path, topics: dict[str, int]) -> KafkaBroker:
    broker = KafkaBroker(data_dir=data_dir)
    broker.start()
    broker.create_topics(topics)
    return broker


def kafka_and_postgres(tmp_path_factory) -> Iterator[tuple[KafkaBroker, PostgresServer]]:
    """Module fixture body shared by the integration tests: a broker with the alert and
    DLQ topics, and a PostgreSQL server; both torn down afterwards."""
    kafka = start_kafka(tmp_path_factory.mktemp("kafka"), {TOPIC: 3, DLQ_TOPIC: 1})
    postgres = start_postgres()
    yield kafka, postgres
    kafka.stop()
    postgres.destroy()


def offsets(
    bootstrap: str, topic: str = TOPIC, group: str = GROUP
) -> tuple[dict[int, int], dict[int, int]]:
    """(committed, end) offsets per partition; a partition with no commit shows 0."""
    committed = committed_offsets(bootstrap, group, topic)
    return {p: max(o, 0) for p, o in committed.items()}, end_offsets(bootstrap, topic)


# -- the sink as a subprocess ------------------------------------------------------------


@dataclass
class SinkProcess:
    """The `alert_sink` py_binary (path in $ALERT_SINK_BIN) run like in production."""

    args: list[str]
    log_path: Path
    metrics_port: int = field(default_factory=free_port)
    popen: subprocess.Popen[bytes] | None = None

    @classmethod
    def start(cls, log_dir: Path, *args: str) -> SinkProcess:
        binary = os.environ.get("ALERT_SINK_BIN")
        if not binary:
            raise RuntimeError("ALERT_SINK_BIN is not set; run this test under Bazel")
        # Under Bazel the logs are kept with the test's outputs (test.outputs/).
        log_dir = Path(os.environ.get("TEST_UNDECLARED_OUTPUTS_DIR", log_dir))
        proc = cls([os.path.abspath(binary), *args], log_dir / f"sink-{time.time_ns()}.log")
        proc.args += ["--metrics-port", str(proc.metrics_port)]
        with open(proc.log_path, "wb") as log:
            proc.popen = subprocess.Popen(
                proc.args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        wait_until(proc.metrics_ready, 60, "serving metrics", proc.log_tail)
        return proc

    def metrics_ready(self) -> bool:
        assert self.popen is not None
        if self.popen.poll() is not None:
            raise AssertionError(f"sink exited with {self.popen.returncode}: {self.log_tail()}")
        try:
            self.metrics()
        except OSError:
            return False
        return True

    def metrics(self) -> dict[str, float]:
        """Samples as {'name{label="v",...}': value}, plus each name summed over labels."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        samples: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
                samples[f"{s.name}{{{labels}}}"] = s.value
                samples[s.name] = samples.get(s.name, 0.0) + s.value
        return samples

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text[-lines:])

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM and wait: the exit code."""
        assert self.popen is not None
        self.popen.send_signal(signal.SIGTERM)
        return self.popen.wait(timeout)

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        assert self.popen is not None
        self.popen.kill()
        self.popen.wait()

    def ensure_stopped(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.kill()
