"""The rule set as Spark column expressions, built from the same `RULES` as `evaluate`.

Everything is a native Catalyst expression (no Python UDFs), so scoring runs in the JVM
at full speed and the plan stays inspectable. A separate module and Bazel target because
it imports pyspark.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import reduce

from pyspark.sql import Column
from pyspark.sql import functions as F

from libs.scoring.rules import OPS, RULES, Rule, ScoringConfig

_VALUE_MARK = "\x00"  # stands for {value} while a reason template is split around it


def flag_columns(config: ScoringConfig, metric_cols: Mapping[str, Column]) -> dict[str, Column]:
    """Rule name -> boolean column. `metric_cols` maps each rule's metric name to a column.

    A null metric gives false (like a missing aggregate never firing a rule).
    """
    return {
        rule.name: F.coalesce(
            OPS[rule.op](metric_cols[rule.metric], F.lit(rule.threshold(config))), F.lit(False)
        )
        for rule in RULES
    }


def score_column(config: ScoringConfig, flag_cols: Mapping[str, Column]) -> Column:
    """Integer column: the sum of the weights of the rules whose flag is true."""
    terms = [F.when(flag_cols[r.name], F.lit(r.weight(config))).otherwise(F.lit(0)) for r in RULES]
    return reduce(lambda a, b: a + b, terms, F.lit(0)).cast("int")


def alert_column(config: ScoringConfig, score_col: Column) -> Column:
    """Boolean column: the window is an alert."""
    return score_col >= F.lit(config.alert_threshold)


def _reason_expr(rule: Rule, config: ScoringConfig, metric_col: Column) -> Column:
    # Format everything but {value} in Python, then splice the metric in as text so the
    # line equals reason_text() for the same value.
    parts = rule.reason_template.format(value=_VALUE_MARK, threshold=rule.threshold(config)).split(
        _VALUE_MARK
    )
    pieces: list[Column] = [F.lit(parts[0])]
    for part in parts[1:]:
        pieces += [metric_col.cast("string"), F.lit(part)]
    return F.concat(*pieces)


def reasons_column(
    config: ScoringConfig, flag_cols: Mapping[str, Column], metric_cols: Mapping[str, Column]
) -> Column:
    """array<string> column: one explanation per fired rule, in `RULES` order."""
    return F.array_compact(
        F.array(
            *[
                F.when(flag_cols[r.name], _reason_expr(r, config, metric_cols[r.metric]))
                for r in RULES
            ]
        )
    )


def evaluation_columns(
    config: ScoringConfig, metric_cols: Mapping[str, Column]
) -> dict[str, Column]:
    """All outputs by name: one per rule flag, `fraud_score`, `is_alert`, `reasons`.

    The names other than `is_alert` are the Alert contract's column names.
    """
    flag_cols = flag_columns(config, metric_cols)
    score_col = score_column(config, flag_cols)
    return {
        **flag_cols,
        "fraud_score": score_col,
        "is_alert": alert_column(config, score_col),
        "reasons": reasons_column(config, flag_cols, metric_cols),
    }
