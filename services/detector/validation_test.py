"""The Arrow validator agrees exactly with libs/schemas' parse_transaction, and builds the
DLQ headers docs/design.md asks for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa

from libs.schemas.fields import InvalidRecord
from libs.schemas.transaction import parse_transaction
from services.detector.validation import dlq_headers, validate_batches

GOOD = (
    b'{"transaction_id":"6f1c2b9e-8a4d-4c3b-9d2e-1f0a2b3c4d5e","user_id":"u1","amount":3000.01,'
    b'"currency":"EUR","merchant":"Shop","merchant_category":"travel","country":"FR",'
    b'"event_time":"2026-11-28T17:00:00.123456Z"}'
)
PAYLOADS = [
    GOOD,
    GOOD.replace(b'"FR"', b'"DE"').replace(b"17:00:00.123456Z", b"18:00:00+01:00"),
    GOOD.replace(b"3000.01", b"0.07").replace(b"2026-11-28", b"2000-01-01"),
    b"not json",
    b"[1, 2]",
    b'{"user_id": "u1"}',
    GOOD.replace(b"3000.01", b'"3000.01"'),
    GOOD.replace(b"3000.01", b"-5"),
    GOOD.replace(b"3000.01", b"1.001"),
    GOOD.replace(b"2026-11-28T17:00:00.123456Z", b"2026-11-28 17:00:00"),
    GOOD.replace(b"Shop", b"\xff\xfe"),
    b"",
    b'{"pad": "' + b"x" * 70000 + b'"}',
]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _batch(values: list[bytes], now: datetime | None = None) -> pa.RecordBatch:
    columns = {
        "key": [b"k"] * len(values),
        "value": values,
        "partition": pa.array([3] * len(values), pa.int32()),
        "offset": pa.array(range(len(values)), pa.int64()),
    }
    if now is not None:  # what the plan adds: the micro-batch's clock
        columns["now_us"] = pa.array([(now - EPOCH) // timedelta(microseconds=1)] * len(values))
    return pa.RecordBatch.from_pydict(columns)


def test_every_row_matches_parse_transaction():
    (out,) = list(validate_batches(iter([_batch(PAYLOADS)])))
    rows = out.to_pylist()
    assert [r["offset"] for r in rows] == list(range(len(PAYLOADS)))
    assert {r["partition"] for r in rows} == {3}
    for raw, row in zip(PAYLOADS, rows, strict=True):
        try:
            txn = parse_transaction(raw)
        except InvalidRecord as bad:
            assert row["error_reason"] == str(bad.reason), raw[:80]
            assert row["user_id"] is None and row["amount_cents"] is None
            continue
        assert row["error_reason"] is None, raw[:80]
        assert (row["transaction_id"], row["user_id"], row["country"]) == (
            txn.transaction_id,
            txn.user_id,
            txn.country,
        )
        assert row["amount_cents"] == int(txn.amount * 100)
        micros = (txn.event_time - EPOCH) // timedelta(microseconds=1)
        assert row["event_time_us"] == micros


def test_reasons_cover_the_bad_inputs():
    (out,) = list(validate_batches(iter([_batch(PAYLOADS)])))
    reasons = [r["error_reason"] for r in out.to_pylist()]
    assert reasons[:3] == [None, None, None]
    assert set(reasons[3:]) == {
        "not_json", "not_object", "missing_field", "bad_type", "bad_amount",
        "bad_timestamp", "not_utf8", "empty", "too_large",
    }  # fmt: skip


def test_amount_and_time_conversions_are_exact():
    (out,) = list(validate_batches(iter([_batch(PAYLOADS[:3])])))
    rows = out.to_pylist()
    assert [r["amount_cents"] for r in rows] == [300001, 300001, 7]
    assert rows[0]["event_time_us"] == 1795885200123456
    assert rows[1]["event_time_us"] == 1795885200000000  # 18:00+01:00 is 17:00Z
    assert rows[2]["event_time_us"] == 946746000123456  # 2000-01-01, the earliest year


def test_dlq_headers_name_reason_and_source():
    headers = dict(dlq_headers("bad_amount", "amount=-5 must be > 0", "transactions", 2, 41))
    assert headers == {
        "error": b"bad_amount: amount=-5 must be > 0",
        "error-reason": b"bad_amount",
        "source-topic": b"transactions",
        "source-partition": b"2",
        "source-offset": b"41",
    }


def _at(when: datetime) -> bytes:
    return GOOD.replace(b"2026-11-28T17:00:00.123456Z", when.isoformat().encode())


def test_future_event_time_is_judged_against_the_batch_clock():
    now = datetime(2026, 11, 28, 17, 0, tzinfo=UTC)
    payloads = [
        _at(now + timedelta(minutes=5)),  # exactly the skew: accepted
        _at(now + timedelta(minutes=5, microseconds=1)),
        _at(now + timedelta(days=365)),
        _at(now - timedelta(days=1)),  # old: the watermark's business, not the validator's
    ]
    (out,) = list(validate_batches(iter([_batch(payloads, now)])))
    reasons = [r["error_reason"] for r in out.to_pylist()]
    assert reasons == [None, "future_event_time", "future_event_time", None]
    (out,) = list(
        validate_batches(iter([_batch(payloads, now)]), max_future_skew=timedelta(hours=1))
    )
    assert [r["error_reason"] for r in out.to_pylist()] == [None, None, "future_event_time", None]


def test_without_a_batch_clock_the_worker_clock_is_used():
    now = datetime.now(UTC)
    payloads = [_at(now + timedelta(hours=1)), _at(now - timedelta(minutes=1))]
    (out,) = list(validate_batches(iter([_batch(payloads)])))
    assert [r["error_reason"] for r in out.to_pylist()] == ["future_event_time", None]


def test_an_unexpected_parser_exception_is_an_internal_error_not_a_failed_task(monkeypatch):
    from services.detector import validation

    def parse(raw: bytes, **kwargs):
        if raw == b"boom":
            raise RecursionError("maximum recursion depth exceeded")
        return parse_transaction(raw, **kwargs)

    monkeypatch.setattr(validation, "parse_transaction", parse)
    (out,) = list(validate_batches(iter([_batch([b"boom", GOOD])])))
    assert [r["error_reason"] for r in out.to_pylist()] == ["internal_error", None]
