"""What every engine in the peers benchmark reads, computes and writes, in one place.

Why: a comparison is only fair if each engine runs the same rules on the same input and
is timed the same way. Input is the `transactions` contract (Transaction JSON keyed by
user_id); output is one JSON record per new or changed alert version with at least
`user_id`, `window_start`, `fraud_score` and `last_event_time` (the newest contributing
transaction's event_time), which our detector's Alert JSON already carries. The rule
constants come from libs/scoring, so a peer cannot drift from the detector's rules.

Pure standard library plus libs/scoring: imported by peers that run in their own pip
environments (Quix Streams, PyFlink) and by the benchmark driver.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from libs.scoring.config import ScoringConfig
from libs.scoring.rules import RULES

WINDOW_MS = 60_000
WATERMARK_MS = 30_000
# Transactions of these users are the benchmark's probes and end markers, not traffic:
# one of them alone is an alert (high_value), so any engine's output shows when it saw one.
PROBE_PREFIX = "bench-probe-"
PROBE_AMOUNT = "5000.00"


def scoring() -> ScoringConfig:
    return ScoringConfig()


def sql_score(config: ScoringConfig, columns: dict[str, str] | None = None) -> str:
    """The score as a SQL expression over aggregate columns named as in WindowAggregates."""
    columns = columns or {}
    terms = [
        f"(CASE WHEN {columns.get(r.metric, r.metric)} {r.op} {r.threshold(config)} "
        f"THEN {r.weight(config)} ELSE 0 END)"
        for r in RULES
    ]
    return " + ".join(terms)


def to_ms(value: object) -> int:
    """Epoch milliseconds from an ISO-8601 string (zone optional: UTC) or a number."""
    if isinstance(value, int | float):
        return int(value)
    if not isinstance(value, str):
        raise ValueError(f"timestamp {value!r}: expected ISO-8601 text or epoch milliseconds")
    parsed = datetime.fromisoformat(value.replace(" ", "T"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return round(parsed.timestamp() * 1000)


def iso_ms(ms: int) -> str:
    """Epoch milliseconds as the contract's ISO-8601 text with a `Z`."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass(frozen=True, slots=True)
class SeenAlert:
    """One alert version as read from an engine's output topic."""

    user_id: str
    window_start_ms: int
    fraud_score: int
    last_event_ms: int
    seen_ms: int  # wall clock when the benchmark's reader received it

    @property
    def latency_ms(self) -> int:
        """Produce → alert: seen on the output topic minus the send time (= event_time) of
        the newest transaction that contributed to this version."""
        return self.seen_ms - self.last_event_ms

    @property
    def is_probe(self) -> bool:
        return self.user_id.startswith(PROBE_PREFIX)


def parse_alert(doc: dict, seen_ms: int) -> SeenAlert:
    return SeenAlert(
        user_id=str(doc["user_id"]),
        window_start_ms=to_ms(doc["window_start"]),
        fraud_score=int(doc["fraud_score"]),
        last_event_ms=to_ms(doc["last_event_time"]),
        seen_ms=seen_ms,
    )
