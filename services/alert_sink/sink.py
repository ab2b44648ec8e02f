"""Alert sink: Kafka `fraud_alerts` -> PostgreSQL `alerts`, no alert lost, none duplicated.

Why it is built this way:
- Offsets are committed synchronously, and only the offsets of the batch just written,
  after the database commit. A crash anywhere re-delivers at most the batch whose commit
  had not happened; the idempotent upsert (highest version wins, the same version is a
  no-op) makes the replay harmless.
- A database outage never skips a batch: the same batch is retried with capped, jittered
  exponential backoff. Meanwhile the assigned partitions are paused and the consumer keeps
  polling, so it stays in its group (max.poll.interval.ms) and reads nothing new.
- Bad input goes to the DLQ topic with the original key and bytes and is counted; the
  batch goes on. So does a row the database refuses for its data (SQLSTATE classes 22,
  23, 54, ...; see db_errors.py): only errors about the server are retried. Kafka confirms
  a dead letter before the offsets covering it are committed (libs/dlq: oversized letters
  are cut, a delivery that cannot finish in time fails the attempt, which is retried).
- Health: `fraud_sink_db_up`, `fraud_sink_kafka_up` and `fraud_sink_ready` (and
  `/healthz`, 200 or 503) say whether the database and the broker answer; both are
  probed every few seconds even when no alerts arrive.
- SIGTERM finishes the batch in hand if the database answers, otherwise leaves its offsets
  uncommitted (re-delivered later), closes the consumer and exits 0.
"""

from __future__ import annotations

import logging
import os
import random
import sys
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, Message
from confluent_kafka import TopicPartition as KafkaPartition

from libs.cli.service import Shutdown
from libs.dlq.dlq import DeadLetter, DeadLetterPublisher, DlqConfig, DlqError
from libs.logging.structured import bind, configure
from libs.schemas.alert import Alert, parse_alert
from services.alert_sink.batching import (
    Batch,
    SourceMessage,
    TopicPartition,
    decode_batch,
    drop_partitions,
)
from services.alert_sink.config import Config, parse_config
from services.alert_sink.dlq import DB_REJECTED, DlqDelivery, dead_letter
from services.alert_sink.health import serve
from services.alert_sink.metrics import SinkMetrics
from services.alert_sink.store import AlertStore, StoreError, WriteResult, safe_dsn

SERVICE = "alert_sink"
# How often consumer lag is refreshed and the broker and the database are probed.
LAG_REFRESH_SECONDS = 5.0
# The longest the loop goes without poll() while it holds a batch during an outage. Any
# other stretch without poll() is one database attempt (bounded by the connection timeouts
# in store.py) or one DLQ send or flush (--dlq-timeout-ms), far below max.poll.interval.ms.
HOLD_POLL_SECONDS = 0.5

T = TypeVar("T")
log = logging.getLogger("alert_sink")


class Abandoned(Exception):
    """Shutdown was requested while a step kept failing: leave its offsets uncommitted."""


