"""The streaming plan's steps on batch DataFrames: windows, scores and alert JSON agree with
the plain-Python definitions (libs/scoring.evaluate, libs/schemas.parse_alert)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

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
