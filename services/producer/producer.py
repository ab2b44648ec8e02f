"""The producer service: the generator's stream, paced to wall-clock time, into Kafka.

Why a thin edge around `generator.py`: the stream (users, fraud patterns, event times) is
pure and tested without Kafka; this module only decides *when* each transaction is sent
(transaction i at i / rate seconds after start, so event_time ~ send time), sends it
idempotently with its ground-truth headers, counts what the broker acknowledged, and
stops cleanly on SIGTERM (flush with a deadline, log totals). A missing topic or an
unreachable broker is a clear startup error, not a stream of silent delivery failures.
"""

from __future__ import annotations

import argparse
import logging
import math
import secrets
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Producer

from libs.cli.flags import flag, non_negative_int, positive_float
from libs.cli.service import Shutdown, serve_metrics
from libs.cli.startup import EXIT_STARTUP, StartupError, require_topics
from libs.logging.structured import configure
from libs.schemas.transaction import transaction_to_json
from services.producer.delivery import DeliveryReports, Metrics, RateWindow, Totals
from services.producer.generator import (
    PATTERNS,
    GeneratedTransaction,
    GeneratorConfig,
    generate,
)

SERVICE = "producer"
EXIT_UNDELIVERED = 1  # delivery errors, or messages still queued at the flush deadline
_EARLY = 0.002  # s: send up to this much ahead of schedule, so waits cover whole batches

log = logging.getLogger("producer")


# -- flags -------------------------------------------------------------------------------


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"{text} must be a finite number >= 0")
    return value


def _ratio(text: str) -> float:
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be in [0, 1)")
    return value


def _patterns(text: str) -> tuple[str, ...]:
    names = tuple(p.strip() for p in text.split(",") if p.strip())
    unknown = [p for p in names if p not in PATTERNS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected a comma-separated subset of {','.join(PATTERNS)}"
        )
    return names


