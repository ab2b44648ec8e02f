"""Differential test: the Spark-expression validator (`spark_validation.validate`) and
`parse_transaction` give the same verdict, the same reason and, for valid records, the
same field values, for every record of one corpus.

Why differential: the Spark validator re-implements the contract with other parsers
(Jackson's, Java regexes); only running both on the same, adversarial inputs shows that
they agree. The corpus: the producer's seeded stream, every hostile kind that
`hostile_test` generates (its own test functions are run with `refused` and
`parse_transaction` replaced by recorders, so new kinds there are covered here too), and
hand-written edges. One local[2] SparkSession; batch DataFrames, no Kafka. Prints the
number of records and agreements per reason.
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from libs.schemas.fields import InvalidRecord
from libs.schemas.spark_validation import REASON_COLUMN, validate
from libs.schemas.transaction import TRANSACTION_FIELDS, parse_transaction, transaction_to_json
from libs.spark.session import session
from services.producer.generator import GeneratorConfig, generate


def _load_hostile() -> Any:
    """hostile_test, loaded from its file (a data dependency: one file, one test target)."""
    path = Path(__file__).with_name("hostile_test.py")
    spec = importlib.util.spec_from_file_location("libs.schemas.hostile_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


hostile = _load_hostile()

NOW = hostile.NOW  # the hostile records are built around this clock
STREAM_RECORDS = 3000
VALID = "(valid)"


@pytest.fixture(scope="module")
def spark() -> Iterator[SparkSession]:
    s = session("spark-validation-test", master="local[2]")
    s.sparkContext.setLogLevel("ERROR")
    yield s
    s.stop()


def stream_records() -> list[tuple[str, bytes, dict[str, Any]]]:
    start = NOW - timedelta(days=1)
    config = GeneratorConfig(start_time=start, rate=1_000, seed=7, count=STREAM_RECORDS)
    return [("stream", transaction_to_json(g.transaction), {}) for g in generate(config)]


def hostile_records() -> list[tuple[str, bytes, dict[str, Any]]]:
    """Every record hostile_test's tests hand to parse_transaction, with their kind."""
    found: list[tuple[str, bytes, dict[str, Any]]] = []
    real_refused, real_parse = hostile.refused, hostile.parse_transaction
    current = ["?"]

    def refused(kind: str, raw: bytes, reason: str, **kwargs: Any) -> InvalidRecord:
        found.append((kind, raw, kwargs))
        try:
            return real_refused(kind, raw, reason, **kwargs)
        except AssertionError:  # hostile_test's own business; here only the record counts
            return InvalidRecord(reason, "")

    def parse(raw: bytes, **kwargs: Any) -> Any:
        if isinstance(raw, bytes) and kwargs.get("now") is NOW:
            found.append((current[0], raw, {k: v for k, v in kwargs.items() if k != "now"}))
        return real_parse(raw, **kwargs)

    hostile.refused, hostile.parse_transaction = refused, parse
    try:
        for name, test in inspect.getmembers(hostile, inspect.isfunction):
            if name.startswith("test_"):
                current[0] = name.removeprefix("test_")
                # A failed detail assertion is hostile_test's business: the records count.
                with contextlib.suppress(AssertionError):
                    test()
    finally:
        hostile.refused, hostile.parse_transaction = real_refused, real_parse
    return found


def _first() -> Any:
    config = GeneratorConfig(start_time=NOW - timedelta(days=1), rate=1_000, seed=7, count=1)
    return next(generate(config)).transaction


