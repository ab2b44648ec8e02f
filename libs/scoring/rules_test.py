"""Tests for the plain-Python rule evaluation: boundaries, weights, threshold, reasons."""

from __future__ import annotations

from decimal import Decimal

import pytest

from libs.scoring.rules import (
    RULES,
    Rule,
    ScoringConfig,
    WindowAggregates,
    evaluate,
    flags,
    reason_text,
    score,
)

DEFAULT = ScoringConfig()


def window(
    txn_count: int = 1,
    distinct_countries: int = 1,
    max_amount: str = "10.00",
    total_amount: str | None = None,
) -> WindowAggregates:
    return WindowAggregates(
        txn_count=txn_count,
        distinct_countries=distinct_countries,
        max_amount=Decimal(max_amount),
        total_amount=Decimal(total_amount or max_amount),
    )


def test_defaults_are_the_design_semantics() -> None:
    assert DEFAULT.high_value_amount == Decimal(3000)
    assert DEFAULT.location_change_countries == 2
    assert DEFAULT.high_frequency_count == 5
    assert (DEFAULT.high_value_weight, DEFAULT.location_change_weight) == (2, 2)
    assert DEFAULT.high_frequency_weight == 1
    assert DEFAULT.alert_threshold == 2
    assert [r.name for r in RULES] == ["high_value", "location_change", "high_frequency"]


@pytest.mark.parametrize(
    ("max_amount", "expected"),
    [("2999.99", False), ("3000", False), ("3000.00", False), ("3000.01", True)],
)
def test_high_value_is_strictly_greater_and_exact(max_amount: str, expected: bool) -> None:
    assert flags(window(max_amount=max_amount), DEFAULT)["high_value"] is expected


@pytest.mark.parametrize(("countries", "expected"), [(0, False), (1, False), (2, True), (3, True)])
def test_location_change_at_two_countries(countries: int, expected: bool) -> None:
    assert flags(window(distinct_countries=countries), DEFAULT)["location_change"] is expected


@pytest.mark.parametrize(("count", "expected"), [(4, False), (5, True), (6, True)])
def test_high_frequency_at_five_transactions(count: int, expected: bool) -> None:
    assert flags(window(txn_count=count), DEFAULT)["high_frequency"] is expected


@pytest.mark.parametrize(
    ("fired", "expected"),
    [
        ((False, False, False), 0),
        ((True, False, False), 2),
        ((False, True, False), 2),
        ((False, False, True), 1),
        ((True, True, False), 4),
        ((True, False, True), 3),
        ((True, True, True), 5),
    ],
)
def test_score_is_weighted_sum(fired: tuple[bool, bool, bool], expected: int) -> None:
    rule_flags = dict(zip([r.name for r in RULES], fired, strict=True))
    assert score(rule_flags, DEFAULT) == expected


@pytest.mark.parametrize(
    ("agg", "score_", "is_alert"),
    [
        (window(), 0, False),
        (window(txn_count=5), 1, False),  # high frequency alone is below the threshold
        (window(max_amount="3000.00"), 0, False),
        (window(max_amount="3000.01"), 2, True),
        (window(distinct_countries=2), 2, True),
        (window(txn_count=4, distinct_countries=1, max_amount="3000"), 0, False),
        (window(txn_count=5, distinct_countries=2, max_amount="3000.01"), 5, True),
    ],
)
def test_evaluate_alert_decision(agg: WindowAggregates, score_: int, is_alert: bool) -> None:
    result = evaluate(agg, DEFAULT)
    assert result.score == score_
    assert result.is_alert is is_alert
    assert result.flags == flags(agg, DEFAULT)


def test_reasons_name_rule_value_and_threshold_in_rule_order() -> None:
    result = evaluate(window(txn_count=6, distinct_countries=3, max_amount="3500.50"), DEFAULT)
    assert result.reasons == (
        "high_value: max_amount 3500.50 > 3000",
        "location_change: 3 distinct countries >= 2",
        "high_frequency: 6 transactions >= 5",
    )
    assert evaluate(window(), DEFAULT).reasons == ()


def test_custom_config_changes_thresholds_and_weights() -> None:
    config = ScoringConfig(
        high_value_amount=Decimal("100.5"),
        high_frequency_count=3,
        high_frequency_weight=3,
        alert_threshold=3,
    )
    result = evaluate(window(txn_count=3, max_amount="100.50"), config)
    assert result.flags == {"high_value": False, "location_change": False, "high_frequency": True}
    assert result.score == 3
    assert result.is_alert is True
    assert result.reasons == ("high_frequency: 3 transactions >= 3",)
    assert evaluate(window(max_amount="100.51"), config).score == 2
    assert evaluate(window(max_amount="100.51"), config).is_alert is False


def test_zero_weight_rule_still_flags_but_does_not_score() -> None:
    config = ScoringConfig(location_change_weight=0)
    result = evaluate(window(distinct_countries=2), config)
    assert result.flags["location_change"] is True
    assert result.score == 0
    assert result.is_alert is False


def test_reason_text_formats_template() -> None:
    assert reason_text(RULES[0], Decimal("3000.01"), DEFAULT) == (
        "high_value: max_amount 3000.01 > 3000"
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"op": "=="},
        {"metric": "avg_amount"},
        {"threshold_attr": "nope"},
        {"weight_attr": "nope"},
    ],
)
def test_rule_definition_is_checked(kwargs: dict[str, str]) -> None:
    base = {
        "name": "r",
        "metric": "txn_count",
        "op": ">=",
        "threshold_attr": "high_frequency_count",
        "weight_attr": "high_frequency_weight",
        "reason_template": "{value}",
    }
    with pytest.raises(ValueError, match=r"^rule r: "):
        Rule(**{**base, **kwargs})
