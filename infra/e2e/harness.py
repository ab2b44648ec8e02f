"""End-to-end test harness: deterministic streams, an independent reference, and table reads.

The reference is deliberately written from DESIGN.md's words, not from libs/scoring, so a
mistake in the rule definitions or the Spark plan cannot hide behind the same code:
epoch-aligned 60 s windows per user; high_value = max > 3000, location_change = >= 2
countries, high_frequency = >= 5 transactions; score 2/2/1; alert at >= 2.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg2

from infra.stack import DetectorSettings, Ports, Stack
from libs.schemas.transaction import Transaction, transaction_to_json
from services.producer.generator import GeneratorConfig, generate

WINDOW = timedelta(seconds=60)
WATERMARK = timedelta(seconds=30)


@dataclass(frozen=True)
class Event:
    """One Kafka record of a test stream; `txn` is None for a record that must be refused."""

    key: bytes | None
    value: bytes
    txn: Transaction | None
    reason: str | None = None  # the DLQ reason a bad record must get

    def record(self) -> tuple[bytes | None, bytes, dict[str, bytes]]:
        return self.key, self.value, {"fraud-label": b"0", "fraud-pattern": b""}


def good(txn: Transaction) -> Event:
    return Event(txn.user_id.encode(), transaction_to_json(txn), txn)


def txn(user: str, at: datetime, amount: str, country: str = "FR") -> Transaction:
    return Transaction(
        str(uuid.uuid4()), user, Decimal(amount), "EUR", "Shop", "grocery", country, at
    )


def generated(start: datetime, seed: int, count: int, rate: float = 25.0) -> list[Event]:
    """The producer's own generator with a simulated clock: same seed, same stream."""
    config = GeneratorConfig(start_time=start, rate=rate, seed=seed, count=count)
    return [good(g.transaction) for g in generate(config)]


def edge_cases(t0: datetime) -> list[Event]:
    """Hand-written cases on every threshold; t0 is a window start."""
    s = lambda seconds: t0 + timedelta(seconds=seconds)  # noqa: E731
    cases = [
        txn("edge-amount-3000.00", s(1), "3000.00"),  # not > 3000: no alert
        txn("edge-amount-3000.01", s(2), "3000.01"),  # alert (2)
        *[txn("edge-count-4", s(i), "10.00") for i in range(1, 5)],  # score 0
        *[txn("edge-count-5", s(i), "10.00") for i in range(1, 6)],  # score 1: no alert
        *[txn("edge-count-5-two-countries", s(i), "10.00", "FR") for i in range(1, 5)],
        txn("edge-count-5-two-countries", s(5), "10.00", "DE"),  # 2 + 1 = 3
        txn("edge-window-split", s(59.999), "10.00", "FR"),  # last ms of the window
        txn("edge-window-split", s(60.0), "10.00", "DE"),  # first ms of the next: no alert
        txn("edge-window-same", s(0.0), "10.00", "FR"),
        txn("edge-window-same", s(59.999), "10.00", "DE"),  # same window: alert (2)
    ]
    return [good(t) for t in cases]


def bad_records(t0: datetime) -> list[Event]:
    """Malformed input of every kind, each with the reason the DLQ must give."""
    base = txn("bad-input", t0 + timedelta(seconds=3), "5000.00")
    doc = transaction_to_json(base)
    return [
        Event(b"bad", b"{not json", None, "not_json"),
        Event(b"bad", doc.replace(b'"currency":"EUR",', b""), None, "missing_field"),
        Event(b"bad", doc.replace(b'"amount":5000.0', b'"amount":"5000"'), None, "bad_type"),
        Event(b"bad", doc.replace(b'"amount":5000.0', b'"amount":-5'), None, "bad_amount"),
        Event(b"bad", doc.replace(b'"amount":5000.0', b'"amount":0'), None, "bad_amount"),
        Event(b"bad", doc.replace(b'Z"', b'"').replace(b"T", b" ", 1), None, "bad_timestamp"),
        Event(b"bad", doc.replace(b'"Shop"', b'"\xff\xfeShop"'), None, "not_utf8"),
        Event(b"bad", doc[:-1] + b',"pad":"' + b"x" * 70_000 + b'"}', None, "too_large"),
        Event(b"bad", b"[1,2,3]", None, "not_object"),
        Event(None, b"", None, "empty"),
    ]


