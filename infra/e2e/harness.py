"""End-to-end test harness: deterministic streams, an independent reference, and table reads.

The reference is deliberately written from docs/design.md's words, not from libs/scoring, so a
mistake in the rule definitions or the Spark plan cannot hide behind the same code:
epoch-aligned 60 s windows per user; high_value = max > 3000, location_change = >= 2
countries, high_frequency = >= 5 transactions; score 2/2/1; alert at >= 2; a
transaction_id counts once (`reference_alerts` keeps the first record of each id and
drops every later one: exactly what the detector does for a redelivered record, which
carries the same event_time, see `dedupe`).
"""

from __future__ import annotations

import json
import os
import random
import tempfile
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from confluent_kafka import Producer

from infra.stack import DetectorSettings, Ports, Stack
from infra.testing.table import read_table
from libs.schemas.fields import InvalidRecord, Reason
from libs.schemas.transaction import Transaction, parse_transaction, transaction_to_json
from services.producer.generator import GeneratorConfig, generate

WINDOW = timedelta(seconds=60)
WATERMARK = timedelta(seconds=30)


@dataclass(frozen=True)
class Event:
    """One Kafka record of a test stream; `txn` is None for a record that must be refused."""

    key: bytes | None
    value: bytes
    txn: Transaction | None
    reason: str | None = None  # the DLQ reason a bad record must get

    def record(self) -> tuple[bytes | None, bytes, dict[str, bytes]]:
        return self.key, self.value, {"fraud-label": b"0", "fraud-pattern": b""}


def good(txn: Transaction) -> Event:
    return Event(txn.user_id.encode(), transaction_to_json(txn), txn)


def txn(user: str, at: datetime, amount: str, country: str = "FR") -> Transaction:
    return Transaction(
        str(uuid.uuid4()), user, Decimal(amount), "EUR", "Shop", "grocery", country, at
    )


def generated(start: datetime, seed: int, count: int, rate: float = 25.0) -> list[Event]:
    """The producer's own generator with a simulated clock: same seed, same stream."""
    config = GeneratorConfig(start_time=start, rate=rate, seed=seed, count=count)
    return [good(g.transaction) for g in generate(config)]


def edge_cases(t0: datetime) -> list[Event]:
    """Hand-written cases on every threshold; t0 is a window start."""
    s = lambda seconds: t0 + timedelta(seconds=seconds)  # noqa: E731
    cases = [
        txn("edge-amount-3000.00", s(1), "3000.00"),  # not > 3000: no alert
        txn("edge-amount-3000.01", s(2), "3000.01"),  # alert (2)
        *[txn("edge-count-4", s(i), "10.00") for i in range(1, 5)],  # score 0
        *[txn("edge-count-5", s(i), "10.00") for i in range(1, 6)],  # score 1: no alert
        *[txn("edge-count-5-two-countries", s(i), "10.00", "FR") for i in range(1, 5)],
        txn("edge-count-5-two-countries", s(5), "10.00", "DE"),  # 2 + 1 = 3
        txn("edge-window-split", s(59.999), "10.00", "FR"),  # last ms of the window
        txn("edge-window-split", s(60.0), "10.00", "DE"),  # first ms of the next: no alert
        txn("edge-window-same", s(0.0), "10.00", "FR"),
        txn("edge-window-same", s(59.999), "10.00", "DE"),  # same window: alert (2)
    ]
    return [good(t) for t in cases]


def bad_records(t0: datetime) -> list[Event]:
    """Malformed input of every kind, each with the reason the DLQ must give."""
    base = txn("bad-input", t0 + timedelta(seconds=3), "5000.00")
    doc = transaction_to_json(base)
    return [
        Event(b"bad", b"{not json", None, "not_json"),
        Event(b"bad", doc.replace(b'"currency":"EUR",', b""), None, "missing_field"),
        Event(b"bad", doc.replace(b'"amount":5000.0', b'"amount":"5000"'), None, "bad_type"),
        Event(b"bad", doc.replace(b'"amount":5000.0', b'"amount":-5'), None, "bad_amount"),
        Event(b"bad", doc.replace(b'"amount":5000.0', b'"amount":0'), None, "bad_amount"),
        Event(b"bad", doc.replace(b'Z"', b'"').replace(b"T", b" ", 1), None, "bad_timestamp"),
        Event(b"bad", doc.replace(b'"Shop"', b'"\xff\xfeShop"'), None, "not_utf8"),
        Event(b"bad", doc[:-1] + b',"pad":"' + b"x" * 70_000 + b'"}', None, "too_large"),
        Event(b"bad", b"[1,2,3]", None, "not_object"),
        Event(None, b"", None, "empty"),
    ]


