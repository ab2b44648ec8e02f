"""The fraud-alert notifier: reads `fraud_alerts` as its own consumer group, records what
to tell whom in a PostgreSQL outbox, then sends.

Why a separate service and not a stage of the sink: the sink's job is to store alerts with
no loss; a Slack outage or an SMTP timeout must never slow or block that. Reading the
topic as a second consumer group leaves the sink's latency and failure modes untouched.

Guarantee (precisely): each alert key (user_id, window_start) whose score reaches
--min-score is recorded once per destination, and again only when its score rises,
because intents and consumed offsets commit in one transaction (nothing is lost or
recorded twice across a crash). A row is marked sent only after the destination
accepted it, so delivery is at least once; the one case of a second delivery is a crash
between the receiver's answer and the mark, and that copy carries the same
Idempotency-Key (user_id/window_start/score) for the receiver to drop. What still fails
after --max-attempts goes to the DLQ topic, never silently away.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from confluent_kafka import Consumer, TopicPartition

from libs.cli.service import Shutdown, serve_metrics
from libs.dlq.dlq import DeadLetter, DeadLetterPublisher, DlqConfig, DlqError
from libs.logging.structured import bind, configure
from libs.schemas.alert import parse_alert
from services.notifier import destinations as dest_config
from services.notifier import messages, senders
from services.notifier.config import Config, parse_config
from services.notifier.destinations import Destination, NotifyConfig
from services.notifier.limiter import Window
from services.notifier.metrics import NotifierMetrics
from services.notifier.store import Outbox, Row

DIGEST_MAX = 1000


class Notifier:
    def __init__(
        self, config: Config, notify: NotifyConfig, shutdown: Shutdown, metrics: NotifierMetrics
    ) -> None:
        self.config, self.notify, self.shutdown, self.metrics = config, notify, shutdown, metrics
        self.log = bind(logging.getLogger("notifier"), group_id=config.group_id)
        self.outbox = Outbox(config.postgres_dsn, config.group_id)
        self.windows = {d.name: Window(d.rate_limit) for d in notify.destinations}
        self.held: dict[str, set[str]] = {d.name: set() for d in notify.destinations}
        self.consumer = Consumer(
            {
                "bootstrap.servers": config.bootstrap_servers,
                "group.id": config.group_id,
                "client.id": "notifier",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                **config.kafka.librdkafka_config(),  # TLS/SASL
            }
        )
        self.dlq = DeadLetterPublisher(
            DlqConfig(config.bootstrap_servers, config.dlq_topic),
            producer_options={"client.id": "notifier-dlq", **config.kafka.librdkafka_config()},
        )

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        stored = self.outbox.offsets(self.config.topic)
        for p in partitions:
            if p.partition in stored:
                p.offset = stored[p.partition]  # PostgreSQL, not Kafka, is the truth
        consumer.assign(partitions)
        self.log.info("partitions assigned", extra={"offsets": stored})

    def run(self) -> None:
        self.consumer.subscribe([self.config.topic], on_assign=self._on_assign)
        try:
            idle_check = 0.0
            while not self.shutdown.requested:
                # consume() waits for the whole timeout unless 500 arrive: keep it short,
                # it bounds the latency of a lone alert
                batch = self.consumer.consume(500, 0.05)
                if batch:
                    self._record(batch)
                # retries and digests come due with time: look at least every 0.5 s
                if batch or time.monotonic() >= idle_check:
                    self._dispatch()
                    idle_check = time.monotonic() + 0.5
                self.dlq.poll()
        finally:
            self.consumer.close()
            self.dlq.close()
            self.outbox.close()

    def _record(self, batch: Sequence) -> None:
        intents, offsets = [], {}
        for msg in batch:
            if msg.error():
                self.log.warning("kafka error", extra={"error": str(msg.error())})
                continue
            offsets[msg.partition()] = msg.offset() + 1
            try:
                alert = parse_alert(msg.value() or b"")
            except Exception as err:  # the sink dead-letters bad alerts; here we skip them
                self.metrics.consumed.labels("bad").inc()
                self.log.warning("bad alert skipped", extra={"error": str(err)[:200]})
                continue
            if alert.fraud_score < self.config.min_score:
                self.metrics.consumed.labels("below").inc()
                continue
            self.metrics.consumed.labels("notify").inc()
            for d in self.notify.destinations:
                intents.append((messages.Pending(d.name, alert), msg.partition(), msg.offset()))
        self.outbox.record(intents, self.config.topic, offsets)
        self.consumer.commit(
            offsets=[TopicPartition(self.config.topic, p, o) for p, o in offsets.items()],
            asynchronous=True,
        )  # only for lag dashboards; the outbox's offsets are what a restart uses

    def _dispatch(self) -> None:
        now = time.time()
        for dest in self.notify.destinations:
            waiting = self.outbox.count_due(dest.name)
            self.metrics.pending.labels(dest.name).set(waiting)
            if not waiting:
                continue
            window = self.windows[dest.name]
            count, digest = window.plan(now, waiting)
            if digest:
                rows = self.outbox.due(dest.name, DIGEST_MAX)
                if self._send(dest, rows, digest=True):
                    window.digest_sent()
                    self.held[dest.name].clear()
                continue
            rows = self.outbox.due(dest.name, waiting)
            for row in rows[:count]:
                if self._send(dest, [row], digest=False):
                    window.spent(1)
            for row in rows[count:]:
                if row.item.key not in self.held[dest.name]:
                    self.held[dest.name].add(row.item.key)
                    self.metrics.rate_limited.labels(dest.name).inc()

    def _send(self, dest: Destination, rows: list[Row], digest: bool) -> bool:
        items = [r.item for r in rows]
        rows_url = self.notify.rows_url
        try:
            if dest.kind == "email":
                msg = (
                    messages.digest_email(items, dest.sender, dest.recipients, rows_url)
                    if digest
                    else messages.email(items[0], dest.sender, dest.recipients, rows_url)
                )
                senders.send_email(dest, msg)
            else:
                if dest.kind == "slack":
                    body = (
                        messages.slack_digest_body(items, rows_url)
                        if digest
                        else messages.slack_body(items[0], rows_url)
                    )
                else:
                    body = (
                        messages.digest_webhook_body(items, rows_url)
                        if digest
                        else messages.webhook_body(items[0], rows_url)
                    )
                key = messages.digest_key(items) if digest else items[0].key
                senders.post_json(dest, body, key)
        except senders.SendError as err:
            self._failed(dest, rows, err)
            return False
        self.outbox.mark_sent(rows, "digest" if digest else "alert")
        self.metrics.sent.labels(dest.name, "digest" if digest else "alert").inc()
        answered = datetime.now(UTC)
        for item in items:
            self.metrics.latency.labels(dest.name).observe(
                max(0.0, (answered - item.alert.detected_at).total_seconds())
            )
        return True

    def _failed(self, dest: Destination, rows: list[Row], err: senders.SendError) -> None:
        c = self.config
        dead = [r for r in rows if not err.retryable or r.attempts + 1 >= c.max_attempts]
        retry = [r for r in rows if r not in dead]
        for row in retry:
            delay = min(c.retry_initial_ms * 2**row.attempts, c.retry_max_ms) / 1000
            self.outbox.mark_retry([row], str(err), datetime.now(UTC) + timedelta(seconds=delay))
            self.metrics.retried.labels(dest.name).inc()
        if dead:
            try:
                self.dlq.send_all(
                    [
                        DeadLetter(
                            key=r.item.alert.user_id.encode(),
                            value=messages.orjson.dumps(messages.webhook_body(r.item, "")),
                            reason="undeliverable",
                            detail=f"{dest.name} after {r.attempts + 1} attempts: {err}",
                            source_topic=c.topic,
                            source_partition=r.source_partition,
                            source_offset=r.source_offset,
                        )
                        for r in dead
                    ]
                )
            except DlqError as dlq_err:  # keep them pending: retried, never dropped
                self.log.error("dead letters not confirmed", extra={"error": str(dlq_err)})
                self.outbox.mark_retry(dead, str(err), datetime.now(UTC) + timedelta(seconds=5))
                return
            self.outbox.mark_dead(dead, str(err))
            self.metrics.dead_lettered.labels(dest.name).inc(len(dead))
        self.log.warning(
            "send failed", extra={"destination": dest.name, "error": str(err), "dead": len(dead)}
        )


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_config(argv)
    configure("notifier", config.log_level)
    try:
        notify = dest_config.load(config.destinations)
    except dest_config.ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    metrics = NotifierMetrics()
    serve_metrics(config.metrics_port, metrics.registry)
    shutdown = Shutdown().install()
    Notifier(config, notify, shutdown, metrics).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
