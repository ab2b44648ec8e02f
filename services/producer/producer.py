"""The producer service: the generator's stream, paced to wall-clock time, into Kafka.

Why a thin edge around `generator.py`: the stream (users, fraud patterns, event times) is
pure and tested without Kafka; this module only decides *when* each transaction is sent
(transaction i at i / rate seconds after start, so event_time ~ send time), sends it
idempotently with its ground-truth headers, counts what the broker acknowledged, and
stops cleanly on SIGTERM (flush with a deadline, log totals). A missing topic or an
unreachable broker is a clear startup error, not a stream of silent delivery failures.
"""

from __future__ import annotations

import logging
import secrets
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

from confluent_kafka import Producer

from libs.cli.service import Shutdown, serve_metrics
from libs.cli.startup import EXIT_STARTUP, StartupError, require_topics
from libs.kafka.security import ClientErrors
from libs.logging.structured import configure
from libs.schemas.transaction import transaction_to_json
from services.producer.config import ProducerSettings, parse_settings
from services.producer.delivery import DeliveryReports, Metrics, RateWindow, Totals
from services.producer.generator import GeneratedTransaction, generate

SERVICE = "producer"
EXIT_UNDELIVERED = 1  # delivery errors, or messages still queued at the flush deadline
_EARLY = 0.002  # s: send up to this much ahead of schedule, so waits cover whole batches

log = logging.getLogger("producer")


# -- the send loop -----------------------------------------------------------------------


def run(settings: ProducerSettings, shutdown: Shutdown) -> int:
    """Produce until the stream ends or shutdown is requested; returns the exit code."""
    seed = secrets.randbelow(2**31) if settings.seed is None else settings.seed
    metrics, totals = Metrics(), Totals()
    reports = DeliveryReports(metrics, totals)
    errors = ClientErrors()  # why a start-up check failed (a refused login, TLS)
    producer = Producer({**settings.kafka_config(), "error_cb": errors})
    try:
        partitions = require_topics(
            producer, [settings.topic], settings.bootstrap_servers, settings.startup_timeout
        )[settings.topic]
    except StartupError as err:
        why = errors.why(producer)
        raise StartupError(f"{err} (the client reported: {why})" if why else str(err)) from None
    server = serve_metrics(settings.metrics_port, metrics.registry)

    started_wall = datetime.now(UTC)
    config = settings.generator_config(started_wall, seed)
    log.info(
        "producing",
        extra={
            "bootstrap": settings.bootstrap_servers,
            "topic": settings.topic,
            "partitions": partitions,
            "rate": settings.rate,
            "count": config.count,
            "seed": config.seed,
            "users": config.user_count,
            "fraud_ratio": config.fraud_ratio,
            "patterns": list(config.patterns),
            "metrics_port": settings.metrics_port,
        },
    )
    stream = generate(config)  # builds the pools now, not on the first send
    # The schedule's origin is start_time on the monotonic clock, so event_time ~ send time.
    origin = time.monotonic() - (datetime.now(UTC) - started_wall).total_seconds()
    reason = _send(producer, stream, origin, settings, shutdown, reports)

    log.info("flushing", extra={"reason": reason, "queued": len(producer)})
    undelivered = producer.flush(settings.flush_timeout)
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
    settings: ProducerSettings,
    shutdown: Shutdown,
    reports: DeliveryReports,
) -> str:
    """Transaction i goes out at origin + i / rate (monotonic clock). Ahead of schedule we
    wait, and send up to _EARLY ahead, so at high rates each wake-up sends a batch;
    behind schedule we send flat out until caught up."""
    topic, interval, totals = settings.topic, 1.0 / settings.rate, reports.totals
    produce, poll, monotonic = producer.produce, producer.poll, time.monotonic
    report = _Reporter(producer, reports, settings.log_interval)
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
    settings = parse_settings(argv)
    configure(SERVICE, settings.log_level)
    shutdown = Shutdown().install()
    try:
        return run(settings, shutdown)
    except StartupError as err:
        log.error(str(err))
        return EXIT_STARTUP


if __name__ == "__main__":
    sys.exit(main())
