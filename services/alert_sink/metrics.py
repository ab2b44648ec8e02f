"""The sink's Prometheus metrics (scraped on :8001), in a registry of their own.

Why a registry per instance: no global mutable state, so tests and the benchmark can run
a sink in-process more than once without "duplicated timeseries" errors.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import combinations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from libs.schemas.alert import Alert
from libs.schemas.fields import Reason
from libs.scoring.rules import RULES, ScoringConfig
from services.alert_sink.dlq import DB_REJECTED
from services.alert_sink.health import Health
from services.alert_sink.store import ERROR_KINDS

BATCH_SIZE_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000)
BATCH_SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
# Event time of the newest contributing transaction -> database commit: a window waits for
# the detector's trigger and watermark, so this spans sub-second to minutes.
E2E_BUCKETS = (
    0.05,
    0.1,
    0.25,
    0.5,
    0.75,
    1,
    1.25,
    1.5,
    1.75,
    2,
    2.5,
    3,
    4,
    5,
    7.5,
    10,
    20,
    30,
    60,
    120,
)  # fine around 1-3 s, where the p95 goal (2 s) lies


def alert_scores(config: ScoringConfig | None = None) -> list[int]:
    """Every fraud_score an alert can have under `config` (the documented defaults: 2-5):
    sums of rule weights that reach the alert threshold."""
    config = config or ScoringConfig()
    weights = [rule.weight(config) for rule in RULES]
    sums = {sum(c) for n in range(len(weights) + 1) for c in combinations(weights, n)}
    return sorted(s for s in sums if s >= config.alert_threshold)


@dataclass
class SinkMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.consumed = Counter(
            "fraud_sink_messages_consumed", "Messages read from the alerts topic.", registry=r
        )
        self.stored = Counter(
            "fraud_sink_alerts_stored",
            "Alert rows written to PostgreSQL (inserted, or updated to a newer version).",
            registry=r,
        )
        self.ignored = Counter(
            "fraud_sink_alerts_ignored",
            "Valid alerts not written: an equal or newer version was already in the batch "
            "or in the table (duplicates, replays, out-of-order versions).",
            registry=r,
        )
        self.db_errors = Counter(
            "fraud_sink_db_errors",
            "Failed database attempts, by kind (connect, connection, unavailable, conflict, "
            "query; see db_errors.py). A row the database refuses is a dead letter instead.",
            ["kind"],
            registry=r,
        )
        self.dlq = Counter(
            "fraud_sink_dlq_messages",
            "Messages sent to the dead-letter topic, by reason.",
            ["reason"],
            registry=r,
        )
        self.dlq_errors = Counter(
            "fraud_sink_dlq_errors", "Failed attempts to deliver to the DLQ topic.", registry=r
        )
        self.commit_errors = Counter(
            "fraud_sink_commit_errors",
            "Failed Kafka offset commits (the batch is re-delivered later; the upsert makes "
            "that harmless).",
            registry=r,
        )
        self.batch_size = Histogram(
            "fraud_sink_batch_size",
            "Messages per processed batch.",
            buckets=BATCH_SIZE_BUCKETS,
            registry=r,
        )
        self.batch_seconds = Histogram(
            "fraud_sink_batch_seconds",
            "Seconds to write a batch: database write and commit, DLQ delivery, offset commit "
            "(the successful attempt; outages show in fraud_sink_db_errors_total).",
            buckets=BATCH_SECONDS_BUCKETS,
            registry=r,
        )
        self.e2e_latency = Histogram(
            "fraud_sink_e2e_latency_seconds",
            "Database commit time minus the alert's last_event_time, per stored row.",
            buckets=E2E_BUCKETS,
            registry=r,
        )
        self.alerts_by_score = Counter(
            "fraud_sink_alerts_by_score",
            "Alert rows written to PostgreSQL, by fraud_score (the score distribution).",
            ["score"],
            registry=r,
        )
        self.consumer_lag = Gauge(
            "fraud_sink_consumer_lag",
            "High watermark minus committed offset, per assigned partition.",
            ["topic", "partition"],
            registry=r,
        )
        self.db_up = Gauge(
            "fraud_sink_db_up",
            "1 when the database answered the last attempt or probe (even refusing a row), "
            "0 when it could not be reached or refused the session.",
            registry=r,
        )
        self.kafka_up = Gauge(
            "fraud_sink_kafka_up",
            "1 when the Kafka broker answered the last probe (every few seconds), else 0.",
            registry=r,
        )
        self.ready = Gauge(
            "fraud_sink_ready",
            "1 when both the database and the Kafka broker are reachable (what /healthz "
            "answers), else 0.",
            registry=r,
        )
        self._health = Health(database=False, kafka=False)
        # Labels known up front are exported as 0, so rate() works from the first error.
        for kind in ERROR_KINDS:
            self.db_errors.labels(kind=kind)
        for reason in [*Reason, DB_REJECTED]:
            self.dlq.labels(reason=str(reason))
        for score in alert_scores():
            self.alerts_by_score.labels(score=str(score))

    def set_health(self, *, database: bool | None = None, kafka: bool | None = None) -> Health:
        """Record what the last database attempt and broker probe found; the new verdict."""
        now = Health(
            database=self._health.database if database is None else database,
            kafka=self._health.kafka if kafka is None else kafka,
        )
        self._health = now  # one assignment: the HTTP thread reads a consistent pair
        self.db_up.set(int(now.database))
        self.kafka_up.set(int(now.kafka))
        self.ready.set(int(now.ready))
        return now

    def health(self) -> Health:
        return self._health

    def record_stored(self, alerts: Iterable[Alert], committed_at: float) -> None:
        """Per row the database took: its end-to-end latency and its score."""
        for alert in alerts:
            self.e2e_latency.observe(max(0.0, committed_at - alert.last_event_time.timestamp()))
            self.alerts_by_score.labels(score=str(alert.fraud_score)).inc()
