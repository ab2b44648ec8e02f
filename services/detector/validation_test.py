"""The Arrow validator agrees exactly with libs/schemas' parse_transaction."""

from __future__ import annotations

import pyarrow as pa
import pytest

from libs.schemas.fields import InvalidRecord
from libs.schemas.transaction import parse_transaction
from services.detector.validation import validate_batches

GOOD = (
    b'{"transaction_id":"6f1c2b9e-8a4d-4c3b-9d2e-1f0a2b3c4d5e","user_id":"u1","amount":3000.01,'
    b'"currency":"EUR","merchant":"Shop","merchant_category":"travel","country":"FR",'
    b'"event_time":"2026-11-28T17:00:00.123Z"}'
)
PAYLOADS = [
    GOOD,
    GOOD.replace(b'"FR"', b'"DE"').replace(b"17:00:00.123Z", b"18:00:00+01:00"),
    b"not json",
    b"[1, 2]",
    b'{"user_id": "u1"}',
    GOOD.replace(b"3000.01", b'"3000.01"'),
    GOOD.replace(b"3000.01", b"-5"),
    GOOD.replace(b"3000.01", b"1.001"),
    GOOD.replace(b"2026-11-28T17:00:00.123Z", b"2026-11-28 17:00:00"),
    GOOD.replace(b"Shop", b"\xff\xfe"),
    b"",
    b'{"pad": "' + b"x" * 70000 + b'"}',
]


def _batch(values: list[bytes]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict(
        {
            "key": [b"k"] * len(values),
            "value": values,
            "partition": pa.array([0] * len(values), pa.int32()),
            "offset": pa.array(range(len(values)), pa.int64()),
        }
    )


def _expected(raw: bytes):
    try:
        return None, parse_transaction(raw)
    except InvalidRecord as bad:
        return str(bad.reason), bad.detail


def test_every_row_matches_parse_transaction():
    (out,) = list(validate_batches(iter([_batch(PAYLOADS)])))
    rows = out.to_pylist()
    assert len(rows) == len(PAYLOADS)
    for raw, row in zip(PAYLOADS, rows, strict=True):
        reason, detail_or_txn = _expected(raw)
        assert row["error_reason"] == reason, raw[:80]
        if reason is None:
            txn = detail_or_txn
            assert (row["transaction_id"], row["user_id"], row["amount"], row["country"]) == (
                txn.transaction_id,
                txn.user_id,
                txn.amount,
                txn.country,
            )
            assert row["event_time"] == txn.event_time
        else:
            assert row["error_detail"] == detail_or_txn
            assert row["user_id"] is None


def test_reasons_cover_the_bad_inputs():
    (out,) = list(validate_batches(iter([_batch(PAYLOADS)])))
    reasons = [r["error_reason"] for r in out.to_pylist()]
    assert reasons[:2] == [None, None]
    assert set(reasons[2:]) >= {
        "not_json",
        "not_object",
        "missing_field",
        "bad_type",
        "bad_amount",
        "bad_timestamp",
        "not_utf8",
        "empty",
        "too_large",
    }


@pytest.mark.parametrize("keep_raw", [True, False])
def test_only_invalid_keeps_just_bad_rows_with_coordinates(keep_raw):
    (out,) = list(validate_batches(iter([_batch(PAYLOADS)]), keep_raw=keep_raw, only_invalid=True))
    rows = out.to_pylist()
    assert [r["offset"] for r in rows] == list(range(2, len(PAYLOADS)))
    assert all(r["error_reason"] for r in rows)
    assert [r["value"] for r in rows] == (PAYLOADS[2:] if keep_raw else [None] * len(rows))