class Sink:
    """The consume -> write -> dead-letter -> commit loop. One thread: Kafka's rebalance and
    error callbacks run inside poll()/consume() on it."""

    def __init__(
        self,
        config: Config,
        shutdown: Shutdown,
        metrics: SinkMetrics,
        rng: random.Random,
        parse: Callable[[bytes], Alert] = parse_alert,
    ) -> None:
        self.config = config
        self.parse = parse  # tests hand in alerts that no parser would let through
        self.shutdown = shutdown
        self.metrics = metrics
        self.rng = rng
        self.log = bind(log, topic=config.topic, group_id=config.group_id)
        self.store = AlertStore(
            config.postgres_dsn,
            config.table,
            params=config.postgres_params,
            password_file=config.postgres_password_file or None,
        )
        common = {
            "bootstrap.servers": config.bootstrap_servers,
            "error_cb": self._kafka_error,
            "logger": logging.getLogger("alert_sink.kafka"),  # librdkafka logs as JSON too
            **config.kafka.librdkafka_config(),  # TLS/SASL (holds the password: never log)
        }
        self.consumer = Consumer(
            {
                **common,
                "group.id": config.group_id,
                "client.id": "alert_sink",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": config.session_timeout_ms,
                "max.poll.interval.ms": config.max_poll_interval_ms,
            }
        )
        self.dlq = DeadLetterPublisher(
            DlqConfig(
                config.bootstrap_servers,
                config.dlq_topic,
                deadline_s=config.dlq_timeout_ms / 1000,
                max_value_bytes=config.dlq_max_bytes,
            ),
            producer_options={**common, "client.id": "alert_sink-dlq"},
        )
        self.in_hand: Batch | None = None  # the batch being written; a revoke trims it
        self.carry: list[Message] = []  # delivered while holding: starts the next batch
        self.holding = False  # partitions are paused while a batch waits
        self._lag_due = 0.0
        self._lag_labels: set[tuple[str, str]] = set()
        self._db_answered_at = float("-inf")  # monotonic time the database last answered
        self._last_kafka_error = ("", 0.0)

    # -- main loop ---------------------------------------------------------------------

    def run(self) -> None:
        c = self.config
        self.log.info(
            "starting",
            extra={
                "postgres": safe_dsn(c.postgres_dsn),
                "postgres_params": c.postgres_params,  # sslmode and CA file, no secret
                "table": c.table,
                "bootstrap_servers": c.bootstrap_servers,
                "dlq_topic": c.dlq_topic,
                "batch_size": c.batch_size,
            },
        )
        try:
            self._retry(self._connect, "database connect")
            self.consumer.subscribe(
                [c.topic],
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_revoke,
            )
            timeout = c.batch_timeout_ms / 1000
            while not self.shutdown.requested:
                wanted = max(1, c.batch_size - len(self.carry))
                messages = self.carry + self.consumer.consume(wanted, timeout)
                self.carry = []
                self.dlq.poll()  # serve the DLQ producer's logs and callbacks
                self._refresh()
                if messages:
                    self._process(self._decode(messages))
        except Abandoned:
            pass  # already logged; the uncommitted batch is re-delivered to the next run
        finally:
            self._close()

    def _decode(self, messages: list[Message]) -> Batch:
        sources: list[SourceMessage] = []
        for msg in messages:
            err = msg.error()
            if err is not None:
                self._kafka_error(err)
                continue
            sources.append(
                SourceMessage(msg.topic(), msg.partition(), msg.offset(), msg.key(), msg.value())
            )
        self.metrics.consumed.inc(len(sources))
        return decode_batch(sources, self.parse)

    def _process(self, batch: Batch) -> None:
        """Write, dead-letter, commit; each step retried until done or shutdown."""
        if not batch.messages:
            return
        self.in_hand = batch
        try:
            started, result = self._retry(lambda: self._write(self._batch()), "database write")
            letters = self._dead_letters(self._batch(), result)
            if letters:
                delivery = DlqDelivery(letters, self._dead_letter_sent)
                self._retry(lambda: delivery.send(self.dlq), "DLQ")
            self._commit(self._batch())
            self.metrics.batch_seconds.observe(time.monotonic() - started)
        finally:
            self.in_hand = None
            self._release()

    def _batch(self) -> Batch:
        assert self.in_hand is not None
        return self.in_hand

    # -- steps -------------------------------------------------------------------------

    def _connect(self) -> None:
        self.store.connect()
        self._database_answered()

    def _database_answered(self) -> None:
        self._db_answered_at = time.monotonic()
        self.metrics.set_health(database=True)

    def _write(self, batch: Batch) -> tuple[float, WriteResult]:
        started = time.monotonic()
        result = self.store.write([d.alert for d in batch.latest])
        m = self.metrics
        if batch.latest:
            self._database_answered()
        m.batch_size.observe(len(batch.messages))
        m.stored.inc(len(result.stored))
        written_or_refused = len(result.stored) + len(result.rejected)
        m.ignored.inc(batch.superseded + len(batch.latest) - written_or_refused)
        m.record_stored(result.stored, result.committed_at)
        self.log.debug(
            "batch written",
            extra={
                "batch_size": len(batch.messages),
                "stored": len(result.stored),
                "bad": len(batch.bad),
                "offsets": _offset_ranges(batch),
            },
        )
        return started, result

    def _dead_letters(self, batch: Batch, result: WriteResult) -> list[DeadLetter]:
        letters = [dead_letter(b.message, b.reason, b.detail) for b in batch.bad]
        source_of = {d.alert: d.message for d in batch.latest}
        letters += [dead_letter(source_of[a], DB_REJECTED, why) for a, why in result.rejected]
        for letter in letters:
            self.log.warning(
                "dead-lettering message",
                extra={
                    "partition": letter.source_partition,
                    "offset": letter.source_offset,
                    "user_id": (letter.key or b"").decode(errors="replace")[:80],
                    "reason": letter.reason,
                    "detail": letter.detail,
                    "dlq_topic": self.config.dlq_topic,
                },
            )
        return letters

    def _dead_letter_sent(self, reason: str) -> None:
        self.metrics.dlq.labels(reason=reason).inc()

    def _commit(self, batch: Batch) -> None:
        """Synchronously commit exactly this batch's offsets. A failure is logged, not
        retried: the next commit covers these offsets too, and until then a restart
        re-delivers them, which the upsert makes harmless."""
        offsets = [KafkaPartition(t, p, o) for (t, p), o in batch.commit_offsets().items()]
        if not offsets:
            return
        try:
            results = self.consumer.commit(offsets=offsets, asynchronous=False) or []
            failed = [tp for tp in results if tp.error is not None]
            detail = "; ".join(f"partition {tp.partition}: {tp.error}" for tp in failed)
        except KafkaException as err:
            failed, detail = offsets, str(err)
        if failed:
            self.metrics.commit_errors.inc()
            self.log.warning(
                "offset commit failed; the batch will be re-delivered",
                extra={"detail": detail, "offsets": _offset_ranges(batch)},
            )

    # -- outages -----------------------------------------------------------------------

    def _retry(self, attempt: Callable[[], T], what: str) -> T:
        """Run `attempt` until it succeeds; raise Abandoned if shutdown came meanwhile.

        After shutdown is requested one more attempt is made (the database may be back);
        if that fails too the batch is abandoned with its offsets uncommitted.
        """
        failures = 0
        while True:
            try:
                result = attempt()
            except (StoreError, DlqError) as err:
                if isinstance(err, StoreError):
                    self.metrics.db_errors.labels(kind=err.kind).inc()
                    if err.server_answered:
                        self._database_answered()
                    else:
                        self.metrics.set_health(database=False)
                else:
                    self.metrics.dlq_errors.inc()
                if self.shutdown.requested:
                    self.log.warning(
                        f"{what} failed during shutdown; offsets left uncommitted",
                        extra={"error": str(err)},
                    )
                    raise Abandoned(what) from err
                delay = self.config.retry.delay(failures, self.rng)
                failures += 1
                self.log.warning(
                    f"{what} failed; retrying the same batch",
                    extra={
                        "error": str(err),
                        "attempt": failures,
                        "retry_in_s": round(delay, 3),
                        "batch_size": len(self.in_hand.messages) if self.in_hand else 0,
                    },
                )
                self._hold(delay)
                continue
            if failures:
                self.log.info(f"{what} succeeded after {failures} failed attempts")
            return result

    def _hold(self, seconds: float) -> None:
        """Wait `seconds` (or until shutdown) with every partition paused, still polling so
        the group keeps this consumer."""
        if not self.holding and self.consumer.assignment():
            self.consumer.pause(self.consumer.assignment())
        self.holding = True
        deadline = time.monotonic() + seconds
        while not self.shutdown.requested and (left := deadline - time.monotonic()) > 0:
            msg = self.consumer.poll(min(left, HOLD_POLL_SECONDS))
            if msg is not None and msg.error() is None:
                # Only a partition assigned before it could be paused delivers. Keep the
                # message for the next batch and pause the partition: its position stays
                # right after this message, so nothing is skipped or read twice.
                self.carry.append(msg)
                self.consumer.pause([KafkaPartition(msg.topic(), msg.partition())])
            elif msg is not None:
                self._kafka_error(msg.error())
            self._refresh()

    def _release(self) -> None:
        if self.holding:
            self.holding = False
            assignment = self.consumer.assignment()
            if assignment:
                self.consumer.resume(assignment)

    def _on_assign(self, consumer: Consumer, partitions: list[KafkaPartition]) -> None:
        self.log.info(
            "partitions assigned", extra={"partitions": [p.partition for p in partitions]}
        )
        if self.holding:  # a batch still waits: take the partitions, but paused
            consumer.assign(partitions)
            consumer.pause(partitions)

    def _on_revoke(self, _consumer: Consumer, partitions: list[KafkaPartition]) -> None:
        revoked: set[TopicPartition] = {(p.topic, p.partition) for p in partitions}
        self.log.info("partitions revoked", extra={"partitions": sorted(p for _, p in revoked)})
        if self.in_hand is not None:
            self.in_hand = drop_partitions(self.in_hand, revoked, self.parse)
        self.carry = [m for m in self.carry if (m.topic(), m.partition()) not in revoked]

    # -- observability -----------------------------------------------------------------

    def _refresh(self) -> None:
        """Every LAG_REFRESH_SECONDS: consumer lag, and whether the broker and the database
        answer (the health gauges and /healthz)."""
        now = time.monotonic()
        if now < self._lag_due:
            return
        self._lag_due = now + LAG_REFRESH_SECONDS
        kafka = self._refresh_lag()
        if kafka != self.metrics.health().kafka:
            self.log.log(
                logging.INFO if kafka else logging.WARNING,
                "kafka broker " + ("reachable" if kafka else "unreachable"),
            )
        self.metrics.set_health(kafka=kafka)
        # While a batch is held, its retries already probe the database.
        if not self.holding and now - self._db_answered_at >= LAG_REFRESH_SECONDS:
            self._probe_database()

    def _probe_database(self) -> None:
        try:
            self.store.ping()
        except StoreError as err:
            if self.metrics.health().database and not err.server_answered:
                self.log.warning("database unreachable", extra={"error": str(err)})
            if err.server_answered:
                self._database_answered()
            else:
                self.metrics.set_health(database=False)
            return
        if not self.metrics.health().database:
            self.log.info("database reachable")
        self._database_answered()

    def _refresh_lag(self) -> bool:
        """fraud_sink_consumer_lag per assigned partition; False if the broker did not
        answer."""
        labels: set[tuple[str, str]] = set()
        try:
            assignment = self.consumer.assignment()
            if not assignment:  # nothing to measure: still ask the broker something
                self.consumer.list_topics(self.config.topic, timeout=2)
            committed = self.consumer.committed(assignment, timeout=2) if assignment else []
            for tp in committed:
                low, high = self.consumer.get_watermark_offsets(
                    KafkaPartition(tp.topic, tp.partition), timeout=2, cached=False
                )
                position = tp.offset if tp.offset >= 0 else low  # nothing committed yet
                label = (tp.topic, str(tp.partition))
                self.metrics.consumer_lag.labels(*label).set(max(0, high - position))
                labels.add(label)
        except KafkaException as err:
            self.log.debug("consumer lag not refreshed", extra={"error": str(err)})
            return False
        for gone in self._lag_labels - labels:
            self.metrics.consumer_lag.remove(*gone)
        self._lag_labels = labels
        return True

    def _kafka_error(self, err: KafkaError) -> None:
        if err.fatal():
            raise KafkaException(err)
        # librdkafka repeats transport errors while a broker is away: log each distinct
        # error at most every 30 s.
        text, when = self._last_kafka_error
        now = time.monotonic()
        if str(err) != text or now - when > 30:
            self._last_kafka_error = (str(err), now)
            self.log.warning("kafka client error", extra={"error": str(err)})

    def _close(self) -> None:
        try:
            self.consumer.close()  # leaves the group; commits nothing (auto commit is off)
        finally:
            self.dlq.close(5)
            self.store.close()
        self.log.info("stopped")


def _offset_ranges(batch: Batch) -> dict[str, str]:
    """{"topic/partition": "first-last"} for logs."""
    ranges: dict[str, tuple[int, int]] = {}
    for m in batch.messages:
        first, last = ranges.get(f"{m.topic}/{m.partition}", (m.offset, m.offset))
        ranges[f"{m.topic}/{m.partition}"] = (min(first, m.offset), max(last, m.offset))
    return {k: f"{a}-{b}" for k, (a, b) in ranges.items()}


def run(config: Config, shutdown: Shutdown, metrics: SinkMetrics | None = None) -> None:
    """Run until `shutdown` is requested (the in-process entry for the benchmark)."""
    Sink(config, shutdown, metrics or SinkMetrics(), random.Random()).run()


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_config(argv, os.environ)
    configure(SERVICE, config.log_level)
    shutdown = Shutdown().install()
    metrics = SinkMetrics()
    serve(config.metrics_port, metrics.registry, metrics.health)
    run(config, shutdown, metrics)
    if shutdown.signal_name:
        log.info("exiting after signal", extra={"signal": shutdown.signal_name})
    return 0


if __name__ == "__main__":
    sys.exit(main())
