"""The quality monitor: live precision and recall of `fraud_alerts` against the ground-truth
headers on `transactions`, as Prometheus metrics and a JSON report at exit.

Why a separate observer: the detector must never see the labels (it would be scoring
itself), so the only honest judge is a process that reads both topics in its own
consumer group and compares them per (user_id, window). Scoring rules live in
`scoring_book.py` and settings in `config.py`; this module is the edge: the consume
loop, when windows may be scored, metrics, the report, and a clean stop on SIGTERM/SIGINT
(within a stop grace period even when the broker is already gone: see close_consumer).

When windows are scored: by the event-time clock (newest transaction read) minus
watermark minus grace, never by the wall clock, so a replay scores like the live run.
The clock only starts scoring once every assigned `fraud_alerts` partition has been read
to its end: with a backlog on both topics (a replay, a restart) transactions can be read
far ahead of the alerts for the same windows, and scoring then would turn every one of
those alerts into a late one.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from libs.cli.service import Shutdown, serve_metrics
from libs.cli.startup import EXIT_STARTUP, StartupError, require_topics
from libs.kafka.security import ClientErrors
from libs.logging.structured import configure
from services.quality.config import QualitySettings, parse_settings
from services.quality.metrics import QualityMetrics, Snapshot
from services.quality.records import BadRecord, read_alert, read_transaction, read_truth
from services.quality.report import SERVICE, build_report, iso, rounded, write_report
from services.quality.scoring_book import BookSettings, ScoringBook, Totals

WINDOW_MISMATCH = "window_mismatch"  # alert window not one of ours: flags disagree
_LOGGED_CONSUMER_ERRORS = 10

log = logging.getLogger("quality")


# -- settings ----------------------------------------------------------------------------


def book_settings(args: QualitySettings) -> BookSettings:
    return BookSettings(
        window_seconds=args.window_seconds,
        watermark_seconds=args.watermark_seconds,
        grace_seconds=args.grace_seconds,
    )


def kafka_config(args: QualitySettings) -> dict[str, Any]:
    """librdkafka settings: own group, auto commit, and partition-EOF events (they tell
    when the alerts backlog has been read, see the module docstring)."""
    return {
        "bootstrap.servers": args.bootstrap_servers,
        "group.id": args.group_id,
        "client.id": "fraud-quality",
        "auto.offset.reset": args.offset_reset,
        "enable.auto.commit": True,
        "enable.partition.eof": True,
        "logger": logging.getLogger("quality.librdkafka"),
        **args.kafka.librdkafka_config(),  # TLS/SASL (holds the password: never log)
    }


# -- the consume loop --------------------------------------------------------------------


class Monitor:
    """Reads batches from both topics into the book, scores what is final, publishes."""

    def __init__(
        self,
        consumer: Consumer,
        book: ScoringBook,
        metrics: QualityMetrics,
        *,
        transactions_topic: str,
        alerts_topic: str,
        batch_size: int,
    ) -> None:
        self.consumer = consumer
        self.book = book
        self.metrics = metrics
        self.transactions_topic = transactions_topic
        self.alerts_topic = alerts_topic
        self.batch_size = batch_size
        self.bad_records: dict[tuple[str, str], int] = {}
        self.transactions_read = 0
        self.first_read_at: float | None = None  # monotonic, first transaction batch
        self.last_read_at: float | None = None
        self.consume_rate = 0.0
        self._alerts_unread: set[int] = set()  # assigned alerts partitions not yet at EOF
        self._alerts_caught_up = False
        self._consumer_errors = 0

    # Rebalance callbacks (eager protocol: each assignment is the whole set).
    def on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._alerts_unread = {p.partition for p in partitions if p.topic == self.alerts_topic}
        self._alerts_caught_up = False
        log.info(
            "partitions assigned",
            extra={"partitions": [f"{p.topic}[{p.partition}]" for p in partitions]},
        )
        if partitions and not self._alerts_unread:
            log.warning(
                "no alerts partition assigned (does another member of the group hold them?); "
                "windows are not scored until this monitor reads the alerts",
                extra={"alerts_topic": self.alerts_topic},
            )

    def on_revoke(self, _consumer: Consumer, _partitions: list[TopicPartition]) -> None:
        self._alerts_unread = set()
        self._alerts_caught_up = False

    @property
    def alerts_caught_up(self) -> bool:
        return self._alerts_caught_up

    def poll(self, timeout: float) -> int:
        """One consume() call: handle the batch, score what is final, publish. Returns the
        number of messages (EOF events included)."""
        batch = self.consumer.consume(num_messages=self.batch_size, timeout=timeout)
        if batch:
            self.handle(batch)
        if self._alerts_caught_up:
            self.book.close_ready()
        self.publish()
        return len(batch)

    def handle(self, messages: list[Message]) -> None:
        """Feed one batch to the book. The hot path: locals only, no per-message metrics."""
        tx_topic = self.transactions_topic
        observe_transaction = self.book.observe_transaction
        transactions = 0
        for msg in messages:
            if msg.error() is not None:
                self._on_error(msg)
                continue
            if msg.topic() == tx_topic:
                try:
                    user_id, event_time = read_transaction(msg.value())
                except BadRecord as bad:
                    self._count_bad(tx_topic, bad.reason)
                    continue
                label, pattern = read_truth(msg.headers())
                observe_transaction(user_id, event_time, label, pattern)
                transactions += 1
            else:
                self._on_alert(msg)
        if transactions:
            now = time.monotonic()
            if self.first_read_at is None:
                self.first_read_at = now
            self.last_read_at = now
            self.transactions_read += transactions

    def _on_alert(self, msg: Message) -> None:
        try:
            user_id, start, end = read_alert(msg.value())
        except BadRecord as bad:
            self._count_bad(self.alerts_topic, bad.reason)
            return
        width = self.book.settings.window_seconds
        if end - start != width or start % width:
            count = self._count_bad(self.alerts_topic, WINDOW_MISMATCH)
            if count == 1:
                log.warning(
                    "alert window does not match --window-seconds; is the detector "
                    "configured differently? such alerts are skipped and counted",
                    extra={"window_seconds": width, "alert_window_start": start,
                           "alert_window_end": end, "user_id": user_id},
                )  # fmt: skip
            return
        self.book.observe_alert(user_id, start)

    def _on_error(self, msg: Message) -> None:
        err: KafkaError = msg.error()
        if err.code() == KafkaError._PARTITION_EOF:
            if msg.topic() == self.alerts_topic and not self._alerts_caught_up:
                self._alerts_unread.discard(msg.partition())
                if not self._alerts_unread:
                    self._alerts_caught_up = True
                    log.info("alerts backlog read; scoring windows by the event-time clock")
            return
        if err.fatal():
            raise KafkaException(err)
        self._consumer_errors += 1
        if self._consumer_errors <= _LOGGED_CONSUMER_ERRORS:
            log.warning("consumer error", extra={"error": str(err), "topic": msg.topic()})

    def _count_bad(self, topic: str, reason: str) -> int:
        key = (topic, reason)
        count = self.bad_records.get(key, 0) + 1
        self.bad_records[key] = count
        return count

    def publish(self) -> None:
        self.metrics.publish(
            Snapshot(self.book.totals(), dict(self.bad_records), self.consume_rate)
        )

    def finish(self) -> Totals:
        """Score every open window as final (shutdown) and publish the last numbers."""
        self.book.close_all()
        self.publish()
        return self.book.totals()

    @property
    def active_rate(self) -> float | None:
        """Transactions per second between the first and the last batch that had any."""
        if self.first_read_at is None or self.last_read_at is None:
            return None
        span = self.last_read_at - self.first_read_at
        return self.transactions_read / span if span > 0 else None


# -- main --------------------------------------------------------------------------------


def _progress(monitor: Monitor, since: float, read_before: int, now: float) -> None:
    t = monitor.book.totals()
    monitor.consume_rate = (monitor.transactions_read - read_before) / max(now - since, 1e-9)
    log.info(
        "progress",
        extra={
            "transactions": monitor.transactions_read,
            "tx_per_second": round(monitor.consume_rate, 1),
            "alerts": t.alerts,
            "open_windows": t.open_windows,
            "true_positives": t.true_positives,
            "false_positives": t.false_positives,
            "false_negatives": t.false_negatives,
            "precision": rounded(t.precision, 4),
            "recall": rounded(t.recall, 4),
            "late_alerts": t.late_alerts,
            "event_clock": iso(t.clock),
            "scored_through": iso(t.closed_through),
            "alerts_caught_up": monitor.alerts_caught_up,
        },
    )


def close_consumer(consumer: Consumer, timeout: float) -> bool:
    """consumer.close() commits the offsets and leaves the group; with the broker gone it
    blocks for most of a minute, past any stop grace period. So it runs on a daemon thread
    and is given up after `timeout` (a monitor re-reads a little at its next start).
    Returns whether it finished."""
    closer = threading.Thread(target=consumer.close, name="consumer-close", daemon=True)
    closer.start()
    closer.join(timeout)
    if closer.is_alive():
        log.warning(
            "kafka consumer close timed out; the last offsets may be uncommitted",
            extra={"timeout_seconds": timeout},
        )
        return False
    return True


def run(args: QualitySettings, shutdown: Shutdown) -> int:
    """Monitor until SIGTERM/SIGINT; then score everything open, report, exit 0."""
    settings = book_settings(args)
    errors = ClientErrors()  # why a start-up check failed (a refused login, TLS)
    consumer = Consumer({**kafka_config(args), "error_cb": errors})
    topics = [args.transactions_topic, args.alerts_topic]
    try:
        require_topics(consumer, topics, args.bootstrap_servers, args.startup_timeout)
    except StartupError as err:
        why = errors.why(consumer)
        close_consumer(consumer, args.close_timeout)
        raise StartupError(f"{err} (the client reported: {why})" if why else str(err)) from None
    metrics = QualityMetrics()
    monitor = Monitor(
        consumer,
        ScoringBook(settings),
        metrics,
        transactions_topic=args.transactions_topic,
        alerts_topic=args.alerts_topic,
        batch_size=args.batch_size,
    )
    consumer.subscribe(topics, on_assign=monitor.on_assign, on_revoke=monitor.on_revoke)
    server = serve_metrics(args.metrics_port, metrics.registry)
    log.info(
        "monitoring",
        extra={
            "bootstrap": args.bootstrap_servers,
            "topics": topics,
            "group_id": args.group_id,
            "window_seconds": settings.window_seconds,
            "watermark_seconds": settings.watermark_seconds,
            "grace_seconds": settings.grace_seconds,
            "metrics_port": args.metrics_port,
        },
    )
    started = last_progress = time.monotonic()
    read_at_last_progress = 0
    try:
        while not shutdown.requested:
            monitor.poll(0.5)
            now = time.monotonic()
            if now - last_progress >= args.log_interval:
                _progress(monitor, last_progress, read_at_last_progress, now)
                last_progress, read_at_last_progress = now, monitor.transactions_read
        totals = monitor.finish()
        report = build_report(
            totals,
            settings=settings,
            bad_records=monitor.bad_records,
            stopped_by=shutdown.signal_name or "request",
            elapsed_seconds=time.monotonic() - started,
            transactions_read=monitor.transactions_read,
            active_rate=monitor.active_rate,
        )
        if args.report_file:
            write_report(Path(args.report_file), report)
        log.info("quality monitor stopped", extra={"report": report})
    finally:
        close_consumer(consumer, args.close_timeout)  # commits the offsets read
        if server is not None:
            server.shutdown()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_settings(argv)
    configure(SERVICE, args.log_level)
    shutdown = Shutdown().install()
    try:
        return run(args, shutdown)
    except StartupError as err:
        log.error(str(err))
        return EXIT_STARTUP


if __name__ == "__main__":
    sys.exit(main())
