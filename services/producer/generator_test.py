"""The generator's promises: deterministic, at the given rate, valid records, about 10%
fraud in the documented shapes, and normal users who rarely trip the rules."""

from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from libs.schemas.transaction import Transaction, parse_transaction, transaction_to_json
from libs.scoring.rules import ScoringConfig, WindowAggregates, evaluate
from services.producer.generator import (
    COUNTRY_HOP,
    HIGH_AMOUNT,
    PATTERNS,
    RAPID_FIRE,
    RISKY_MERCHANT,
    GeneratedTransaction,
    GeneratorConfig,
    generate,
    user_id,
)

START = datetime(2026, 11, 28, 17, 0, 12, 345000, tzinfo=UTC)  # not window-aligned
WINDOW = timedelta(seconds=60)


def window_of(t: Transaction) -> tuple[str, int]:
    return t.user_id, int(t.event_time.timestamp() // 60)


def aggregates(txns: list[Transaction]) -> WindowAggregates:
    return WindowAggregates(
        txn_count=len(txns),
        distinct_countries=len({t.country for t in txns}),
        max_amount=max(t.amount for t in txns),
        total_amount=sum((t.amount for t in txns), Decimal(0)),
    )


@pytest.fixture(scope="module")
def stream() -> list[GeneratedTransaction]:
    return list(generate(GeneratorConfig(start_time=START, rate=200, seed=42, count=50_000)))


@pytest.fixture(scope="module")
def windows(stream) -> dict[tuple[str, int], list[GeneratedTransaction]]:
    by_window: dict[tuple[str, int], list[GeneratedTransaction]] = defaultdict(list)
    for item in stream:
        by_window[window_of(item.transaction)].append(item)
    return by_window


def test_same_seed_and_start_give_the_same_stream():
    config = GeneratorConfig(start_time=START, rate=500, seed=7, count=5_000)
    assert list(generate(config)) == list(generate(config))


def test_another_seed_gives_another_stream():
    a = list(generate(GeneratorConfig(start_time=START, rate=500, seed=7, count=500)))
    b = list(generate(GeneratorConfig(start_time=START, rate=500, seed=8, count=500)))
    assert [x.transaction for x in a] != [x.transaction for x in b]
    assert not {x.transaction.user_id for x in a} & {x.transaction.user_id for x in b}


def test_another_start_keeps_the_story_but_never_repeats_an_id():
    config = GeneratorConfig(start_time=START, rate=500, seed=7, count=2_000)
    later = dataclasses.replace(config, start_time=START + timedelta(hours=1))
    a, b = list(generate(config)), list(generate(later))
    assert [(x.transaction.user_id, x.transaction.amount, x.pattern) for x in a] == [
        (x.transaction.user_id, x.transaction.amount, x.pattern) for x in b
    ]
    assert not {x.transaction.transaction_id for x in a} & {x.transaction.transaction_id for x in b}


@pytest.mark.parametrize("rate", [0.5, 3, 250, 30_000])
def test_one_transaction_per_slot_at_the_rate(rate):
    count = 2_000
    items = list(generate(GeneratorConfig(start_time=START, rate=rate, seed=3, count=count)))
    assert len(items) == count
    times = [x.transaction.event_time for x in items]
    assert times == sorted(times), "the stream is in event-time order"
    assert times[0] == START
    expected_last = START + timedelta(milliseconds=int((count - 1) * 1000 / rate))
    assert times[-1] == expected_last


def test_endless_stream_without_count():
    config = GeneratorConfig(start_time=START, rate=1_000, seed=1)
    it = generate(config)
    assert len([next(it) for _ in range(30_000)]) == 30_000


def test_every_record_round_trips_through_the_schema(stream):
    for item in stream:
        t = item.transaction
        assert parse_transaction(transaction_to_json(t)) == t
        assert t.amount > 0
        assert t.amount.as_tuple().exponent >= -2
    assert len({x.transaction.transaction_id for x in stream}) == len(stream)


def test_fraud_ratio_and_headers(stream):
    fraud = [x for x in stream if x.fraud_label]
    assert abs(len(fraud) / len(stream) - 0.10) < 0.01
    assert all(x.pattern in PATTERNS and x.incident > 0 for x in fraud)
    assert all(x.pattern == "" and x.incident == 0 for x in stream if not x.fraud_label)
    assert Counter(x.pattern for x in fraud).keys() == set(PATTERNS)
    normal = next(x for x in stream if not x.fraud_label)
    assert normal.headers() == [("fraud-label", b"0"), ("fraud-pattern", b"")]
    sample = next(x for x in stream if x.pattern == RAPID_FIRE)
    assert sample.headers() == [("fraud-label", b"1"), ("fraud-pattern", b"rapid_fire")]


@pytest.mark.parametrize(
    ("rate", "count"),
    [(2, 20_000), (200, 20_000), (2_000, 200_000), (20_000, 20_000)],
)
def test_pattern_shapes_hold_within_one_window(rate, count):
    """Bursts fit one window; a stream too short for a burst gets single-transaction fraud."""
    items = generate(GeneratorConfig(start_time=START, rate=rate, seed=11, count=count))
    incidents: dict[int, list[GeneratedTransaction]] = defaultdict(list)
    for item in items:
        if item.fraud_label:
            incidents[item.incident].append(item)
    seen = Counter()
    for members in incidents.values():
        pattern = members[0].pattern
        seen[pattern] += 1
        txns = [m.transaction for m in members]
        assert {m.pattern for m in members} == {pattern}
        assert len({t.user_id for t in txns}) == 1
        assert len({window_of(t) for t in txns}) == 1, f"{pattern} crosses a window: {txns}"
        assert txns[-1].event_time - txns[0].event_time < WINDOW
        agg = aggregates(txns)
        if pattern == HIGH_AMOUNT:
            assert agg.txn_count == 1 and agg.max_amount > 3000
        elif pattern == COUNTRY_HOP:
            assert 2 <= agg.txn_count <= 4 and agg.distinct_countries >= 2
        elif pattern == RAPID_FIRE:
            assert 5 <= agg.txn_count <= 8
            assert txns[-1].event_time - txns[0].event_time < timedelta(seconds=30)
        else:
            assert pattern == RISKY_MERCHANT
            assert txns[0].merchant_category in {"gambling", "crypto", "gift_cards"}
    if count / rate >= 60:
        assert set(seen) == set(PATTERNS), seen
    else:  # 1 s of traffic: too short for a burst
        assert set(seen) == {HIGH_AMOUNT, RISKY_MERCHANT}, seen


def test_country_hop_happens_abroad(stream):
    homes: dict[str, Counter[str]] = defaultdict(Counter)
    for item in stream:
        if not item.fraud_label:
            homes[item.transaction.user_id][item.transaction.country] += 1
    checked = 0
    for item in stream:
        seen_at = homes.get(item.transaction.user_id)
        if item.pattern == COUNTRY_HOP and seen_at:
            assert item.transaction.country != seen_at.most_common(1)[0][0]
            checked += 1
    assert checked > 100


def test_normal_traffic_rarely_trips_the_rules(windows):
    config = ScoringConfig()
    normal = [w for w in windows.values() if not any(x.fraud_label for x in w)]
    evaluations = [evaluate(aggregates([x.transaction for x in w]), config) for w in normal]
    alerts = sum(e.is_alert for e in evaluations) / len(normal)
    frequent = sum(e.flags["high_frequency"] for e in evaluations) / len(normal)
    several = sum(len(w) >= 2 for w in normal) / len(normal)
    print(f"normal windows={len(normal)} alert={alerts:.4f} high_frequency={frequent:.4f}")
    assert alerts < 0.02
    assert frequent < 0.05
    assert alerts > 0, "some realistic false positives (travel, splurges)"
    assert several > 0.10, "users come back within a window"


def test_fraud_windows_mostly_alert(windows):
    """The detectable patterns are detected by the rules (risky_merchant by design is not)."""
    config = ScoringConfig()
    alerted: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for w in windows.values():
        patterns = {x.pattern for x in w if x.fraud_label}
        if len(patterns) != 1:
            continue
        (pattern,) = patterns
        total[pattern] += 1
        alerted[pattern] += evaluate(aggregates([x.transaction for x in w]), config).is_alert
    assert alerted[HIGH_AMOUNT] == total[HIGH_AMOUNT]
    assert alerted[COUNTRY_HOP] == total[COUNTRY_HOP]


def test_user_pool_is_sized_from_the_rate(stream):
    config = GeneratorConfig(start_time=START, rate=200)
    assert config.user_count == 12_000
    assert GeneratorConfig(start_time=START, rate=200, users=50).user_count == 50
    assert GeneratorConfig(start_time=START, rate=0.01).user_count == 1
    ids = {x.transaction.user_id for x in stream}
    assert ids <= {user_id(dataclasses.replace(config, seed=42), i) for i in range(12_000)}
    assert len(ids) > 6_000


def test_users_keep_their_currency_and_mostly_their_country(stream):
    currencies: dict[str, set[str]] = defaultdict(set)
    countries: dict[str, Counter[str]] = defaultdict(Counter)
    for item in stream:
        currencies[item.transaction.user_id].add(item.transaction.currency)
        if not item.fraud_label:
            countries[item.transaction.user_id][item.transaction.country] += 1
    assert all(len(c) == 1 for c in currencies.values())
    at_home = sum(c.most_common(1)[0][1] for c in countries.values())
    assert at_home / sum(sum(c.values()) for c in countries.values()) > 0.98


def test_pattern_subset_and_no_fraud():
    only = GeneratorConfig(start_time=START, rate=100, seed=5, count=5_000, patterns=(RAPID_FIRE,))
    assert {x.pattern for x in generate(only)} == {"", RAPID_FIRE}
    none = GeneratorConfig(start_time=START, rate=100, seed=5, count=5_000, fraud_ratio=0)
    assert not any(x.fraud_label for x in generate(none))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"rate": 0}, "rate=0 must be"),
        ({"rate": float("nan")}, "rate=nan must be"),
        ({"start_time": datetime(2026, 1, 1)}, "must be timezone-aware"),
        ({"fraud_ratio": 1.0}, "fraud_ratio=1.0 must be in"),
        ({"users": 0}, "users=0 must be"),
        ({"count": -1}, "count=-1 must be"),
        ({"patterns": ("phishing",)}, "must be a non-empty subset"),
        ({"patterns": ()}, "must be a non-empty subset"),
    ],
)
def test_bad_config_is_refused_with_the_value(changes, message):
    with pytest.raises(ValueError, match=message):
        GeneratorConfig(**{"start_time": START, "rate": 10.0, **changes})
