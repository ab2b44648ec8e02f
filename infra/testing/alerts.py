"""Sample alerts for tests: one factory instead of a hand-built Alert(...) per test file,
and alert streams with a known final table (the highest version per key).

Why: every test that needs "a valid alert" wants the same thing, a contract-valid alert
with a few fields of its own choosing; when the Alert contract gains a field, only this
file changes.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson

from libs.schemas.alert import Alert, alert_to_json

BASE = datetime(2026, 11, 28, 17, 0, tzinfo=UTC)  # a window start
WINDOW = timedelta(seconds=60)

Key = tuple[str, datetime]  # the alert key, (user_id, window_start)
KafkaRecord = tuple[bytes | None, bytes | None]  # (key, value)


def sample_alert(
    user_id: str = "user-1", window_start: datetime = BASE, version: int = 1, **changes: Any
) -> Alert:
    """A valid alert: one high-value window (score 2) of `version` transactions, detected a
    second after the window ends; any field can be replaced through `changes`."""
    values: dict[str, Any] = {
        "user_id": user_id,
        "window_start": window_start,
        "window_end": window_start + WINDOW,
        "txn_count": version,
        "distinct_countries": 1,
        "max_amount": Decimal("4000.00"),
        "total_amount": Decimal("4000.00"),
        "high_value": True,
        "location_change": False,
        "high_frequency": False,
        "fraud_score": 2,
        "transaction_ids": tuple(f"{user_id}-t{i}" for i in range(version)),
        "reasons": ("high_value: max_amount 4000.00 > 3000",),
        "rule_version": "v1",
        "detected_at": window_start + WINDOW + timedelta(seconds=1),
        "last_event_time": window_start + timedelta(seconds=1),
        "version": version,
    }
    unknown = changes.keys() - values.keys()
    if unknown:
        raise TypeError(f"sample_alert: no Alert field {sorted(unknown)}")
    return Alert(**{**values, **changes})


def stream_alert(user_id: str, window: int, version: int, lag: float = 0.5) -> Alert:
    """Version `version` of the alert for window number `window` after BASE: high value and
    two countries (plus high frequency from 5 transactions). Detected now, its last event
    `lag` seconds ago, so end-to-end latency samples are realistic."""
    high_frequency = version >= 5
    now = datetime.now(UTC)
    return sample_alert(
        user_id,
        BASE + window * WINDOW,
        version,
        distinct_countries=2,
        max_amount=Decimal("3000.01"),
        total_amount=Decimal("3000.01") + Decimal("10.25") * (version - 1),
        location_change=True,
        high_frequency=high_frequency,
        fraud_score=4 + int(high_frequency),
        transaction_ids=tuple(f"{user_id}-{window}-t{i}" for i in range(version)),
        reasons=("high_value: max_amount 3000.01 > 3000", "location_change: 2 countries"),
        detected_at=now,
        last_event_time=now - timedelta(seconds=lag),
    )


@dataclass
class AlertStream:
    """Messages to produce and the table they must leave behind (highest version per key)."""

    messages: list[Alert] = field(default_factory=list)
    expected: dict[Key, Alert] = field(default_factory=dict)

    def add(self, alert: Alert) -> None:
        self.messages.append(alert)
        key = (alert.user_id, alert.window_start)
        if key not in self.expected or self.expected[key].version < alert.version:
            self.expected[key] = alert

    def records(self) -> list[KafkaRecord]:
        return [(a.user_id.encode(), alert_to_json(a)) for a in self.messages]


def alert_stream(
    rng: random.Random,
    users: Sequence[str],
    windows: int = 2,
    max_version: int = 6,
    duplicate_share: float = 0.1,
) -> AlertStream:
    """Every (user, window) gets versions 1..n, shuffled (out of order), plus duplicates."""
    stream = AlertStream()
    alerts = [
        stream_alert(user, window, version)
        for user in users
        for window in range(windows)
        for version in range(1, rng.randint(1, max_version) + 1)
    ]
    alerts += rng.sample(alerts, int(len(alerts) * duplicate_share))
    rng.shuffle(alerts)
    for alert in alerts:
        stream.add(alert)
    return stream


def bad_alert_records() -> list[tuple[KafkaRecord, str]]:
    """Undecodable alert messages (and one the database refuses), with the DLQ reason each
    must get."""
    missing = orjson.loads(alert_to_json(stream_alert("u-missing", 0, 1)))
    del missing["version"]
    nul = dataclasses.replace(stream_alert("u-nul", 0, 1), rule_version="v1\x00")
    return [
        ((b"u-notjson", b"this is not json"), "not_json"),
        ((b"u-missing", orjson.dumps(missing)), "missing_field"),
        ((b"u-utf8", b'{"user_id": "\xff\xfe"}'), "not_utf8"),
        ((b"u-empty", None), "empty"),
        ((b"u-nul", alert_to_json(nul)), "db_rejected"),  # valid JSON; text with NUL
    ]
