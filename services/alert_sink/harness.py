"""Test and benchmark harness for the sink: a real Kafka and PostgreSQL, alert streams with
known final state, the sink as a subprocess, and probes of the table, offsets and metrics.

Why: the integration tests (happy path, crash/restart, database outage) and the benchmark
need the same pieces; each check polls against a deadline and says what it saw when it
gives up, never sleeps a fixed time.
"""

from __future__ import annotations

import dataclasses
import os
import random
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import psycopg2
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from prometheus_client.parser import text_string_to_metric_families

from infra.components.kafka import KafkaBroker
from infra.components.postgres import PostgresServer
from infra.components.process import free_port
from libs.schemas.alert import Alert, alert_to_json
from libs.schemas.sql import alert_to_row

TOPIC = "fraud_alerts"
DLQ_TOPIC = "fraud_alerts.dlq"
GROUP = "fraud-alert-sink"
WINDOW = timedelta(seconds=60)
BASE = datetime(2026, 11, 28, 17, 0, tzinfo=UTC)

Key = tuple[str, datetime]
KafkaRecord = tuple[bytes | None, bytes | None]  # (key, value)


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


# -- alert streams -----------------------------------------------------------------------


def make_alert(user_id: str, window: int, version: int, lag: float = 0.5) -> Alert:
    """A valid alert for window number `window`; `version` transactions so far. Its
    last_event_time is `lag` seconds ago, so end-to-end latency samples are realistic."""
    start = BASE + window * WINDOW
    high_frequency = version >= 5
    return Alert(
        user_id=user_id,
        window_start=start,
        window_end=start + WINDOW,
        txn_count=version,
        distinct_countries=2,
        max_amount=Decimal("3000.01"),
        total_amount=Decimal("3000.01") + Decimal("10.25") * (version - 1),
        high_value=True,
        location_change=True,
        high_frequency=high_frequency,
        fraud_score=4 + int(high_frequency),
        transaction_ids=tuple(f"{user_id}-{window}-t{i}" for i in range(version)),
        reasons=("high_value: max_amount 3000.01 > 3000", "location_change: 2 countries"),
        rule_version="v1",
        detected_at=datetime.now(UTC),
        last_event_time=datetime.now(UTC) - timedelta(seconds=lag),
        version=version,
    )


@dataclass
class AlertStream:
    """Messages to produce and the table they must leave behind (highest version per key)."""

    messages: list[Alert] = field(default_factory=list)
    expected: dict[Key, Alert] = field(default_factory=dict)

    def add(self, alert: Alert) -> None:
        self.messages.append(alert)
        key = (alert.user_id, alert.window_start)
        if key not in self.expected or self.expected[key].version < alert.version:
            self.expected[key] = alert

    def records(self) -> list[KafkaRecord]:
        return [(a.user_id.encode(), alert_to_json(a)) for a in self.messages]


def alert_stream(
    rng: random.Random,
    users: Sequence[str],
    windows: int = 2,
    max_version: int = 6,
    duplicate_share: float = 0.1,
) -> AlertStream:
    """Every (user, window) gets versions 1..n, shuffled (out of order), plus duplicates."""
    stream = AlertStream()
    alerts = [
        make_alert(user, window, version)
        for user in users
        for window in range(windows)
        for version in range(1, rng.randint(1, max_version) + 1)
    ]
    alerts += rng.sample(alerts, int(len(alerts) * duplicate_share))
    rng.shuffle(alerts)
    for alert in alerts:
        stream.add(alert)
    return stream


def bad_records() -> list[tuple[KafkaRecord, str]]:
    """Undecodable messages (and one the database refuses), with the reason expected."""
    missing = orjson.loads(alert_to_json(make_alert("u-missing", 0, 1)))
    del missing["version"]
    nul = dataclasses.replace(make_alert("u-nul", 0, 1), rule_version="v1\x00")
    return [
        ((b"u-notjson", b"this is not json"), "not_json"),
        ((b"u-missing", orjson.dumps(missing)), "missing_field"),
        ((b"u-utf8", b'{"user_id": "\xff\xfe"}'), "not_utf8"),
        ((b"u-empty", None), "empty"),
        ((b"u-nul", alert_to_json(nul)), "db_rejected"),  # valid JSON; text with NUL
    ]


# -- Kafka probes ------------------------------------------------------------------------


