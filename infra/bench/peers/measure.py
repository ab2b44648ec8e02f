"""Measuring an engine from outside, the same way for every engine: its process tree's CPU
seconds and resident memory (psutil), and the alert versions on its output topic with the
wall-clock time the benchmark saw each (produce → alert latency, contract.SeenAlert).

Why from outside: each engine has its own metrics (Spark's progress, Flink's metric
reporters, Quix's logs), so no figure of theirs means the same thing as another's. The
broker, a reader thread and psutil do.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

import orjson
import psutil
from confluent_kafka import Consumer, TopicPartition

from infra.bench.peers.contract import SeenAlert, parse_alert


class TreeSampler:
    """CPU seconds (user + system, children included) and peak RSS of a process and all its
    descendants, sampled every `interval` seconds on a thread; `cpu_seconds()` also samples."""

    def __init__(self, pid: int, interval: float = 0.5) -> None:
        self.root = psutil.Process(pid)
        self.interval = interval
        self._cpu: dict[int, float] = {}
        self._lock = threading.Lock()
        self.peak_rss = 0  # bytes, since the last reset_peak()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tree-sampler", daemon=True)
        self._thread.start()

    def _processes(self) -> list[psutil.Process]:
        try:
            return [self.root, *self.root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def sample(self) -> None:
        rss = 0
        for proc in self._processes():
            try:
                t = proc.cpu_times()
                cpu = t.user + t.system + t.children_user + t.children_system
                rss += proc.memory_info().rss
            except psutil.Error:
                continue  # exited between listing and reading; its last sample stays
            with self._lock:
                self._cpu[proc.pid] = cpu
        with self._lock:
            self.peak_rss = max(self.peak_rss, rss)

    def cpu_seconds(self) -> float:
        self.sample()
        with self._lock:
            return sum(self._cpu.values())

    def reset_peak(self) -> int:
        with self._lock:
            peak, self.peak_rss = self.peak_rss, 0
        return peak

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


class OutputReader:
    """Reads an engine's output topic from the beginning on a thread; keeps every alert
    version (tombstones and undecodable records are skipped and counted)."""

    def __init__(self, bootstrap: str, topic: str, partitions: int = 1) -> None:
        self.alerts: list[SeenAlert] = []
        self.skipped = 0
        self._lock = threading.Lock()
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"peers-reader-{time.monotonic_ns()}",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 10,
                "fetch.min.bytes": 1,
            }
        )
        self._consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="output-reader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            batch = self._consumer.consume(1000, timeout=0.05)
            seen_ms = round(time.time() * 1000)
            new = []
            for msg in batch:
                if msg.error() is not None or not msg.value():
                    continue
                try:
                    new.append(parse_alert(orjson.loads(msg.value()), seen_ms))
                except (ValueError, KeyError, TypeError):
                    self.skipped += 1
            if new:
                with self._lock:
                    self.alerts.extend(new)
        self._consumer.close()

    def snapshot(self) -> list[SeenAlert]:
        with self._lock:
            return list(self.alerts)

    def wait_for(self, done: Callable[[list[SeenAlert]], bool], timeout: float) -> float | None:
        """Seconds until `done(alerts)` held, or None at the deadline (polled every 50 ms)."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if done(self.snapshot()):
                return time.monotonic() - start
            time.sleep(0.05)  # polling interval of a deadline wait
        return None

    def seen_user(self, user: str) -> SeenAlert | None:
        for alert in reversed(self.snapshot()):
            if alert.user_id == user:
                return alert
        return None

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..1) of a non-empty list; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q * len(ordered))))
    return ordered[rank - 1]


def final_alerts(alerts: list[SeenAlert]) -> dict[tuple[str, int], int]:
    """(user_id, window_start_ms) → fraud_score of the last version seen, probes left out."""
    out: dict[tuple[str, int], int] = {}
    for alert in alerts:
        if not alert.is_probe:
            out[(alert.user_id, alert.window_start_ms)] = alert.fraud_score
    return out
