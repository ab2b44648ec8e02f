"""Tests that the Spark structs follow the contracts, and that Spark's JSON and ours agree
in both directions (the detector reads producer JSON and writes alerts the sink parses)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    DecimalType,
    IntegerType,
    StringType,
    StructType,
    TimestampType,
)

from libs.schemas.alert import ALERT_FIELDS, Alert, alert_to_json, parse_alert
from libs.schemas.fields import Field, Kind
from libs.schemas.spark import JSON_OPTIONS, alert_struct, transaction_struct
from libs.schemas.transaction import TRANSACTION_FIELDS, parse_transaction, transaction_to_json
from libs.spark.session import session as spark_session

EXPECTED_TYPES = {
    Kind.STRING: StringType(),
    Kind.INT: IntegerType(),
    Kind.BOOL: BooleanType(),
    Kind.TIMESTAMP: TimestampType(),
    Kind.STRING_LIST: ArrayType(StringType(), containsNull=False),
}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def expected_type(field: Field) -> object:
    if field.kind is Kind.DECIMAL:
        return DecimalType(field.precision, field.scale)
    return EXPECTED_TYPES[field.kind]


@pytest.mark.parametrize(
    ("struct", "fields"),
    [(transaction_struct(), TRANSACTION_FIELDS), (alert_struct(), ALERT_FIELDS)],
    ids=["transaction", "alert"],
)
def test_struct_follows_contract(struct: StructType, fields: tuple[Field, ...]) -> None:
    assert struct.fieldNames() == [f.name for f in fields]
    for spark_field, field in zip(struct.fields, fields, strict=True):
        assert spark_field.dataType == expected_type(field), field.name
        assert spark_field.nullable == field.nullable, field.name
        assert spark_field.metadata == {"comment": field.doc}


def test_amount_types() -> None:
    assert transaction_struct()["amount"].dataType == DecimalType(15, 2)
    # Spark's sum(decimal(15, 2)) is decimal(25, 2): no cast needed in the detector.
    assert alert_struct()["total_amount"].dataType == DecimalType(25, 2)
    assert alert_struct()["max_amount"].dataType == DecimalType(15, 2)


@pytest.fixture(scope="module")
def spark() -> Iterator[SparkSession]:
    session = spark_session("schemas-spark-test", conf={"spark.sql.shuffle.partitions": "1"})
    yield session
    session.stop()


def micros(value: datetime) -> int:
    return (value - EPOCH) // timedelta(microseconds=1)


def json_frame(spark: SparkSession, payloads: list[bytes]) -> DataFrame:
    return spark.createDataFrame([(p.decode(),) for p in payloads], "value string")


def test_spark_reads_transaction_json_like_python(spark: SparkSession) -> None:
    raws = [
        (
            b'{"transaction_id":"123e4567-e89b-12d3-a456-426614174000","user_id":"u1",'
            b'"amount":3000.01,"currency":"EUR","merchant":"m","merchant_category":"travel",'
            b'"country":"DE","event_time":"2026-11-28T18:00:00.123+01:00"}'
        ),
    ]
    raws.append(transaction_to_json(parse_transaction(raws[0])))  # our own output
    parsed = json_frame(spark, raws).select(F.from_json("value", transaction_struct()).alias("t"))
    rows = parsed.select(
        "t.user_id", "t.amount", "t.country", F.unix_micros("t.event_time").alias("us")
    ).collect()
    for raw, row in zip(raws, rows, strict=True):
        t = parse_transaction(raw)
        assert row["user_id"] == t.user_id
        assert row["amount"] == t.amount == Decimal("3000.01")
        assert row["country"] == t.country
        assert row["us"] == micros(t.event_time)


ALERT = Alert(
    user_id="u1",
    window_start=datetime(2026, 11, 28, 17, 0, tzinfo=UTC),
    window_end=datetime(2026, 11, 28, 17, 1, tzinfo=UTC),
    txn_count=5,
    distinct_countries=2,
    max_amount=Decimal("3000.01"),
    total_amount=Decimal("3200.00"),
    high_value=True,
    location_change=True,
    high_frequency=True,
    fraud_score=5,
    transaction_ids=("a", "b", "c", "d", "e"),
    reasons=("high_value: max_amount 3000.01 > 3000",),
    rule_version="v1",
    detected_at=datetime(2026, 11, 28, 17, 0, 40, 5, tzinfo=UTC),
    last_event_time=datetime(2026, 11, 28, 17, 0, 35, 123456, tzinfo=UTC),
    version=5,
)


def spark_alert_json(spark: SparkSession, options: dict[str, str] | None) -> bytes:
    """Our alert JSON -> Spark struct -> Spark's to_json -> bytes."""
    frame = json_frame(spark, [alert_to_json(ALERT)]).select(
        F.from_json("value", alert_struct()).alias("a")
    )
    row = frame.select(F.to_json("a", options).alias("json")).first()
    assert row is not None
    return str(row["json"]).encode()


def test_spark_alert_json_with_json_options_round_trips_exactly(spark: SparkSession) -> None:
    assert parse_alert(spark_alert_json(spark, JSON_OPTIONS)) == ALERT


def test_spark_alert_json_with_default_options_is_still_valid(spark: SparkSession) -> None:
    # Spark's default format keeps milliseconds: valid, but sub-millisecond digits are lost.
    parsed = parse_alert(spark_alert_json(spark, None))
    assert parsed.last_event_time == ALERT.last_event_time.replace(microsecond=123000)
    assert parsed.max_amount == ALERT.max_amount
    assert parsed.transaction_ids == ALERT.transaction_ids