def edge_records() -> list[tuple[str, bytes, dict[str, Any]]]:
    """Hand-written inputs where the two parsers could plausibly part ways."""
    good = transaction_to_json(_first())
    obj = orjson.loads(good)

    def amount(text: bytes) -> bytes:
        return hostile.with_raw_value(obj, "amount", text)

    def extra(text: bytes) -> bytes:
        return hostile.assemble([*hostile.members(obj), b'"extra":' + text])

    def event_time(text: str) -> bytes:
        return orjson.dumps({**obj, "event_time": text})

    raws = [
        good + b" ",
        good + b"\n",
        b" \t\r\n" + good,
        good + b" x",
        good + good,
        good + b",{}",
        good + b"]",
        b"\x0c" + good,
        good + b"\x00",
        b"{}",
        b"{} ",
        b"[]",
        b'""',
        b"1 2",
        b"null",
        b"true",
        b'{"a":1}{"b":2}',
        b'{"a":1,"a":2}',
        b'{"user\\u005fid":1,"user_id":2}',
        b'{"a":{"b":1,"b":2}}',
        b'{"a":[{"b":1},{"b":2}]}',
        b'{"a":"\\ud800\\udc00"}',
        b'{"a\\ud800":1}',
        b'{"a":1,"a":2,}',
        b'{"\\\\ud800":1,"\\\\ud800":2}',
        b'{"a":0' + b"0" * 10 + b"}",
        good.replace(b"{", b'{"x":1e400,', 1),
        good.replace(b"{", b'{"x":-1e400,', 1),
        good.replace(b"{", b'{"x":[1e309],', 1),
        good.replace(b"{", b'{"x":"1e400",', 1),
        good.replace(b"{", b'{"x":1' + b"0" * 400 + b",", 1),
        good.replace(b"{", b'{"x":1e-400,', 1),
        amount(b"1e400"),
        amount(b"0e400"),
        amount(b"0e999999999999999999"),
        amount(b"0e1000000000000000000"),
        amount(b"0.0e1000000000000000000"),
        amount(b"1e-1999999999999999997"),
        amount(b"1e-1999999999999999998"),
        amount(b"10e-1999999999999999998"),
        amount(b"1" + b"0" * 45),
        amount(b"1" + b"0" * 20 + b"e-20"),
        amount(b"1.5e1"),
        amount(b"1.505e1"),
        amount(b"9999999999999.99"),
        amount(b"10000000000000"),
        amount(b"-0"),
        amount(b"-0.0"),
        amount(b"-1.5"),
        amount(b"0.001e1"),
        amount(b"1E+2"),
        amount(b"1e2"),
        amount(b"0.0000001"),
        amount(b"12345678901234567890123456789012345678901234567890e-48"),
        event_time("2026-12-01T12:00:00.1234567+01:00"),
        event_time("2026-12-01T12:00:00.999999999Z"),
        event_time("2026-12-01T12:00:00+05:60"),
        event_time("2026-12-01T12:00:00+05:99"),
        event_time("2026-12-01T12:00:00-00:00"),
        event_time("2026-12-01T12:00:00+14:00"),
        event_time("2026-12-01T12:00:00-12:00"),
        event_time("2026-12-01T12:00:00+14:01"),
        event_time("2026-12-01T12:00:00-12:01"),
        event_time("0001-01-01T00:00:00+14:00"),
        event_time("9999-12-31T23:59:59-12:00"),
        event_time("0000-01-01T00:00:00Z"),
        event_time("2024-02-29T12:00:00Z"),
        event_time("2026-02-29T12:00:00Z"),
        event_time("2026-12-01T24:00:00Z"),
        event_time("2026-12-01T23:59:60Z"),
        event_time("1999-12-31T23:59:59.999999Z"),
        event_time("2000-01-01T00:00:00Z"),
        event_time("2000-01-01T01:00:00+01:00"),
        event_time("2026-12-01T12:05:00Z"),
        event_time("2026-12-01T12:05:00.000001Z"),
        event_time("2026-12-01T12:00:00Z\n"),
        event_time("2026-12-01t12:00:00Z"),
        event_time("２026-12-01T12:00:00Z"),
        orjson.dumps({**obj, "user_id": "\u0890x"}),  # Cf in Python 3.11, not in Java 17
        orjson.dumps({**obj, "merchant": "a\U000e0001"}),
        orjson.dumps({**obj, "user_id": "\u00a0\u2028\u3000"}),
        orjson.dumps({**obj, "user_id": "\u200b"}),
        orjson.dumps({**obj, "user_id": "\U0001f600" * 128}),
        orjson.dumps({**obj, "user_id": "\U0001f600" * 129}),
        orjson.dumps({**obj, "transaction_id": obj["transaction_id"] + "\n"}),
        orjson.dumps({**obj, "currency": "eur"}),
        orjson.dumps({**obj, "country": "XK"}),
        orjson.dumps({**obj, "extra": {"deep": [[[[1]]]]}}),
        extra(hostile.nested_text(31, "mixed", b"1")),
        extra(hostile.nested_text(32, "mixed", b"1")),
        extra(hostile.nested_text(1010, "array", b"1")),
        extra(hostile.nested_text(300, "array", b"1,]")),
    ]  # fmt: skip
    found = [("edge", raw, {}) for raw in raws]
    found += [("edge (max_bytes=100)", good, {"max_bytes": 100})]
    found += [("edge (empty)", b"", {}), ("edge (None)", None, {})]  # type: ignore[list-item]
    return found