@dataclass(frozen=True)
class ExpectedAlert:
    txn_count: int
    distinct_countries: int
    max_amount: Decimal
    total_amount: Decimal
    high_value: bool
    location_change: bool
    high_frequency: bool
    fraud_score: int
    transaction_ids: frozenset[str]


def window_start(at: datetime) -> datetime:
    epoch = int(at.timestamp() // 60) * 60
    return datetime.fromtimestamp(epoch, UTC)


def reference_alerts(
    transactions: Iterable[Transaction],
) -> dict[tuple[str, datetime], ExpectedAlert]:
    """The alerts DESIGN.md's semantics give for these (already accepted) transactions."""
    windows: dict[tuple[str, datetime], list[Transaction]] = defaultdict(list)
    for t in transactions:
        windows[(t.user_id, window_start(t.event_time))].append(t)
    alerts = {}
    for key, txns in windows.items():
        max_amount = max(t.amount for t in txns)
        countries = len({t.country for t in txns})
        high_value, location_change, high_frequency = (
            max_amount > 3000,
            countries >= 2,
            len(txns) >= 5,
        )
        score = 2 * high_value + 2 * location_change + 1 * high_frequency
        if score >= 2:
            alerts[key] = ExpectedAlert(
                len(txns),
                countries,
                max_amount,
                sum((t.amount for t in txns), Decimal(0)),
                high_value,
                location_change,
                high_frequency,
                score,
                frozenset(t.transaction_id for t in txns),
            )
    return alerts


def accepted_after_watermark(
    on_time: list[Transaction], late: list[Transaction]
) -> tuple[list[Transaction], list[Transaction]]:
    """Split `late` (sent after `on_time` was fully processed) into kept and dropped: an
    event is dropped when its window ended at or before the watermark (max event time of
    `on_time` minus 30 s)."""
    watermark = max(t.event_time for t in on_time) - WATERMARK
    kept = [t for t in late if window_start(t.event_time) + WINDOW > watermark]
    dropped = [t for t in late if window_start(t.event_time) + WINDOW <= watermark]
    return kept, dropped


def table_alerts(dsn: str) -> dict[tuple[str, datetime], ExpectedAlert]:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT user_id, window_start, window_end, txn_count, distinct_countries, max_amount,"
            " total_amount, high_value, location_change, high_frequency, fraud_score,"
            " transaction_ids, version FROM alerts"
        )
        rows = cur.fetchall()
    conn.close()
    out = {}
    for r in rows:
        assert r[2] - r[1] == WINDOW, r
        assert r[12] == r[3], f"version {r[12]} != txn_count {r[3]}"
        out[(r[0], r[1])] = ExpectedAlert(
            r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], frozenset(r[11])
        )
    return out


def diff(expected: dict, actual: dict) -> str:
    missing = sorted(set(expected) - set(actual))[:5]
    extra = sorted(set(actual) - set(expected))[:5]
    changed = [
        (k, expected[k], actual[k]) for k in expected if k in actual and expected[k] != actual[k]
    ]
    return (
        f"{len(expected)} expected, {len(actual)} in table; missing {missing}; "
        f"unexpected {extra}; different {changed[:3]}"
    )


def e2e_stack(name: str) -> Iterator[Stack]:
    """A fresh stack on free ports under /tmp (PostgreSQL may run as `nobody`)."""
    base = Path(tempfile.mkdtemp(prefix=f"e2e-{name}-", dir="/tmp"))
    stack = Stack(
        base_dir=base,
        ports=Ports.free(),
        scrape_interval="1s",
        detector=DetectorSettings(shuffle_partitions=2, driver_memory="1g"),
    )
    try:
        stack.start_infrastructure(prometheus=name == "exact")
        yield stack
    finally:
        stack.stop()
        keep_logs(base / "logs", name)
        stack.wipe()


def keep_logs(folder: Path, name: str) -> None:
    """Copy the logs in `folder` to the test's outputs (kept with its results), as NAME-*."""
    outputs = os.environ.get("TEST_UNDECLARED_OUTPUTS_DIR")
    if outputs and folder.is_dir():
        for log in folder.iterdir():
            if log.is_file():
                Path(outputs, f"{name}-{log.name}").write_bytes(log.read_bytes())
