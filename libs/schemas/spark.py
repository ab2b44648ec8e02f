"""Spark `StructType`s derived from the contract field tuples.

Kept in its own module (and Bazel target) because it imports pyspark: services that only
need JSON validation or SQL must not pull a 400 MB dependency.
"""

from __future__ import annotations

from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    DataType,
    DecimalType,
    IntegerType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from libs.schemas.alert import ALERT_FIELDS
from libs.schemas.fields import Field, Kind
from libs.schemas.transaction import TRANSACTION_FIELDS

# Options for `to_json`/`from_json` so Spark writes what `parse_alert` reads back exactly:
# Spark's default timestamp format keeps only milliseconds; this keeps microseconds and
# writes the zone as `Z` (with spark.sql.session.timeZone=UTC) or `+hh:mm`.
JSON_OPTIONS: dict[str, str] = {"timestampFormat": "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX"}


def spark_type(field: Field) -> DataType:
    """Spark type of one field."""
    match field.kind:
        case Kind.STRING:
            return StringType()
        case Kind.INT:
            return IntegerType()
        case Kind.BOOL:
            return BooleanType()
        case Kind.DECIMAL:
            return DecimalType(field.precision, field.scale)
        case Kind.TIMESTAMP:
            return TimestampType()
        case Kind.STRING_LIST:
            return ArrayType(StringType(), containsNull=False)
    raise ValueError(f"no Spark type for {field.kind}")


def struct_for(fields: tuple[Field, ...]) -> StructType:
    """StructType with one StructField per contract field; docs become column comments."""
    return StructType(
        [
            StructField(f.name, spark_type(f), nullable=f.nullable, metadata={"comment": f.doc})
            for f in fields
        ]
    )


def transaction_struct() -> StructType:
    """Schema of a `transactions` message value (e.g. for `from_json`)."""
    return struct_for(TRANSACTION_FIELDS)


def alert_struct() -> StructType:
    """Schema of a `fraud_alerts` message value (e.g. for `to_json`/`from_json`)."""
    return struct_for(ALERT_FIELDS)
