"""One engine running against one pair of topics: start it, know when it is ready, feed
it, mark phases, and read back what it emitted and what it cost.

Why shared: the benchmark and the smoke tests must drive every engine identically; the
readiness check and end markers are probe transactions (contract.PROBE_PREFIX), ordinary
traffic every engine handles with its own rules, so no engine needs a side channel.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from confluent_kafka import Producer

from infra.bench.peers.contract import PROBE_AMOUNT, PROBE_PREFIX
from infra.bench.peers.engines import Engine, Topics, stop
from infra.bench.peers.measure import OutputReader, TreeSampler
from infra.components.process import ComponentError, ManagedProcess
from infra.stack import Stack
from libs.schemas.transaction import Transaction, transaction_to_json


@dataclass
class Phase:
    """What one phase of a run (a rate, or the saturation load) cost and gave."""

    name: str
    started_wall_ms: int
    records: int = 0
    seconds: float = 0.0  # phase start (first record produced) → last alert seen
    cpu_seconds: float = 0.0
    peak_rss: int = 0
    drained: bool = True


def probe(user: str, at: datetime | None = None) -> Transaction:
    return Transaction(
        str(uuid.uuid4()),
        user,
        Decimal(PROBE_AMOUNT),
        "EUR",
        "Benchmark probe",
        "grocery",
        "FR",
        at or datetime.now(UTC),
    )


def records(transactions: Iterable[Transaction]) -> list[tuple[bytes, bytes, int]]:
    """(key, value, timestamp ms) as the producer sends them (CreateTime = event_time)."""
    return [
        (t.user_id.encode(), transaction_to_json(t), round(t.event_time.timestamp() * 1000))
        for t in transactions
    ]


def shifted(transactions: list[Transaction], start: datetime) -> list[Transaction]:
    """The same stream moved in event time so it begins at `start`."""
    delta = start - transactions[0].event_time
    return [replace(t, event_time=t.event_time + delta) for t in transactions]


class Session:
    def __init__(self, stack: Stack, engine: Engine, workdir: Path, partitions: int = 1) -> None:
        self.stack, self.engine, self.workdir = stack, engine, workdir
        self.topics = Topics.for_engine(engine.name)
        self.partitions = partitions
        self.proc: ManagedProcess | None = None
        self.sampler: TreeSampler | None = None
        self.reader: OutputReader | None = None
        self.startup_s: float | None = None
        self._producer = Producer(
            {
                "bootstrap.servers": stack.bootstrap,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                "batch.size": 1_000_000,
                "compression.type": "lz4",
                "queue.buffering.max.messages": 1_000_000,
            }
        )
        self._probes = 0
        self.newest_event = datetime.fromtimestamp(0, UTC)  # of what this session sent

    def start(self, timeout: float = 300.0) -> float:
        """Create the topics, start the engine, wait until a probe comes out of it."""
        assert self.stack.kafka is not None
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.stack.kafka.create_topics(
            {self.topics.input: self.partitions, self.topics.output: 1, self.topics.dlq: 1}
        )
        self.reader = OutputReader(self.stack.bootstrap, self.topics.output)
        started = time.monotonic()
        self.proc = self.engine.start(self.stack, self.topics, self.workdir)
        assert self.proc.popen is not None
        self.sampler = TreeSampler(self.proc.popen.pid)
        while True:
            user = self.send_probe()
            if self.reader.wait_for(lambda a, u=user: any(x.user_id == u for x in a), 10.0):
                break
            if not self.proc.running:
                raise ComponentError(f"{self.engine.name} exited; see {self.proc.log_path}")
            if time.monotonic() - started > timeout:
                raise ComponentError(
                    f"{self.engine.name}: no probe alert within {timeout:.0f} s; "
                    f"see {self.proc.log_path}"
                )
        self.startup_s = time.monotonic() - started
        return self.startup_s

    def send(self, batch: list[tuple[bytes, bytes, int]]) -> None:
        produce, poll = self._producer.produce, self._producer.poll
        topic = self.topics.input
        if batch:
            newest = datetime.fromtimestamp(max(ts for _, _, ts in batch) / 1000, UTC)
            self.newest_event = max(self.newest_event, newest)
        for key, value, ts in batch:
            while True:
                try:
                    produce(topic, value, key, timestamp=ts)
                    break
                except BufferError:
                    poll(0.05)
        left = self._producer.flush(120)
        if left:
            raise ComponentError(f"{left} records to {topic} not delivered within 120 s")

    def send_probe(self, at: datetime | None = None) -> str:
        self._probes += 1
        user = f"{PROBE_PREFIX}{self._probes}"
        self.send(records([probe(user, at)]))
        return user

    def wait_probe(self, user: str, timeout: float) -> bool:
        assert self.reader is not None
        return (
            self.reader.wait_for(lambda a: any(x.user_id == user for x in a), timeout) is not None
        )

    def begin(self, name: str) -> tuple[Phase, float]:
        assert self.sampler is not None
        self.sampler.reset_peak()
        return Phase(name, round(time.time() * 1000)), self.sampler.cpu_seconds()

    def end(
        self, phase: Phase, cpu_before: float, drain_timeout: float, quiet: float = 3.0
    ) -> Phase:
        """Send an end marker (event time now), wait for its alert and then until the
        output has been quiet for `quiet` s (an engine that writes a batch's alerts from
        several tasks may write the marker's before others); the phase ends at the last
        alert seen."""
        assert self.sampler is not None and self.reader is not None
        # After everything sent so far in event time too, or a watermark that ran ahead of
        # the clock (a stream stamped in the future) would make the marker late.
        newest = max(datetime.now(UTC), self.newest_event)
        user = self.send_probe(newest + timedelta(milliseconds=1))
        phase.drained = self.wait_probe(user, drain_timeout)
        seen = len(self.reader.snapshot())
        changed = time.monotonic()
        while time.monotonic() - changed < quiet:
            time.sleep(0.1)  # polling the reader until the output stops growing
            now_seen = len(self.reader.snapshot())
            if now_seen != seen:
                seen, changed = now_seen, time.monotonic()
        last_ms = max((a.seen_ms for a in self.reader.snapshot()), default=0)
        phase.seconds = max(0.0, (last_ms - phase.started_wall_ms) / 1000)
        phase.cpu_seconds = self.sampler.cpu_seconds() - cpu_before
        phase.peak_rss = self.sampler.reset_peak()
        return phase

    def close(self) -> None:
        if self.sampler is not None:
            self.sampler.stop()
        if self.proc is not None:
            stop(self.stack, self.engine, self.proc)
        if self.reader is not None:
            self.reader.stop()