def produce(bootstrap: str, topic: str, records: Iterable[KafkaRecord]) -> int:
    producer = Producer(
        {"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 20}
    )
    count = 0
    for key, value in records:
        while True:
            try:
                producer.produce(topic, key=key, value=value)
                break
            except BufferError:
                producer.poll(0.1)
        count += 1
    if producer.flush(60) != 0:
        raise AssertionError("producer could not deliver every message in 60 s")
    return count


def partitions(bootstrap: str, topic: str) -> list[int]:
    meta = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=10)
    return sorted(meta.topics[topic].partitions)


def offsets(
    bootstrap: str, topic: str, group: str = GROUP
) -> tuple[dict[int, int], dict[int, int]]:
    """(committed, end) offsets per partition; a partition with no commit shows 0."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False}
    )
    try:
        tps = [TopicPartition(topic, p) for p in partitions(bootstrap, topic)]
        committed = {tp.partition: max(tp.offset, 0) for tp in consumer.committed(tps, timeout=10)}
        end = {tp.partition: consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in tps}
    finally:
        consumer.close()
    return committed, end


def group_members(bootstrap: str, group: str = GROUP) -> int:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    described = admin.describe_consumer_groups([group])[group].result(timeout=10)
    return len(described.members)


@dataclass(frozen=True)
class DlqMessage:
    key: bytes | None
    value: bytes | None
    headers: dict[str, str]


def read_topic(bootstrap: str, topic: str, count: int, timeout: float = 60) -> list[DlqMessage]:
    """Exactly the first `count` messages of `topic` (fails if fewer arrive in time)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{time.time_ns()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    got: list[DlqMessage] = []
    deadline = time.monotonic() + timeout
    try:
        while len(got) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error() is not None:
                continue
            headers = {k: v.decode() for k, v in (msg.headers() or [])}
            got.append(DlqMessage(msg.key(), msg.value(), headers))
    finally:
        consumer.close()
    if len(got) < count:
        raise AssertionError(f"{topic}: {len(got)} of {count} messages after {timeout} s")
    return got


# -- PostgreSQL probes -------------------------------------------------------------------


def read_table(dsn: str, table: str = "alerts") -> dict[Key, dict[str, Any]]:
    """Every row keyed by (user_id, window_start); {} while the table does not exist."""
    try:
        conn = psycopg2.connect(dsn, connect_timeout=3)
    except psycopg2.OperationalError:
        return {}
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT to_regclass(%s)", (table,))
            if cur.fetchone()[0] is None:
                return {}
            cur.execute(f"SELECT * FROM {table}")
            names = [d.name for d in cur.description]
            rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    finally:
        conn.close()
    return {(r["user_id"], r["window_start"]): r for r in rows}


def table_diff(rows: dict[Key, dict[str, Any]], expected: dict[Key, Alert]) -> str:
    """'' when the table holds exactly `expected` (every column), else a short description."""
    missing = expected.keys() - rows.keys()
    extra = rows.keys() - expected.keys()
    wrong = [k for k in expected.keys() & rows.keys() if rows[k] != alert_to_row(expected[k])]
    if not (missing or extra or wrong):
        return ""
    sample = wrong[:1]
    return (
        f"{len(rows)} rows, {len(expected)} expected: {len(missing)} missing, {len(extra)} "
        f"unexpected, {len(wrong)} differ"
        + (
            f" (e.g. {sample[0]}: version {rows[sample[0]]['version']} != "
            f"{expected[sample[0]].version})"
            if sample
            else ""
        )
    )


# -- waiting -----------------------------------------------------------------------------


def wait_until(
    check: Callable[[], bool], timeout: float, what: str, show: Callable[[], str] = lambda: ""
) -> float:
    """Poll `check` until true; AssertionError naming `what` (and `show()`) at the deadline."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not {what} after {timeout:.0f} s: {show()}")
        time.sleep(0.05)
    return time.monotonic() - started


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


def kafka_and_postgres(tmp_path_factory) -> Iterator[tuple[KafkaBroker, PostgresServer]]:
    """Module fixture body shared by the integration tests: a broker with the alert and
    DLQ topics, and a PostgreSQL server; both torn down afterwards."""
    kafka = start_kafka(tmp_path_factory.mktemp("kafka"), {TOPIC: 3, DLQ_TOPIC: 1})
    postgres = start_postgres()
    yield kafka, postgres
    kafka.stop()
    postgres.destroy()
