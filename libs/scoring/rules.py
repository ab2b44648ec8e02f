"""Fraud rules as data, and their plain-Python evaluation.

`RULES` is the single definition of the rule set: each `Rule` names the aggregate it
reads, the comparison, and which `ScoringConfig` fields hold its threshold and weight.
`evaluate` here and the Spark expressions in `libs.scoring.spark_columns` both iterate
over `RULES`, so the detector and the tests cannot disagree about what a rule means.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from libs.scoring.config import ScoringConfig

__all__ = [
    "OPS",
    "RULES",
    "Evaluation",
    "Rule",
    "ScoringConfig",
    "WindowAggregates",
    "evaluate",
    "flags",
    "reason_text",
    "score",
]

# Plain operator functions: they work on Python numbers and on Spark Columns alike.
OPS: dict[str, Callable[[Any, Any], Any]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}


@dataclass(frozen=True, slots=True)
class WindowAggregates:
    """Per (user_id, window) aggregates the rules read. Amounts are exact decimals."""

    txn_count: int
    distinct_countries: int
    max_amount: Decimal
    total_amount: Decimal


@dataclass(frozen=True, slots=True)
class Rule:
    """`flag = aggregates.<metric> <op> config.<threshold_attr>`, worth `config.<weight_attr>`.

    `reason_template` may use `{value}` (the metric) and `{threshold}`, without format
    specs: the Spark version splices the metric in as text (`spark_columns`).
    """

    name: str
    metric: str
    op: str
    threshold_attr: str
    weight_attr: str
    reason_template: str

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise ValueError(f"rule {self.name}: op={self.op!r} must be one of {sorted(OPS)}")
        if self.metric not in WindowAggregates.__dataclass_fields__:
            raise ValueError(f"rule {self.name}: metric={self.metric!r} is not an aggregate")
        for attr in (self.threshold_attr, self.weight_attr):
            if attr not in ScoringConfig.__dataclass_fields__:
                raise ValueError(f"rule {self.name}: {attr!r} is not a ScoringConfig field")

    def threshold(self, config: ScoringConfig) -> Any:
        return getattr(config, self.threshold_attr)

    def weight(self, config: ScoringConfig) -> int:
        return int(getattr(config, self.weight_attr))


RULES: tuple[Rule, ...] = (
    Rule(
        name="high_value",
        metric="max_amount",
        op=">",
        threshold_attr="high_value_amount",
        weight_attr="high_value_weight",
        reason_template="high_value: max_amount {value} > {threshold}",
    ),
    Rule(
        name="location_change",
        metric="distinct_countries",
        op=">=",
        threshold_attr="location_change_countries",
        weight_attr="location_change_weight",
        reason_template="location_change: {value} distinct countries >= {threshold}",
    ),
    Rule(
        name="high_frequency",
        metric="txn_count",
        op=">=",
        threshold_attr="high_frequency_count",
        weight_attr="high_frequency_weight",
        reason_template="high_frequency: {value} transactions >= {threshold}",
    ),
)


@dataclass(frozen=True, slots=True)
class Evaluation:
    """Outcome for one window: flag per rule name, score, alert or not, and why."""

    flags: Mapping[str, bool]
    score: int
    is_alert: bool
    reasons: tuple[str, ...]


def reason_text(rule: Rule, value: Any, config: ScoringConfig) -> str:
    """The explanation line for a triggered rule."""
    return rule.reason_template.format(value=value, threshold=rule.threshold(config))


def flags(aggregates: WindowAggregates, config: ScoringConfig) -> dict[str, bool]:
    """Rule name -> whether it fires. Decimal amounts compare exactly."""
    return {
        rule.name: bool(OPS[rule.op](getattr(aggregates, rule.metric), rule.threshold(config)))
        for rule in RULES
    }


def score(rule_flags: Mapping[str, bool], config: ScoringConfig) -> int:
    """Sum of the weights of the rules that fired."""
    return sum(rule.weight(config) for rule in RULES if rule_flags[rule.name])


def evaluate(aggregates: WindowAggregates, config: ScoringConfig) -> Evaluation:
    """Flags, score, alert decision and reasons for one window."""
    fired = flags(aggregates, config)
    total = score(fired, config)
    reasons = tuple(
        reason_text(rule, getattr(aggregates, rule.metric), config)
        for rule in RULES
        if fired[rule.name]
    )
    return Evaluation(
        flags=fired, score=total, is_alert=total >= config.alert_threshold, reasons=reasons
    )