def reference(raw: bytes, kwargs: dict[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
    try:
        txn = parse_transaction(raw, now=NOW, **kwargs)
    except InvalidRecord as bad:
        return str(bad.reason), None
    return None, {f.name: getattr(txn, f.name) for f in TRANSACTION_FIELDS}


def test_spark_agrees_with_parse_transaction(spark: SparkSession, request: Any) -> None:
    corpus = stream_records() + hostile_records() + edge_records()
    groups: dict[int, list[int]] = {}  # max_bytes -> record indexes
    for i, (_, _, kwargs) in enumerate(corpus):
        assert set(kwargs) <= {"max_bytes"}, kwargs
        groups.setdefault(kwargs.get("max_bytes", 64 * 1024), []).append(i)

    got: dict[int, Any] = {}
    for max_bytes, indexes in groups.items():
        df = spark.createDataFrame(
            [(i, corpus[i][1]) for i in indexes], "i int, value binary"
        ).repartition(2)
        for row in validate(df, max_bytes=max_bytes, now=F.lit(NOW)).collect():
            got[row.i] = row

    table: Counter[tuple[str, bool]] = Counter()
    disagreements: list[str] = []
    for i, (kind, raw, kwargs) in enumerate(corpus):
        want_reason, want_fields = reference(raw, kwargs)
        row = got[i]
        agree = row[REASON_COLUMN] == want_reason
        if agree and want_fields is not None:
            fields = {f.name: row[f.name] for f in TRANSACTION_FIELDS}
            fields["event_time"] = fields["event_time"].replace(tzinfo=UTC)
            agree = fields == want_fields
            if not agree:
                want_reason = f"{VALID} values differ: {fields} != {want_fields}"
        table[(want_reason or VALID, agree)] += 1
        if not agree and len(disagreements) < 30:
            disagreements.append(
                f"{kind}: parse_transaction={want_reason} spark={row[REASON_COLUMN]} "
                f"for {(raw or b'')[:100]!r}...{(raw or b'')[-60:]!r}"
            )

    reasons = sorted({r for r, _ in table})
    lines = [f"{'reason':<20} {'records':>8} {'agreed':>8}"]
    for r in reasons:
        total = table[(r, True)] + table[(r, False)]
        lines.append(f"{r:<20} {total:8d} {table[(r, True)]:8d}")
    lines.append(f"{'total':<20} {len(corpus):8d} {sum(table[(r, True)] for r in reasons):8d}")
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print("\nspark_validation_test: records per reference reason\n" + "\n".join(lines))
    assert not disagreements, "\n".join(disagreements)
    # Every reason the reference has for a transaction occurs in the corpus.
    assert len(reasons) >= 19, reasons
