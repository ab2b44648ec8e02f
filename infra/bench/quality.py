"""How many transactions per second the quality monitor handles on one core.

Why a benchmark against a real broker: the monitor's cost is dominated by reading
messages (librdkafka -> Python objects), header access and JSON decoding, not by the
scoring book, so only the real consumer path gives an honest number. The design needs
25k tx/s (the producer's top rate); this fills a local broker with a backlog of
producer-shaped transactions (about 10% labelled fraud, in bursts per window) plus alerts,
then times the monitor's loop draining it, and separately times the decode+book path on
the same messages without Kafka.

Run: tools/bazel run //infra/bench:quality -- --count 1000000
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import orjson
from confluent_kafka import Consumer, Producer

from infra.components.kafka import KafkaBroker
from libs.schemas.alert import Alert, alert_to_json
from services.quality.config import parse_settings
from services.quality.metrics import QualityMetrics
from services.quality.monitor import Monitor, kafka_config
from services.quality.scoring_book import ScoringBook

PATTERNS = ("high_amount", "country_hop", "risky_merchant", "rapid_fire")
START = datetime(2026, 11, 28, 17, 0, tzinfo=UTC)


def transactions(
    count: int, rate: float, users: int, seed: int
) -> Iterator[tuple[bytes, bytes, list[tuple[str, bytes]], str, int | None]]:
    """(key, value, headers, user, fraud window start or None) at `rate` tx/s of event time."""
    rng = random.Random(seed)
    start = START.timestamp()
    for i in range(count):
        at = start + i / rate
        user = f"user-{rng.randrange(users):07d}"
        pattern = rng.choice(PATTERNS) if rng.random() < 0.1 else ""
        event_time = datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds")
        value = orjson.dumps(
            {
                "transaction_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "user_id": user,
                "amount": round(rng.uniform(1, 500), 2),
                "currency": "USD",
                "merchant": "Acme Corporation",
                "merchant_category": "grocery",
                "country": "US",
                "event_time": event_time.replace("+00:00", "Z"),
            }
        )
        headers = [("fraud-label", b"1" if pattern else b"0"), ("fraud-pattern", pattern.encode())]
        window = int(at // 60) * 60 if pattern else None
        yield user.encode(), value, headers, user, window


def alert_json(user: str, window_start: int) -> bytes:
    start = datetime.fromtimestamp(window_start, UTC)
    return alert_to_json(
        Alert(user, start, start + timedelta(seconds=60), 1, 1, Decimal("4000.00"),
              Decimal("4000.00"), True, False, False, 2, ("t",), ("r",), "v1", start, start, 1)
    )  # fmt: skip


def fill(bootstrap: str, args: argparse.Namespace) -> tuple[int, int]:
    """Produce the backlog; returns (transactions, alerts)."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20,
                         "compression.type": "lz4"})  # fmt: skip

    def send(topic: str, key: bytes, value: bytes, headers: list | None = None) -> None:
        while True:
            try:
                producer.produce(topic, key=key, value=value, headers=headers)
                return
            except BufferError:
                producer.poll(0.1)

    rng = random.Random(args.seed + 1)
    fraud_windows: set[tuple[str, int]] = set()
    for key, value, headers, user, window in transactions(args.count, args.rate, args.users,
                                                           args.seed):  # fmt: skip
        if window is not None:
            fraud_windows.add((user, window))
        send("transactions", key, value, headers)
    alerts = 0
    for user, window in sorted(fraud_windows):  # 80% recall, plus 5% false alarms
        if rng.random() < 0.8:
            send("fraud_alerts", user.encode(), alert_json(user, window))
            alerts += 1
        if rng.random() < 0.05:
            other = f"user-{rng.randrange(args.users):07d}"
            send("fraud_alerts", other.encode(), alert_json(other, window))
            alerts += 1
    if producer.flush(120):
        raise SystemExit("bench: backlog not fully delivered")
    return args.count, alerts