def parse_args(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> argparse.Namespace:
    """Flags > environment > defaults; --help names every variable."""
    parser = argparse.ArgumentParser(
        prog="producer",
        description="Synthetic card transactions (about 10% labelled fraud) into Kafka.",
    )
    env = {"environ": environ}
    # fmt: off
    kafka = parser.add_argument_group("Kafka")
    flag(kafka, "--bootstrap-servers", env="KAFKA_BOOTSTRAP_SERVERS", default="localhost:9092",
         help="Kafka bootstrap servers (host:port,...)", **env)
    flag(kafka, "--topic", env="FRAUD_PRODUCER_TOPIC", default="transactions",
         help="topic to write; must exist", **env)
    flag(kafka, "--linger-ms", env="FRAUD_PRODUCER_LINGER_MS", default=10, type=non_negative_int,
         help="how long librdkafka waits to fill a batch", **env)
    flag(kafka, "--compression", env="FRAUD_PRODUCER_COMPRESSION", default="lz4",
         choices=("none", "gzip", "snappy", "lz4", "zstd"), help="batch compression", **env)
    flag(kafka, "--flush-timeout", env="FRAUD_PRODUCER_FLUSH_TIMEOUT", default=30.0,
         type=_non_negative_float, help="seconds to wait for outstanding deliveries at exit",
         **env)
    flag(kafka, "--startup-timeout", env="FRAUD_PRODUCER_STARTUP_TIMEOUT", default=15.0,
         type=positive_float, help="seconds to reach the broker and find the topic", **env)

    stream = parser.add_argument_group("stream")
    flag(stream, "--rate", env="FRAUD_PRODUCER_RATE", default=100.0, type=positive_float,
         help="transactions per second", **env)
    flag(stream, "--duration", env="FRAUD_PRODUCER_DURATION", default=0.0,
         type=_non_negative_float, help="stop after this many seconds (0: no limit)", **env)
    flag(stream, "--count", env="FRAUD_PRODUCER_COUNT", default=0, type=non_negative_int,
         help="stop after this many transactions (0: no limit)", **env)
    flag(stream, "--seed", env="FRAUD_PRODUCER_SEED", default=None, type=int,
         help="seed for a reproducible stream (unset: random, logged at start)", **env)
    flag(stream, "--fraud-ratio", env="FRAUD_PRODUCER_FRAUD_RATIO", default=0.10, type=_ratio,
         help="share of transactions that belong to a fraud pattern", **env)
    flag(stream, "--patterns", env="FRAUD_PRODUCER_PATTERNS", default=",".join(PATTERNS),
         type=_patterns, help="fraud patterns to inject (comma-separated)", **env)
    flag(stream, "--users", env="FRAUD_PRODUCER_USERS", default=0, type=non_negative_int,
         help="user pool size (0: rate x mean purchase interval)", **env)
    flag(stream, "--mean-purchase-interval", env="FRAUD_PRODUCER_MEAN_PURCHASE_INTERVAL",
         default=60.0, type=positive_float,
         help="mean seconds between two purchases of one user (sizes the pool)", **env)
    flag(stream, "--window-seconds", env="FRAUD_PRODUCER_WINDOW_SECONDS", default=60,
         type=non_negative_int,
         help="detector window; fraud bursts are kept inside one (0: not aligned)", **env)

    ops = parser.add_argument_group("operations")
    flag(ops, "--metrics-port", env="FRAUD_PRODUCER_METRICS_PORT", default=8000,
         type=non_negative_int, help="Prometheus port (0: off)", **env)
    flag(ops, "--log-interval", env="FRAUD_PRODUCER_LOG_INTERVAL", default=5.0,
         type=positive_float, help="seconds between progress lines", **env)
    flag(ops, "--log-level", env="FRAUD_PRODUCER_LOG_LEVEL", default="INFO",
         choices=("DEBUG", "INFO", "WARNING", "ERROR"), help="log level", **env)
    # fmt: on
    return parser.parse_args(argv)


def generator_config(args: argparse.Namespace, start_time: datetime) -> GeneratorConfig:
    """The generator's config from the flags; --duration becomes a count at the rate."""
    limits = []
    if args.count:
        limits.append(args.count)
    if args.duration:
        limits.append(math.ceil(args.duration * args.rate))
    return GeneratorConfig(
        start_time=start_time,
        rate=args.rate,
        seed=args.seed,
        count=min(limits) if limits else None,
        fraud_ratio=args.fraud_ratio,
        users=args.users or None,
        mean_purchase_interval=args.mean_purchase_interval,
        window_seconds=args.window_seconds,
        patterns=args.patterns,
    )


def kafka_config(args: argparse.Namespace) -> dict[str, Any]:
    """librdkafka settings: idempotent (no duplicates on retry), acks=all, lz4 batches."""
    return {
        "bootstrap.servers": args.bootstrap_servers,
        "client.id": "fraud-producer",
        "enable.idempotence": True,
        "acks": "all",
        "compression.type": args.compression,
        "linger.ms": args.linger_ms,
        "batch.size": 1_000_000,
        "queue.buffering.max.messages": 500_000,
        "logger": logging.getLogger("producer.librdkafka"),
    }


# -- startup -----------------------------------------------------------------------------


# -- the send loop -----------------------------------------------------------------------


def run(args: argparse.Namespace, shutdown: Shutdown) -> int:
    """Produce until the stream ends or shutdown is requested; returns the exit code."""
    if args.seed is None:
        args.seed = secrets.randbelow(2**31)
    metrics, totals = Metrics(), Totals()
    reports = DeliveryReports(metrics, totals)
    producer = Producer(kafka_config(args))
    partitions = require_topics(
        producer, [args.topic], args.bootstrap_servers, args.startup_timeout
    )[args.topic]
    server = serve_metrics(args.metrics_port, metrics.registry)

    started_wall = datetime.now(UTC)
    config = generator_config(args, started_wall)
    log.info(
        "producing",
        extra={
            "bootstrap": args.bootstrap_servers,
            "topic": args.topic,
            "partitions": partitions,
            "rate": args.rate,
            "count": config.count,
            "seed": config.seed,
            "users": config.user_count,
            "fraud_ratio": config.fraud_ratio,
            "patterns": list(config.patterns),
            "metrics_port": args.metrics_port,
        },
    )
    stream = generate(config)  # builds the pools now, not on the first send
    # The schedule's origin is start_time on the monotonic clock, so event_time ~ send time.
    origin = time.monotonic() - (datetime.now(UTC) - started_wall).total_seconds()
    reason = _send(producer, stream, origin, args, shutdown, reports)

    log.info("flushing", extra={"reason": reason, "queued": len(producer)})
    undelivered = producer.flush(args.flush_timeout)
    metrics.queue_length.set(undelivered)
    elapsed = (datetime.now(UTC) - started_wall).total_seconds()
    summary = {
        "reason": reason,
        "seed": config.seed,
        "sent": totals.sent,
        "delivered": totals.delivered,
        "fraud_delivered": totals.fraud_delivered,
        "errors": totals.errors,
        "undelivered": undelivered,
        "by_pattern": totals.by_pattern,
        "elapsed_seconds": round(elapsed, 3),
        "average_rate": round(totals.delivered / elapsed, 1) if elapsed > 0 else 0.0,
    }
    if server is not None:
        server.shutdown()
    if totals.errors or undelivered:
        summary["last_error"] = totals.last_error
        log.error("producer stopped with undelivered messages", extra=summary)
        return EXIT_UNDELIVERED
    log.info("producer stopped", extra=summary)
    return 0


class _Reporter:
    """Gauges once a second and a progress line every --log-interval, from the send loop."""

    def __init__(self, producer: Producer, reports: DeliveryReports, interval: float) -> None:
        self.producer, self.metrics, self.totals = producer, reports.metrics, reports.totals
        self.interval = interval
        self.rates = RateWindow()
        self.next_tick = time.monotonic() + 1.0
        self.next_progress = time.monotonic() + interval
        self.reported_errors = 0

    def __call__(self, now: float, lag: float) -> None:
        if now < self.next_tick:
            return
        self.next_tick = now + 1.0
        totals, queued = self.totals, len(self.producer)
        rate = self.rates.add(now, totals.sent)
        self.metrics.send_rate.set(rate)
        self.metrics.queue_length.set(queued)
        self.metrics.schedule_lag.set(lag)
        if now < self.next_progress:
            return
        self.next_progress = now + self.interval
        new_errors = totals.errors > self.reported_errors
        self.reported_errors = totals.errors
        log.log(
            logging.WARNING if new_errors or lag > 1 else logging.INFO,
            "progress",
            extra={
                "sent": totals.sent,
                "delivered": totals.delivered,
                "errors": totals.errors,
                "rate": round(rate, 1),
                "queued": queued,
                "behind_seconds": round(lag, 3),
                **({"last_error": totals.last_error} if totals.errors else {}),
            },
        )


def _send(
    producer: Producer,
    stream: Iterator[GeneratedTransaction],
    origin: float,
    args: argparse.Namespace,
    shutdown: Shutdown,
    reports: DeliveryReports,
) -> str:
    """Transaction i goes out at origin + i / rate (monotonic clock). Ahead of schedule we
    wait, and send up to _EARLY ahead, so at high rates each wake-up sends a batch;
    behind schedule we send flat out until caught up."""
    topic, interval, totals = args.topic, 1.0 / args.rate, reports.totals
    produce, poll, monotonic = producer.produce, producer.poll, time.monotonic
    report = _Reporter(producer, reports, args.log_interval)
    for i, item in enumerate(stream):
        now = monotonic()
        due = origin + i * interval
        if due - now > _EARLY:
            poll(0)
            if shutdown.wait(due - now):
                break
        elif i & 0xFF == 0:
            poll(0)
            if shutdown.requested:
                break
        transaction = item.transaction
        value = transaction_to_json(transaction)
        key = transaction.user_id.encode()
        timestamp = round(transaction.event_time.timestamp() * 1000)
        headers, on_delivery = item.headers(), reports.callback(item.pattern)
        while True:
            try:
                produce(
                    topic, value, key, timestamp=timestamp, headers=headers, on_delivery=on_delivery
                )
                break
            except BufferError:  # queue full (broker slow or down): serve reports, wait
                poll(0.05)
                now = monotonic()
                report(now, now - due)
                if shutdown.requested:
                    return f"{shutdown.signal_name or 'shutdown'} received"
        totals.sent = i + 1
        report(now, max(0.0, now - due))
    else:
        return "end of stream (--count/--duration reached)"
    return f"{shutdown.signal_name or 'shutdown'} received"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    configure(SERVICE, args.log_level)
    shutdown = Shutdown().install()
    try:
        return run(args, shutdown)
    except StartupError as err:
        log.error(str(err))
        return EXIT_STARTUP


if __name__ == "__main__":
    sys.exit(main())
