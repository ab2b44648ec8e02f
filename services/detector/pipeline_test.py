"""The streaming plan's steps on batch DataFrames: windows, scores and alert JSON agree with
the plain-Python definitions (libs/scoring.evaluate, libs/schemas.parse_alert)."""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from libs.schemas.alert import parse_alert
from libs.schemas.transaction import Transaction, transaction_to_json
from libs.scoring.rules import ScoringConfig, WindowAggregates, evaluate
from libs.spark.session import session
from services.detector import pipeline

T0 = datetime(2026, 11, 28, 17, 0, tzinfo=UTC)


def _txn(user: str, seconds: float, amount: str, country: str = "FR") -> Transaction:
    return Transaction(
        transaction_id=str(uuid.uuid4()),
        user_id=user,
        amount=Decimal(amount).quantize(Decimal("0.01")),  # as parse_transaction gives
        currency="EUR",
        merchant="m",
        merchant_category="grocery",
        country=country,
        event_time=T0 + timedelta(seconds=seconds),
    )


# Edge cases on every threshold, windows [17:00, 17:01) and [17:01, 17:02).
TRANSACTIONS = [
    _txn("exact-3000", 1, "3000.00"),
    _txn("just-over", 2, "3000.01"),
    *[_txn("four", s, "10") for s in (1, 2, 3, 4)],
    *[_txn("five", s, "10") for s in (1, 2, 3, 4, 5)],
    _txn("two-countries-edge", 59.999, "5", "FR"),
    _txn("two-countries-edge", 60.0, "5", "DE"),  # next window: no location change
    _txn("two-countries", 10, "5", "FR"),
    _txn("two-countries", 50, "5", "DE"),
    *[
        _txn("all", s, "5000", c)
        for s, c in ((1, "FR"), (2, "US"), (3, "FR"), (4, "FR"), (5, "JP"))
    ],
]


@pytest.fixture(scope="module")
def spark():
    s = session("pipeline-test", conf={"spark.sql.shuffle.partitions": "2"})
    yield s
    s.stop()


def _kafka_frame(spark, payloads: list[bytes]):
    rows = [(b"k", p, 0, i) for i, p in enumerate(payloads)]
    return spark.createDataFrame(rows, "key BINARY, value BINARY, partition INT, offset BIGINT")


def _reference(transactions: list[Transaction], config: ScoringConfig) -> dict:
    groups: dict[tuple[str, datetime], list[Transaction]] = defaultdict(list)
    for t in transactions:
        start = t.event_time.replace(second=0, microsecond=0)
        groups[(t.user_id, start)].append(t)
    expected = {}
    for key, txns in groups.items():
        aggregates = WindowAggregates(
            txn_count=len(txns),
            distinct_countries=len({t.country for t in txns}),
            max_amount=max(t.amount for t in txns),
            total_amount=sum((t.amount for t in txns), Decimal(0)),
        )
        evaluation = evaluate(aggregates, config)
        if evaluation.is_alert:
            expected[key] = (aggregates, evaluation)
    return expected


def test_alerts_match_plain_python_reference(spark):
    config = ScoringConfig()
    valid = pipeline.validated(
        _kafka_frame(spark, [transaction_to_json(t) for t in TRANSACTIONS] + [b"junk"]),
        max_bytes=65536,
    )
    alerts = pipeline.scored_alerts(
        pipeline.window_aggregates(valid, pipeline.WindowConfig()), config
    )
    messages = pipeline.alert_messages(alerts).collect()
    got = {}
    for message in messages:
        alert = parse_alert(bytes(message.value))
        assert bytes(message.key).decode() == alert.user_id
        got[(alert.user_id, alert.window_start)] = alert
    expected = _reference(TRANSACTIONS, config)
    assert set(got) == set(expected)
    assert {k[0] for k in got} == {"just-over", "two-countries", "all"}
    for key, (aggregates, evaluation) in expected.items():
        alert = got[key]
        assert alert.window_end - alert.window_start == timedelta(seconds=60)
        got_aggregates = WindowAggregates(
            alert.txn_count, alert.distinct_countries, alert.max_amount, alert.total_amount
        )
        assert got_aggregates == aggregates
        assert alert.fraud_score == evaluation.score
        assert list(alert.reasons) == list(evaluation.reasons)
        assert alert.version == alert.txn_count
        assert len(alert.transaction_ids) == alert.txn_count
        txns = [t for t in TRANSACTIONS if t.user_id == key[0]]
        in_window = [
            t.event_time for t in txns if t.event_time - alert.window_start < timedelta(60)
        ]
        assert alert.last_event_time == max(in_window)
    assert (
        list(alert.transaction_ids)
        == [t.transaction_id for t in sorted(txns, key=lambda t: (t.event_time, t.transaction_id))][
            : alert.txn_count
        ]
    )


# --- window_aggregates as a stream: guard, deduplication, bounded ids -----------------

VALID_DDL = (
    "error_reason STRING, transaction_id STRING, user_id STRING, amount DECIMAL(15,2), "
    "country STRING, event_time TIMESTAMP"
)