@dataclass(frozen=True)
class ExpectedAlert:
    txn_count: int
    distinct_countries: int
    max_amount: Decimal
    total_amount: Decimal
    high_value: bool
    location_change: bool
    high_frequency: bool
    fraud_score: int
    transaction_ids: frozenset[str]


def window_start(at: datetime) -> datetime:
    epoch = int(at.timestamp() // 60) * 60
    return datetime.fromtimestamp(epoch, UTC)


def dedupe(transactions: Iterable[Transaction]) -> list[Transaction]:
    """The first record of each transaction_id, in order. The detector drops a repeat of
    an id while the first one's state lives (until the watermark passes its event_time +
    30 s) and any record behind the watermark: a redelivery (same event_time) is dropped
    either way. A repeat with another event_time could be counted again once the state
    expired; the tests only redeliver, so this reference is exact for them."""
    seen: set[str] = set()
    out = []
    for t in transactions:
        if t.transaction_id not in seen:
            seen.add(t.transaction_id)
            out.append(t)
    return out


def reference_alerts(
    transactions: Iterable[Transaction],
) -> dict[tuple[str, datetime], ExpectedAlert]:
    """The alerts docs/design.md's semantics give for these (already accepted) transactions,
    each transaction_id counted once (`dedupe`)."""
    windows: dict[tuple[str, datetime], list[Transaction]] = defaultdict(list)
    for t in dedupe(transactions):
        windows[(t.user_id, window_start(t.event_time))].append(t)
    alerts = {}
    for key, txns in windows.items():
        max_amount = max(t.amount for t in txns)
        countries = len({t.country for t in txns})
        high_value, location_change, high_frequency = (
            max_amount > 3000,
            countries >= 2,
            len(txns) >= 5,
        )
        score = 2 * high_value + 2 * location_change + 1 * high_frequency
        if score >= 2:
            alerts[key] = ExpectedAlert(
                len(txns),
                countries,
                max_amount,
                sum((t.amount for t in txns), Decimal(0)),
                high_value,
                location_change,
                high_frequency,
                score,
                frozenset(t.transaction_id for t in txns),
            )
    return alerts


def accepted_after_watermark(
    on_time: list[Transaction], late: list[Transaction]
) -> tuple[list[Transaction], list[Transaction]]:
    """Split `late` (sent after `on_time` was fully processed) into kept and dropped: an
    event is dropped when its event_time is at or before the watermark (max event time of
    `on_time` minus 30 s), even if its window is still open (the deduplication, the first
    stateful operator, drops late rows before the windows see them)."""
    watermark = max(t.event_time for t in on_time) - WATERMARK
    kept = [t for t in late if t.event_time > watermark]
    dropped = [t for t in late if t.event_time <= watermark]
    return kept, dropped


def table_alerts(dsn: str) -> dict[tuple[str, datetime], ExpectedAlert]:
    """The alerts table in the reference's terms ({} while the database does not answer)."""
    out = {}
    for key, row in read_table(dsn).items():
        assert row["window_end"] - row["window_start"] == WINDOW, row
        assert row["version"] == row["txn_count"], f"version {row['version']} != txn_count"
        out[key] = ExpectedAlert(
            *(row[f.name] for f in fields(ExpectedAlert) if f.name != "transaction_ids"),
            frozenset(row["transaction_ids"]),
        )
    return out


def e2e_stack(name: str) -> Iterator[Stack]:
    """A fresh stack on free ports under /tmp (PostgreSQL may run as `nobody`)."""
    base = Path(tempfile.mkdtemp(prefix=f"e2e-{name}-", dir="/tmp"))
    stack = Stack(
        base_dir=base,
        ports=Ports.free(),
        scrape_interval="1s",
        detector=DetectorSettings(shuffle_partitions=2, driver_memory="1g"),
    )
    try:
        stack.start_infrastructure(prometheus=name == "exact")
        yield stack
    finally:
        stack.stop()
        keep_logs(base / "logs", name)
        stack.wipe()


def keep_logs(folder: Path, name: str) -> None:
    """Copy the logs in `folder` to the test's outputs (kept with its results), as NAME-*."""
    outputs = os.environ.get("TEST_UNDECLARED_OUTPUTS_DIR")
    if outputs and folder.is_dir():
        for log in folder.iterdir():
            if log.is_file():
                Path(outputs, f"{name}-{log.name}").write_bytes(log.read_bytes())


# --- hostile input at scale -------------------------------------------------------------

# Reasons a transaction cannot get: bad_value applies to integers and alert rules only;
# internal_error is a decoder bug (the parsers are total) no input can be written to cause.
NOT_FOR_TRANSACTIONS = frozenset({Reason.BAD_VALUE, Reason.INTERNAL_ERROR})
BIG_RECORD_BYTES = 2 * 1024 * 1024  # produced with lz4: a few kB on the wire


@dataclass(frozen=True)
class Hostile:
    """A record that must land in the DLQ once, with `reason`; `kind` says what it is."""

    kind: str
    value: bytes
    reason: str
    key: bytes | None = b"hostile"

    def record(self) -> tuple[bytes | None, bytes, dict[str, bytes]]:
        return self.key, self.value, {"fraud-label": b"0", "fraud-pattern": b""}


def _fields(t: Transaction) -> dict[str, object]:
    return json.loads(transaction_to_json(t))


def _text(obj: dict[str, object]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _with(t: Transaction, **changes: object) -> bytes:
    return _text(_fields(t) | changes)


def _hostile_templates(t: Transaction, rng: random.Random) -> list[tuple[str, str, bytes]]:
    """(kind, reason, value) built around the valid transaction `t`."""
    doc = transaction_to_json(t)
    fields = _fields(t)
    future = datetime.now(UTC) + timedelta(minutes=rng.randint(6, 60 * 24 * 365))
    deep = rng.randint(33, 2000)
    return [
        ("empty", "empty", b""),
        ("oversized 70 kB", "too_large", doc[:-1] + b',"pad":"' + b"x" * 70_000 + b'"}'),
        ("not UTF-8", "not_utf8", doc.replace(b'"Shop"', b'"\xff\xfeShop"')),
        ("not UTF-8 (overlong)", "not_utf8", doc.replace(b'"Shop"', b'"\xc0\xafShop"')),
        ("not JSON", "not_json", doc[: rng.randint(1, len(doc) - 2)]),
        ("NaN amount", "not_json", doc.replace(b'"amount":', b'"amount":NaN,"x":', 1)),
        ("Infinity amount", "not_json", _with(t, amount=float("inf"))),
        ("-Infinity amount", "not_json", _with(t, amount=float("-inf"))),
        ("UTF-8 BOM", "not_json", b"\xef\xbb\xbf" + doc),
        ("deep nesting", "too_deep", doc[:-1] + b',"extra":' + b"[" * deep + b"]" * deep + b"}"),
        (
            "deep transaction_id",
            "too_deep",
            b'{"transaction_id":' + b"[" * deep + b"]" * deep + b"}",
        ),
        ("not an object", "not_object", rng.choice([b"[1,2,3]", b'"txn"', b"42", b"null"])),
        ("duplicate key", "duplicate_key", b'{"user_id":"evil",' + doc[1:]),
        ("duplicate key (escaped)", "duplicate_key", b'{"user\\u005fid":"evil",' + doc[1:]),
        (
            "missing field",
            "missing_field",
            _text({k: v for k, v in fields.items() if k != "currency"}),
        ),
        ("wrong type (amount string)", "bad_type", _with(t, amount=str(fields["amount"]))),
        ("wrong type (country number)", "bad_type", _with(t, country=250)),
        ("wrong type (amount true)", "bad_type", _with(t, amount=True)),
        ("long user_id", "too_long", _with(t, user_id="u" * rng.randint(129, 5000))),
        ("long merchant", "too_long", _with(t, merchant="m" * rng.randint(257, 5000))),
        ("control char (NUL)", "control_character", _with(t, user_id="u\x00" + t.user_id)),
        ("control char (bidi)", "control_character", _with(t, merchant="Shop\u202e")),
        ("control char (newline)", "control_character", _with(t, merchant_category="a\nb")),
        ("empty user_id", "empty_field", _with(t, user_id=rng.choice(["", "   "]))),
        ("amount <= 0", "bad_amount", _with(t, amount=rng.choice([0, -5, -0.01]))),
        ("too many decimals", "bad_amount", doc.replace(b'"amount":', b'"amount":1.001,"x":', 1)),
        ("amount too big", "bad_amount", _with(t, amount=10**13)),
        (
            "bad currency",
            "bad_currency",
            _with(t, currency=rng.choice(["XTS", "XXX", "ABC", "eur"])),
        ),
        ("bad country", "bad_country", _with(t, country=rng.choice(["UK", "XK", "ZZ", "fr"]))),
        ("no zone", "bad_timestamp", _with(t, event_time="2026-11-28 17:00:00")),
        ("before 2000", "bad_timestamp", _with(t, event_time="1969-12-31T23:59:59Z")),
        ("impossible date", "bad_timestamp", _with(t, event_time="2026-02-30T00:00:00Z")),
        ("future event_time", "future_event_time", _with(t, event_time=future.isoformat())),
        ("bad UUID", "bad_uuid", _with(t, transaction_id=rng.choice(["not-a-uuid", "1234"]))),
    ]


def hostile_records(t0: datetime, count: int, seed: int) -> list[Hostile]:
    """About `count` hostile records: every template in turn (each around a fresh valid
    transaction of a `hostile-*` user in [t0, t0 + 60 s)), plus one 2 MB compressible
    record. Each record's reason is checked against parse_transaction here, so a wrong
    template fails at once, not after a slow end-to-end run."""
    rng = random.Random(seed)
    out: list[Hostile] = []
    while len(out) < count:
        base = txn(f"hostile-{len(out)}", t0 + timedelta(seconds=rng.uniform(0, 59)), "5000.00")
        for kind, reason, value in _hostile_templates(base, rng):
            out.append(Hostile(kind, value, reason, None if kind == "empty" else b"hostile"))
    big = transaction_to_json(txn("hostile-big", t0, "5000.00"))
    pad = BIG_RECORD_BYTES - len(big)
    out.append(
        Hostile("oversized 2 MB (lz4)", big[:-1] + b',"pad":"' + b"x" * pad + b'"}', "too_large")
    )
    for h in out:
        try:
            parse_transaction(h.value)
        except InvalidRecord as bad:
            assert bad.reason == h.reason, (h.kind, bad, h.value[:100])
        else:
            raise AssertionError(f"{h.kind}: accepted {h.value[:100]!r}")
    return out


def produce_tracked(
    bootstrap: str,
    topic: str,
    records: list[tuple[bytes | None, bytes, dict[str, bytes]]],
    timeout: float = 120.0,
) -> list[tuple[int, int]]:
    """Produce in order (idempotent, lz4, big records allowed), return each record's
    (partition, offset): what the DLQ's source-partition/source-offset headers name."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "linger.ms": 5,
            "compression.type": "lz4",
            "message.max.bytes": 4 * BIG_RECORD_BYTES,  # checked before compression
        }
    )
    where: list[tuple[int, int] | None] = [None] * len(records)
    errors: list[str] = []

    def delivered(i: int):
        def on_delivery(err, msg) -> None:
            if err is not None:
                errors.append(str(err))
            else:
                where[i] = (msg.partition(), msg.offset())

        return on_delivery

    for i, (key, value, headers) in enumerate(records):
        while True:
            try:
                producer.produce(
                    topic,
                    key=key,
                    value=value,
                    headers=list(headers.items()),
                    on_delivery=delivered(i),
                )
                break
            except BufferError:
                producer.poll(0.1)
    remaining = producer.flush(timeout)
    assert not errors and not remaining, f"produce: {errors[:3]}, {remaining} undelivered"
    assert all(w is not None for w in where)
    return [w for w in where if w is not None]
