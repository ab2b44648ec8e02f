"""The notifier's Prometheus metrics, per destination (rules: infra/prometheus/rules)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass
class NotifierMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.sent = Counter(
            "fraud_notifier_sent",
            "Messages a destination accepted (kind: alert or digest).",
            ["destination", "kind"],
            registry=r,
        )
        self.retried = Counter(
            "fraud_notifier_retries",
            "Failed attempts that will be retried.",
            ["destination"],
            registry=r,
        )
        self.rate_limited = Counter(
            "fraud_notifier_rate_limited",
            "Notifications held by the rate limit for a digest.",
            ["destination"],
            registry=r,
        )
        self.dead_lettered = Counter(
            "fraud_notifier_dead_letters",
            "Notifications given up on and dead-lettered.",
            ["destination"],
            registry=r,
        )
        self.consumed = Counter(
            "fraud_notifier_alerts_consumed",
            "Alert messages read (result: notify, below, bad).",
            ["result"],
            registry=r,
        )
        self.pending = Gauge(
            "fraud_notifier_pending",
            "Notifications due and not yet sent.",
            ["destination"],
            registry=r,
        )
        self.latency = Histogram(
            "fraud_notifier_latency_seconds",
            "Alert detected_at to the destination's answer.",
            ["destination"],
            registry=r,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
        )