def _valid_rows(rows: list[tuple[str, str, datetime]]) -> pa.Table:
    """Rows as `validated` yields them (good ones): (transaction_id, user_id, event_time)."""
    return pa.table(
        {
            "error_reason": pa.array([None] * len(rows), pa.string()),
            "transaction_id": [r[0] for r in rows],
            "user_id": [r[1] for r in rows],
            "amount": pa.array([Decimal("10.00")] * len(rows), pa.decimal128(15, 2)),
            "country": ["FR"] * len(rows),
            "event_time": pa.array([r[2] for r in rows], pa.timestamp("us", tz="UTC")),
        }
    )


class _Stream:
    """window_aggregates over a parquet directory that the test adds files to."""

    def __init__(self, spark, base: Path, name: str) -> None:
        self.inbox = base / "in"
        self.inbox.mkdir(parents=True)
        self.files = 0
        rows = spark.readStream.schema(VALID_DDL).parquet(str(self.inbox))
        self.query = (
            pipeline.window_aggregates(rows, pipeline.WindowConfig())
            .writeStream.format("memory")
            .queryName(name)
            .outputMode("update")
            .option("checkpointLocation", str(base / "checkpoint"))
            .start()
        )

    def add(self, rows: list[tuple[str, str, datetime]]) -> dict:
        """One micro-batch of these rows; returns its progress (not that of the no-data
        batch Spark may run after it to advance the watermark)."""
        seen = len(self.query.recentProgress)
        self.files += 1
        tmp = self.inbox.parent / f"batch-{self.files}.parquet"
        pq.write_table(_valid_rows(rows), tmp)
        tmp.rename(self.inbox / tmp.name)  # the source sees whole files only
        self.query.processAllAvailable()
        new = [_as_dict(p) for p in self.query.recentProgress[seen:]]
        (progress,) = [p for p in new if p["numInputRows"] > 0]
        return progress

    def operator(self, progress: dict, name: str) -> dict:
        (op,) = [o for o in progress["stateOperators"] if o["operatorName"] == name]
        return op

    def stop(self) -> None:
        self.query.stop()


def _as_dict(progress) -> dict:
    return json.loads(progress.json) if hasattr(progress, "json") else dict(progress)


def _busy_window(n: int) -> list[tuple[str, str, datetime]]:
    """n transactions of one user in [T0, T0 + 50 s); pairs share an event time and later
    rows have smaller ids, so the (event_time, id) order is not the arrival order."""
    return [
        (str(uuid.UUID(int=n - i)), "busy", T0 + timedelta(seconds=50 * (i // 2) * 2 / n))
        for i in range(n)
    ]


def _latest(spark, name: str) -> dict[str, tuple]:
    rows = spark.sql(f"SELECT user_id, txn_count, transaction_ids FROM {name}").collect()
    out: dict[str, tuple] = {}
    for r in rows:
        if r.user_id not in out or r.txn_count > out[r.user_id][0]:
            out[r.user_id] = (r.txn_count, list(r.transaction_ids))
    return out


def test_duplicates_count_once_future_rows_never_reach_the_watermark(spark, tmp_path):
    rows = _busy_window(200)
    future = (str(uuid.uuid4()), "from-the-future", datetime.now(UTC) + timedelta(days=1))
    stream = _Stream(spark, tmp_path, "dedup")
    try:
        first = stream.add([*rows, *rows[:10], future])  # 10 repeats in the same batch
        assert first["observedMetrics"]["guard"]["future_rows"] == 1
        # The guarded row did not move the watermark: max event time is T0 + 50 s.
        assert first["eventTime"]["max"] == "2026-11-28T17:00:49.500Z"
        dedup = stream.operator(first, "dedupeWithinWatermark")
        assert dedup["customMetrics"]["numDroppedDuplicateRows"] == 10
        # Watermark now T0 + 19.5 s: repeats of late rows are dropped as late, repeats of
        # rows still within it as duplicates; either way they count once.
        second = stream.add([*rows[:20], *rows[-20:]])
        dedup = stream.operator(second, "dedupeWithinWatermark")
        assert dedup["customMetrics"]["numDroppedDuplicateRows"] == 20
        assert dedup["numRowsDroppedByWatermark"] == 20
        latest = _latest(spark, "dedup")
        assert set(latest) == {"busy"}
        assert latest["busy"][0] == 200
    finally:
        stream.stop()


def _state_of_busy_window(spark, base: Path, n: int) -> tuple[dict, list[str]]:
    stream = _Stream(spark, base, f"busy_{n}")
    try:
        rows = _busy_window(n)
        progress = stream.add(rows)
        latest = _latest(spark, f"busy_{n}")
        count, ids = latest["busy"]
        assert count == n
        expected = [r[0] for r in sorted(rows, key=lambda r: (r[2], r[0]))][:100]
        assert ids == expected  # the documented choice: first 100 by (event_time, id)
        return stream.operator(progress, "stateStoreSave"), ids
    finally:
        stream.stop()


def test_the_state_of_a_busy_window_is_bounded(spark, tmp_path):
    small, _ = _state_of_busy_window(spark, tmp_path / "small", 200)
    large, _ = _state_of_busy_window(spark, tmp_path / "large", 5000)
    print(f"state of one window: 200 txns {small}, 5000 txns {large}")
    assert small["numRowsTotal"] == large["numRowsTotal"] == 1
    # Measured: collect_list kept every id (121 kB for 5000, 1 partition); min_by keeps
    # 100 (8-13 kB) however many transactions the window has.
    assert large["memoryUsedBytes"] <= small["memoryUsedBytes"] * 1.5, (small, large)
    assert large["memoryUsedBytes"] < 50_000, large
