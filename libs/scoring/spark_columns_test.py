"""The Spark column expressions must give exactly what the plain-Python `evaluate` gives.

One small local SparkSession for the whole file; edge-case rows sit on every threshold.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from libs.scoring.rules import RULES, ScoringConfig, WindowAggregates, evaluate
from libs.scoring.spark_columns import evaluation_columns, flag_columns, score_column
from libs.spark.session import session as spark_session

SCHEMA = (
    "txn_count int, distinct_countries int, max_amount decimal(15,2), total_amount decimal(25,2)"
)

EDGE_CASES = [
    WindowAggregates(1, 1, Decimal("10.00"), Decimal("10.00")),
    WindowAggregates(1, 1, Decimal("3000.00"), Decimal("3000.00")),
    WindowAggregates(1, 1, Decimal("3000.01"), Decimal("3000.01")),
    WindowAggregates(4, 1, Decimal("100.00"), Decimal("400.00")),
    WindowAggregates(5, 1, Decimal("100.00"), Decimal("500.00")),
    WindowAggregates(2, 1, Decimal("50.00"), Decimal("60.00")),
    WindowAggregates(2, 2, Decimal("50.00"), Decimal("60.00")),
    WindowAggregates(5, 2, Decimal("3000.01"), Decimal("3400.01")),
    WindowAggregates(4, 2, Decimal("3000.00"), Decimal("3100.00")),
    WindowAggregates(9, 3, Decimal("100.50"), Decimal("900.00")),
    WindowAggregates(0, 0, Decimal("0.00"), Decimal("0.00")),
]

CONFIGS = {
    "default": ScoringConfig(),
    "custom": ScoringConfig(
        high_value_amount=Decimal("100.5"),
        location_change_countries=3,
        high_frequency_count=4,
        high_value_weight=1,
        location_change_weight=3,
        high_frequency_weight=2,
        alert_threshold=3,
        rule_version="test",
    ),
}


@pytest.fixture(scope="module")
def spark() -> Iterator[SparkSession]:
    session = spark_session(
        "scoring-spark-columns-test", conf={"spark.sql.shuffle.partitions": "1"}
    )
    yield session
    session.stop()


@pytest.fixture(scope="module")
def frame(spark: SparkSession) -> DataFrame:
    rows = [(a.txn_count, a.distinct_countries, a.max_amount, a.total_amount) for a in EDGE_CASES]
    return spark.createDataFrame(rows, SCHEMA).withColumn("row", F.monotonically_increasing_id())


def metric_cols() -> dict[str, Column]:
    return {
        name: F.col(name)
        for name in ("txn_count", "distinct_countries", "max_amount", "total_amount")
    }


@pytest.mark.parametrize("config_name", sorted(CONFIGS))
def test_spark_matches_python_evaluate(frame: DataFrame, config_name: str) -> None:
    config = CONFIGS[config_name]
    cols = evaluation_columns(config, metric_cols())
    rows = frame.select("row", *[c.alias(n) for n, c in cols.items()]).orderBy("row").collect()
    assert len(rows) == len(EDGE_CASES)
    for agg, row in zip(EDGE_CASES, rows, strict=True):
        expected = evaluate(agg, config)
        for rule in RULES:
            assert row[rule.name] is expected.flags[rule.name], (agg, rule.name)
        assert row["fraud_score"] == expected.score, agg
        assert row["is_alert"] is expected.is_alert, agg
        assert tuple(row["reasons"]) == expected.reasons, agg


def test_edge_cases_cover_both_outcomes_of_every_rule() -> None:
    # Guards the test data itself: each flag and the alert decision take both values.
    results = [evaluate(agg, ScoringConfig()) for agg in EDGE_CASES]
    for rule in RULES:
        assert {r.flags[rule.name] for r in results} == {True, False}
    assert {r.is_alert for r in results} == {True, False}


def test_output_types(frame: DataFrame) -> None:
    cols = evaluation_columns(ScoringConfig(), metric_cols())
    schema = frame.select(*[c.alias(n) for n, c in cols.items()]).schema
    types = {f.name: f.dataType.simpleString() for f in schema.fields}
    assert types == {
        "high_value": "boolean",
        "location_change": "boolean",
        "high_frequency": "boolean",
        "fraud_score": "int",
        "is_alert": "boolean",
        "reasons": "array<string>",
    }


def test_null_metric_never_fires(spark: SparkSession) -> None:
    config = ScoringConfig()
    nulls = spark.createDataFrame([(None, None, None, None)], SCHEMA)
    flags = flag_columns(config, metric_cols())
    row = nulls.select(
        *[c.alias(n) for n, c in flags.items()], score_column(config, flags).alias("s")
    ).first()
    assert row is not None
    assert [row[r.name] for r in RULES] == [False, False, False]
    assert row["s"] == 0


def test_plan_has_no_python_udf(frame: DataFrame) -> None:
    cols = evaluation_columns(ScoringConfig(), metric_cols())
    plan = frame.select(*[c.alias(n) for n, c in cols.items()])._jdf.queryExecution().toString()
    assert "PythonUDF" not in plan
    assert "BatchEvalPython" not in plan
    assert "ArrowEvalPython" not in plan
