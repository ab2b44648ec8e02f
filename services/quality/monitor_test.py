"""The consume loop without a broker: batches, bad records, the alerts-backlog gate, the
report, and the flags. (monitor_integration_test.py runs the binary against Kafka.)"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from infra.testing.alerts import sample_alert
from libs.schemas.alert import alert_to_json
from services.quality.config import parse_settings as parse_args
from services.quality.metrics import QualityMetrics
from services.quality.monitor import WINDOW_MISMATCH, Monitor, book_settings, close_consumer
from services.quality.report import build_report, write_report
from services.quality.scoring_book import ScoringBook

T0 = datetime(2026, 11, 28, 17, 0, tzinfo=UTC)
TX, ALERTS = "transactions", "fraud_alerts"


@dataclass
class FakeMessage:
    """The part of confluent_kafka.Message the monitor uses."""

    _topic: str
    _value: bytes | None = None
    _headers: list[tuple[str, bytes]] | None = None
    _partition: int = 0
    _error: KafkaError | None = None

    def topic(self) -> str:
        return self._topic

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> list[tuple[str, bytes]] | None:
        return self._headers

    def partition(self) -> int:
        return self._partition

    def error(self) -> KafkaError | None:
        return self._error


@dataclass
class FakeConsumer:
    batches: deque[list[FakeMessage]] = field(default_factory=deque)

    def consume(self, num_messages: int, timeout: float) -> list[FakeMessage]:
        return self.batches.popleft() if self.batches else []


def txn(user: str, seconds: float, label: str = "0", pattern: str = "") -> FakeMessage:
    at = (T0 + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")
    value = orjson.dumps({"transaction_id": "x", "user_id": user, "amount": 1.0,
                          "event_time": at})  # fmt: skip
    headers = [("fraud-label", label.encode()), ("fraud-pattern", pattern.encode())]
    return FakeMessage(TX, value, headers)


def alert(user: str, window_seconds: float, width: int = 60, partition: int = 0) -> FakeMessage:
    start = T0 + timedelta(seconds=window_seconds)
    a = sample_alert(user, start, window_end=start + timedelta(seconds=width))
    return FakeMessage(ALERTS, alert_to_json(a), _partition=partition)


def eof(topic: str, partition: int) -> FakeMessage:
    return FakeMessage(topic, _partition=partition, _error=KafkaError(KafkaError._PARTITION_EOF))


def monitor(*batches: list[FakeMessage]) -> Monitor:
    args = parse_args([], environ={})
    m = Monitor(
        FakeConsumer(deque(batches)),  # type: ignore[arg-type]
        ScoringBook(book_settings(args)),
        QualityMetrics(),
        transactions_topic=TX,
        alerts_topic=ALERTS,
        batch_size=1000,
    )
    m.on_assign(None, [TopicPartition(TX, 0), TopicPartition(ALERTS, 0),  # type: ignore[arg-type]
                       TopicPartition(ALERTS, 1)])  # fmt: skip
    return m


def test_scoring_waits_until_every_alerts_partition_was_read_to_its_end() -> None:
    # A replay: transactions read far ahead; the alerts for window 0 come later.
    m = monitor(
        [txn("u", 1, "1", "high_amount"), txn("clock", 500)],
        [eof(ALERTS, 0)],
        [alert("u", 0, partition=1), eof(ALERTS, 1)],
        [txn("clock", 501)],
    )
    m.poll(0)
    m.poll(0)
    assert not m.alerts_caught_up
    assert m.book.open_windows == 1  # held: clock says final, alerts not read yet
    m.poll(0)
    assert m.alerts_caught_up
    t = m.book.totals()
    assert (t.true_positives, t.false_negatives, t.late_alerts) == (1, 0, 0)
    m.poll(0)
    assert m.metrics.snapshot.totals.true_positives == 1


def test_after_catch_up_windows_close_by_the_event_time_clock() -> None:
    m = monitor(
        [eof(ALERTS, 0), eof(ALERTS, 1)],
        [txn("u", 1, "1", "rapid_fire"), txn("clock", 104)],
        [txn("clock", 105)],
        [alert("u", 0)],
    )
    m.poll(0)
    m.poll(0)
    assert m.book.open_windows == 1
    m.poll(0)
    assert m.book.open_windows == 0
    m.poll(0)
    t = m.book.totals()
    assert (t.false_negatives, t.late_alerts) == (1, 1)


def test_reassignment_resets_the_gate() -> None:
    m = monitor([eof(ALERTS, 0), eof(ALERTS, 1)])
    m.poll(0)
    assert m.alerts_caught_up
    m.on_revoke(None, [])  # type: ignore[arg-type]
    assert not m.alerts_caught_up
    m.on_assign(None, [TopicPartition(ALERTS, 1)])  # type: ignore[arg-type]
    m.handle([eof(ALERTS, 0)])  # type: ignore[list-item]
    assert not m.alerts_caught_up
    m.handle([eof(ALERTS, 1)])  # type: ignore[list-item]
    assert m.alerts_caught_up


def test_bad_records_are_counted_and_skipped() -> None:
    m = monitor(
        [
            FakeMessage(TX, b"{not json", [("fraud-label", b"1")]),
            FakeMessage(TX, None),
            FakeMessage(ALERTS, b"[]"),
            alert("u", 0, width=30),
            alert("u", 30),  # 60 s long but not aligned
            txn("ok", 1),
        ]
    )
    m.poll(0)
    assert m.bad_records == {
        (TX, "not_json"): 1,
        (TX, "empty"): 1,
        (ALERTS, "not_object"): 1,
        (ALERTS, WINDOW_MISMATCH): 2,
    }
    t = m.metrics.snapshot.totals
    assert t.transactions == {"0": 1}
    assert t.alerts == 0
    assert m.transactions_read == 1
    assert m.metrics.snapshot.bad_records == m.bad_records


def test_consumer_errors_are_logged_not_fatal_unless_fatal() -> None:
    m = monitor([FakeMessage(TX, _error=KafkaError(KafkaError._TRANSPORT))])
    m.poll(0)
    fatal = FakeMessage(TX, _error=KafkaError(KafkaError._FATAL, "boom", fatal=True))
    with pytest.raises(KafkaException):
        m.handle([fatal])  # type: ignore[list-item]


def test_finish_scores_everything_open() -> None:
    m = monitor([txn("u", 1, "1", "high_amount"), txn("v", 2, "1", "country_hop"),
                 alert("v", 0)])  # fmt: skip
    m.poll(0)
    assert m.book.open_windows == 2
    t = m.finish()
    assert (t.true_positives, t.false_negatives, t.open_windows) == (1, 1, 0)
    assert m.metrics.snapshot.totals == t


def test_report_document(tmp_path: Path) -> None:
    m = monitor(
        [
            txn("a", 1, "1", "high_amount"),
            txn("a", 2, "1", "rapid_fire"),
            txn("b", 3, "1", "rapid_fire"),
            txn("c", 4, "0"),
            alert("a", 0),
            alert("c", 0),
            FakeMessage(TX, b"nope"),
        ]
    )
    m.poll(0)
    totals = m.finish()
    report = build_report(totals, settings=m.book.settings, bad_records=m.bad_records,
                          stopped_by="SIGTERM", elapsed_seconds=1.23456,
                          transactions_read=m.transactions_read, active_rate=None)  # fmt: skip
    path = tmp_path / "out" / "report.json"
    write_report(path, report)
    assert [p.name for p in path.parent.iterdir()] == ["report.json"]  # no temp file left
    doc = orjson.loads(path.read_bytes())
    assert doc == {
        "service": "quality",
        "stopped_by": "SIGTERM",
        "settings": {"window_seconds": 60, "watermark_seconds": 30.0, "grace_seconds": 15.0},
        "totals": {
            "true_positives": 1,
            "false_positives": 1,
            "false_negatives": 1,
            "transactions": {"0": 1, "1": 3},
            "alerts": 2,
            "late_alerts": 0,
            "late_transactions": 0,
            "alerts_before_view": 0,
            "bad_records": {"transactions": {"not_json": 1}},
        },
        "precision": 0.5,
        "recall": 0.5,
        "patterns": {
            "high_amount": {"fraud_windows": 1, "detected_windows": 1, "recall": 1.0},
            "rapid_fire": {"fraud_windows": 2, "detected_windows": 1, "recall": 0.5},
        },
        "event_clock": "2026-11-28T17:00:04Z",
        "throughput": {
            "transactions_read": 4,
            "elapsed_seconds": 1.235,
            "transactions_per_second": None,
        },
    }


def test_report_without_anything_scored_uses_null_ratios() -> None:
    m = monitor()
    report = build_report(m.finish(), settings=m.book.settings, bad_records={},
                          stopped_by="SIGINT", elapsed_seconds=0.0, transactions_read=0,
                          active_rate=None)  # fmt: skip
    assert report["precision"] is None and report["recall"] is None
    assert report["event_clock"] is None
    assert report["patterns"] == {}
    json.dumps(report, allow_nan=False)  # strict JSON: no NaN, no datetimes


def test_flag_defaults() -> None:
    args = parse_args([], environ={})
    assert args.bootstrap_servers == "localhost:9092"
    assert (args.transactions_topic, args.alerts_topic) == ("transactions", "fraud_alerts")
    assert args.group_id == "fraud-quality"
    assert (args.window_seconds, args.watermark_seconds, args.grace_seconds) == (60, 30.0, 15.0)
    assert args.metrics_port == 8003
    assert args.report_file == ""
    assert args.batch_size >= 1000


def test_flags_from_environment_and_command_line() -> None:
    environ = {
        "KAFKA_BOOTSTRAP_SERVERS": "k:1",
        "FRAUD_QUALITY_METRICS_PORT": "9100",
        "FRAUD_QUALITY_GRACE_SECONDS": "5",
        "FRAUD_QUALITY_REPORT_FILE": "/tmp/r.json",
    }
    args = parse_args(["--grace-seconds", "0", "--window-seconds", "30"], environ=environ)
    assert args.bootstrap_servers == "k:1"
    assert args.metrics_port == 9100
    assert args.grace_seconds == 0.0
    assert args.window_seconds == 30
    assert args.report_file == "/tmp/r.json"


@pytest.mark.parametrize(
    "argv",
    [
        ["--window-seconds", "0"],
        ["--watermark-seconds", "-1"],
        ["--grace-seconds", "nan"],
        ["--batch-size", "0"],
        ["--offset-reset", "middle"],
    ],
)
def test_bad_flags_are_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(argv, environ={})


def test_help_names_every_variable(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--help"], environ={})
    text = capsys.readouterr().out
    for var in ("KAFKA_BOOTSTRAP_SERVERS", "FRAUD_QUALITY_METRICS_PORT",
                "FRAUD_QUALITY_WINDOW_SECONDS", "FRAUD_QUALITY_WATERMARK_SECONDS",
                "FRAUD_QUALITY_GRACE_SECONDS", "FRAUD_QUALITY_REPORT_FILE",
                "FRAUD_LOG_LEVEL"):  # fmt: skip
        assert var in text


class _BlockingClose:
    """A consumer whose close() blocks like librdkafka's with the broker gone."""

    def __init__(self, blocks: bool) -> None:
        self.released = threading.Event()
        self.closed = threading.Event()
        if not blocks:
            self.released.set()

    def close(self) -> None:
        self.released.wait(60)
        self.closed.set()


def test_close_is_given_up_after_the_close_timeout() -> None:
    consumer = _BlockingClose(blocks=True)
    started = time.monotonic()
    assert close_consumer(consumer, 0.2) is False
    assert 0.2 <= time.monotonic() - started < 5
    consumer.released.set()
    assert consumer.closed.wait(5)


def test_close_that_finishes_in_time_is_waited_for() -> None:
    consumer = _BlockingClose(blocks=False)
    assert close_consumer(consumer, 5) is True
    assert consumer.closed.is_set()
