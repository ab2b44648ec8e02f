"""Validation of raw Kafka records inside Spark, with libs/schemas' own parser.

Why Python here: the contract's validator (`parse_transaction`) is the one source of truth
for what is a good transaction and why a bad one is bad; the DLQ reasons and the
end-to-end tests depend on Spark agreeing with it exactly. It runs through `mapInArrow`
(whole Arrow batches, one Python call per batch of thousands of rows), so the cost is a
tight loop over orjson, not a per-row UDF. Scoring stays in the JVM (libs/scoring).
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa

from libs.schemas.codec import DEFAULT_MAX_BYTES
from libs.schemas.fields import InvalidRecord
from libs.schemas.transaction import parse_transaction

# Spark schema (DDL) of what `validate_batches` yields. `error_reason` is null for good
# records; then the transaction columns are set. Kafka coordinates travel along for the
# DLQ headers, and `value` only when `keep_raw` (the DLQ query needs the original bytes).
VALIDATED_DDL = (
    "key BINARY, value BINARY, partition INT, offset BIGINT, "
    "error_reason STRING, error_detail STRING, "
    "transaction_id STRING, user_id STRING, amount DECIMAL(15,2), country STRING, "
    "event_time TIMESTAMP"
)

_SCHEMA = pa.schema(
    [
        ("key", pa.binary()),
        ("value", pa.binary()),
        ("partition", pa.int32()),
        ("offset", pa.int64()),
        ("error_reason", pa.string()),
        ("error_detail", pa.string()),
        ("transaction_id", pa.string()),
        ("user_id", pa.string()),
        ("amount", pa.decimal128(15, 2)),
        ("country", pa.string()),
        ("event_time", pa.timestamp("us", tz="UTC")),
    ]
)


def validate_batches(
    batches: Iterator[pa.RecordBatch],
    keep_raw: bool = False,
    only_invalid: bool = False,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Iterator[pa.RecordBatch]:
    """For each batch of Kafka rows (key, value, partition, offset) yield validated rows.

    only_invalid: yield just the bad rows (the DLQ query); otherwise every row.
    """
    for batch in batches:
        values = batch.column("value").to_pylist()
        keys = batch.column("key").to_pylist()
        partitions = batch.column("partition").to_pylist()
        offsets = batch.column("offset").to_pylist()
        out: dict[str, list] = {name: [] for name in _SCHEMA.names}
        for key, value, partition, offset in zip(keys, values, partitions, offsets, strict=True):
            try:
                txn = parse_transaction(value, max_bytes=max_bytes)
            except InvalidRecord as bad:
                row = (str(bad.reason), bad.detail, None, None, None, None, None)
            else:
                if only_invalid:
                    continue
                row = (
                    None,
                    None,
                    txn.transaction_id,
                    txn.user_id,
                    txn.amount,
                    txn.country,
                    txn.event_time,
                )
            out["key"].append(key if keep_raw else None)
            out["value"].append(value if keep_raw else None)
            out["partition"].append(partition)
            out["offset"].append(offset)
            for name, item in zip(_SCHEMA.names[4:], row, strict=True):
                out[name].append(item)
        yield pa.RecordBatch.from_pydict(out, schema=_SCHEMA)
