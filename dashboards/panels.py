"""The fraud pipeline's dashboard as plain data: panels, their PromQL and how to show them.

Why one definition: the Grafana JSON (`grafana.py`), the PNG report (`report.py`) and the
test that every query returns data from a real pipeline (`live_test.py`) all read these
panels, so a panel cannot work in one and be broken in another. Queries prefer the
recording rules of infra/prometheus/rules/recording.yml (cheap, and named for what they
mean); job names are the local and compose stacks' (producer, detector, alert_sink,
quality).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

# Provisioned with this uid (dashboards/provisioning/datasources/prometheus.yml), so the
# dashboard JSON can name its datasource without looking it up.
DATASOURCE_UID = "fraud-prometheus"

SERVICES_REGEX = "producer|detector|alert_sink|quality"

# How a panel draws its series: lines over time, one coloured band per series (0/1
# states such as up/down), or one bar per series (a distribution over the shown range).
Kind = Literal["timeseries", "state", "bars"]


@dataclass(frozen=True, slots=True)
class Query:
    """One PromQL query; `legend` is a Grafana legendFormat ("{{label}}" placeholders).

    `$__range` in `expr` is Grafana's shown time range; `expr_for` substitutes it for
    callers that are not Grafana.
    """

    expr: str
    legend: str = ""

    def expr_for(self, range_seconds: float) -> str:
        return self.expr.replace("$__range", f"{max(1, round(range_seconds))}s")


@dataclass(frozen=True, slots=True)
class Panel:
    title: str
    description: str
    queries: tuple[Query, ...]
    kind: Kind = "timeseries"
    unit: str = "short"  # a Grafana unit id: short, s, percentunit
    axis_label: str = ""
    min: float | None = 0
    max: float | None = None


@dataclass(frozen=True, slots=True)
class Row:
    title: str
    panels: tuple[Panel, ...]


@dataclass(frozen=True, slots=True)
class Dashboard:
    uid: str
    title: str
    description: str
    rows: tuple[Row, ...]
    tags: tuple[str, ...] = ()
    time_range: str = "15m"
    refresh: str = "10s"
    # Shown on every panel as Grafana annotations: PromQL of series whose presence marks
    # a moment (here: alerting rules while they fire).
    annotations: tuple[Query, ...] = field(default=())

    @property
    def panels(self) -> tuple[Panel, ...]:
        return tuple(p for row in self.rows for p in row.panels)


PER_SECOND = "per second"

SERVICES_UP = Panel(
    title="Services up",
    description="1 while Prometheus can scrape the service; the sink's own view of "
    "PostgreSQL (its last attempt succeeded or not).",
    queries=(
        Query(f'up{{job=~"{SERVICES_REGEX}"}}', "{{job}}"),
        Query("fraud_sink_db_up", "PostgreSQL (from the sink)"),
    ),
    kind="state",
    max=1,
)

THROUGHPUT = Panel(
    title="Throughput by stage",
    description="Transactions the producer got acknowledged, records the detector read "
    "from `transactions`, alert rows the sink wrote to PostgreSQL (1-minute rates).",
    queries=(
        Query("job:fraud_producer_messages:rate1m", "producer sent"),
        Query("job:fraud_detector_input_rows:rate1m", "detector input rows"),
        Query("job:fraud_sink_alerts_stored:rate1m", "sink alerts stored"),
    ),
    axis_label=PER_SECOND,
)

CONSUMER_LAG = Panel(
    title="Consumer lag",
    description="Detector: offsets behind the end of `transactions` (max over partitions). "
    "Sink: committed offsets behind the end of `fraud_alerts` (summed).",
    queries=(
        Query("job:fraud_detector_consumer_lag:max", "detector (transactions)"),
        Query("job:fraud_sink_consumer_lag:sum", "alert sink (alerts)"),
    ),
    axis_label="records behind",
)

ALERTS_BY_FLAG = Panel(
    title="Fraud alerts by flag",
    description="Flags raised in the alert versions the detector published (an alert "
    "with two flags counts for both).",
    queries=(Query("flag:fraud_detector_alert_flags:rate1m", "{{flag}}"),),
    axis_label=PER_SECOND,
)

SCORE_DISTRIBUTION = Panel(
    title="Alert score distribution",
    description="Alert rows stored in the shown time range, by fraud_score "
    "(2*high_value + 2*location_change + 1*high_frequency).",
    queries=(
        Query(
            "sum by (score) (increase(fraud_sink_alerts_by_score_total[$__range]))",
            "score {{score}}",
        ),
    ),
    kind="bars",
    axis_label="alerts stored",
)

PRECISION_RECALL = Panel(
    title="Precision and recall",
    description="Alerts judged against the producer's ground-truth headers by the quality "
    "monitor, over every 60 s window scored so far.",
    queries=(
        Query("fraud_quality_precision", "precision"),
        Query("fraud_quality_recall", "recall"),
    ),
    unit="percentunit",
    max=1,
)

RECALL_BY_PATTERN = Panel(
    title="Recall by fraud pattern",
    description="Share of fraud windows that were alerted, per injected fraud pattern.",
    queries=(Query("pattern:fraud_quality_recall:ratio", "{{pattern}}"),),
    unit="percentunit",
    max=1,
)

E2E_LATENCY = Panel(
    title="End-to-end latency",
    description="Newest contributing transaction's event time -> alert row committed in "
    "PostgreSQL (quantiles over 1 minute; the goal is p95 under 2 s).",
    queries=(
        Query(
            "job_quantile:fraud_sink_e2e_latency_seconds:histogram_quantile_rate1m",
            "{{quantile}} quantile",
        ),
    ),
    unit="s",
)

BATCH_DURATION = Panel(
    title="Batch duration",
    description="Detector: Spark micro-batch (trigger execution). Sink: database write "
    "and commit, DLQ delivery, offset commit. Quantiles over 1 minute.",
    queries=(
        Query(
            "job_quantile:fraud_detector_batch_duration_seconds:histogram_quantile_rate1m",
            "detector {{quantile}}",
        ),
        Query(
            "job_quantile:fraud_sink_batch_seconds:histogram_quantile_rate1m",
            "sink {{quantile}}",
        ),
    ),
    unit="s",
)

DLQ_BY_REASON = Panel(
    title="Dead letters by reason",
    description="Transactions the detector refused (-> `transactions.dlq`) and alerts the "
    "sink could not store (-> `fraud_alerts.dlq`), by reason.",
    queries=(
        Query("job_reason:fraud_detector_dlq_messages:rate1m", "transactions: {{reason}}"),
        Query("job_reason:fraud_sink_dlq_messages:rate1m", "alerts: {{reason}}"),
    ),
    axis_label=PER_SECOND,
)

DB_ERRORS = Panel(
    title="Database errors by kind",
    description="Failed PostgreSQL attempts of the sink (connect, connection, query); it "
    "retries with backoff and commits no offsets meanwhile.",
    queries=(Query("job_kind:fraud_sink_db_errors:rate1m", "{{kind}}"),),
    axis_label=PER_SECOND,
)

LATE_EVENTS = Panel(
    title="Late events dropped",
    description="Transactions behind the detector's watermark (30 s), dropped from their window.",
    queries=(Query("job:fraud_detector_late_events_dropped:rate1m", "late events dropped"),),
    axis_label=PER_SECOND,
)

FRAUD_PIPELINE = Dashboard(
    uid="fraud-pipeline",
    title="Fraud pipeline",
    description="Producer -> Kafka -> Spark detector -> alert sink -> PostgreSQL, with live "
    "detection quality. Generated by dashboards/panels.py; do not edit in Grafana.",
    rows=(
        Row("Is it running?", (SERVICES_UP, THROUGHPUT, CONSUMER_LAG)),
        Row("Detection", (ALERTS_BY_FLAG, SCORE_DISTRIBUTION, PRECISION_RECALL)),
        Row("Quality and latency", (RECALL_BY_PATTERN, E2E_LATENCY, BATCH_DURATION)),
        Row("Errors", (DLQ_BY_REASON, DB_ERRORS, LATE_EVENTS)),
    ),
    tags=("fraud", "streaming", "kafka", "spark"),
    annotations=(Query('ALERTS{alertstate="firing"}', "{{alertname}}"),),
)

NOTIFICATIONS_SENT = Panel(
    title="Notifications sent by destination",
    description="Messages each destination accepted (single alerts and digests) from the "
    "notifier (services/notifier).",
    queries=(Query("job_destination:fraud_notifier_sent:rate1m", "{{destination}}"),),
    axis_label=PER_SECOND,
)

NOTIFICATION_PROBLEMS = Panel(
    title="Notifications retried, rate-limited, dead-lettered",
    description="Failed attempts that will be retried, notifications held by a rate limit "
    "for the next digest, and notifications given up on (-> `notifications.dlq`).",
    queries=(
        Query("job_destination:fraud_notifier_retries:rate1m", "retried: {{destination}}"),
        Query(
            "job_destination:fraud_notifier_rate_limited:rate1m",
            "rate-limited: {{destination}}",
        ),
        Query(
            "job_destination:fraud_notifier_dead_letters:rate1m",
            "dead-lettered: {{destination}}",
        ),
    ),
    axis_label=PER_SECOND,
)

# A dashboard of its own: the notifier is optional (it runs only where destinations are
# configured), so the pipeline dashboard's every-panel-has-data check stays meaningful.
FRAUD_NOTIFICATIONS = Dashboard(
    uid="fraud-notifications",
    title="Fraud notifications",
    description="Fraud alerts sent to people (webhook, Slack, email) by the notifier. "
    "Generated by dashboards/panels.py; do not edit in Grafana.",
    rows=(Row("Notifications", (NOTIFICATIONS_SENT, NOTIFICATION_PROBLEMS)),),
    tags=("fraud", "notifications"),
)

DASHBOARDS: tuple[Dashboard, ...] = (FRAUD_PIPELINE, FRAUD_NOTIFICATIONS)