def drain(bootstrap: str, count: int, batch_size: int) -> tuple[float, float, int, Monitor]:
    """Run the monitor's own loop until it has read `count` transactions; returns wall
    seconds from the first transaction read to the last, and the CPU seconds the whole
    process (Python plus librdkafka's threads) spent from subscribing to the end, and the
    most windows held open at once (memory stays bounded by eviction)."""
    monitor_args = parse_settings(["--bootstrap-servers", bootstrap, "--batch-size",
                               str(batch_size), "--group-id", f"bench-{uuid.uuid4()}"],
                              environ={})  # fmt: skip
    consumer = Consumer(kafka_config(monitor_args))
    book = ScoringBook()
    monitor = Monitor(consumer, book, QualityMetrics(), transactions_topic="transactions",
                      alerts_topic="fraud_alerts", batch_size=batch_size)  # fmt: skip
    consumer.subscribe(["transactions", "fraud_alerts"], on_assign=monitor.on_assign,
                       on_revoke=monitor.on_revoke)  # fmt: skip
    deadline = time.monotonic() + 600
    cpu_started = time.process_time()
    peak_open = 0
    while monitor.transactions_read < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: only {monitor.transactions_read} of {count} read")
        monitor.poll(0.5)
        peak_open = max(peak_open, book.open_windows)
    cpu = time.process_time() - cpu_started
    consumer.close()
    assert monitor.first_read_at is not None and monitor.last_read_at is not None
    return monitor.last_read_at - monitor.first_read_at, cpu, peak_open, monitor


class _Msg:
    """A consumed message frozen into plain Python, to time the loop without librdkafka."""

    __slots__ = ("_headers", "_topic", "_value")

    def __init__(self, topic: str, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        self._topic, self._value, self._headers = topic, value, headers

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return self._topic

    def value(self) -> bytes:
        return self._value

    def headers(self) -> list[tuple[str, bytes]]:
        return self._headers


def handle_only(args: argparse.Namespace, batch_size: int) -> float:
    """tx/s of Monitor.handle (decode + book) over in-memory messages."""
    messages = [_Msg("transactions", v, h)
                for _k, v, h, _u, _w in transactions(min(args.count, 500_000), args.rate,
                                                     args.users, args.seed)]  # fmt: skip
    monitor = Monitor(None, ScoringBook(), QualityMetrics(), transactions_topic="transactions",  # type: ignore[arg-type]
                      alerts_topic="fraud_alerts", batch_size=batch_size)  # fmt: skip
    started = time.perf_counter()
    for i in range(0, len(messages), batch_size):
        monitor.handle(messages[i : i + batch_size])  # type: ignore[arg-type]
        monitor.book.close_ready()
        monitor.publish()
    return len(messages) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1_000_000, help="transactions")
    parser.add_argument("--rate", type=float, default=25_000.0, help="event-time tx/s")
    parser.add_argument("--users", type=int, default=1_500_000, help="user pool")
    parser.add_argument("--partitions", type=int, default=4, help="transactions partitions")
    parser.add_argument("--batch-size", type=int, default=5000, help="consume() batch")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    print(f"decode+book only: {handle_only(args, args.batch_size):,.0f} tx/s", flush=True)
    with tempfile.TemporaryDirectory(prefix="quality-bench-") as tmp:
        broker = KafkaBroker(data_dir=Path(tmp) / "kafka", heap="1g")
        broker.start()
        try:
            broker.create_topics({"transactions": args.partitions, "fraud_alerts": 2})
            started = time.monotonic()
            count, alerts = fill(broker.bootstrap, args)
            print(f"backlog: {count:,} transactions, {alerts:,} alerts "
                  f"({time.monotonic() - started:.1f} s to produce)", flush=True)  # fmt: skip
            seconds, cpu, peak_open, monitor = drain(broker.bootstrap, count, args.batch_size)
            at_end = monitor.book.open_windows
            t = monitor.finish()
            print(f"monitor from Kafka: {count / seconds:,.0f} tx/s wall, "
                  f"{count / cpu:,.0f} tx per CPU-second "
                  f"({count:,} in {seconds:.1f} s, {cpu:.1f} CPU-s, "
                  f"batch {args.batch_size})")  # fmt: skip
            print(f"scored: TP {t.true_positives:,} FP {t.false_positives:,} "
                  f"FN {t.false_negatives:,} precision {t.precision:.4f} "
                  f"recall {t.recall:.4f} late alerts {t.late_alerts:,}")  # fmt: skip
            scored = t.true_positives + t.false_positives + t.false_negatives
            print(f"open windows: peak {peak_open:,}, {at_end:,} at the end "
                  f"(of {scored:,} scored)")  # fmt: skip
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
