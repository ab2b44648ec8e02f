"""Tests for JSON log lines: parse every line back and check its fields."""

from __future__ import annotations

import io
import json
import logging
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from libs.logging.structured import JsonFormatter, bind, configure


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.captureWarnings(False)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_stdlib_logging_is_not_shadowed() -> None:
    # The package is libs.logging; `import logging` must still be the standard library.
    assert logging.__file__ is not None
    assert "libs" not in logging.__file__.split("/")[-3:]
    assert hasattr(logging, "LoggerAdapter")


def test_one_json_object_per_line_with_core_fields() -> None:
    out = io.StringIO()
    configure("detector", stream=out)
    before = datetime.now(UTC)
    logging.getLogger("detector.batch").info("processed %d rows", 42)
    logging.getLogger("x").warning("second")
    first, second = lines(out)
    assert list(first)[:5] == ["ts", "level", "service", "logger", "msg"]
    assert first["level"] == "INFO"
    assert first["service"] == "detector"
    assert first["logger"] == "detector.batch"
    assert first["msg"] == "processed 42 rows"
    assert second["level"] == "WARNING"
    ts = first["ts"]
    assert ts.endswith("Z")
    parsed = datetime.fromisoformat(ts)
    assert parsed.tzinfo is not None
    assert abs(parsed - before) < timedelta(seconds=5)
    assert len(ts) == len("2026-11-28T17:00:00.123Z")  # millisecond precision


def test_extra_fields_become_top_level_keys() -> None:
    out = io.StringIO()
    configure("sink", stream=out)
    logging.getLogger("sink").info(
        "written",
        extra={"topic": "fraud_alerts", "partition": 3, "offset": 1234, "amount": Decimal("1.50")},
    )
    (line,) = lines(out)
    assert line["topic"] == "fraud_alerts"
    assert line["partition"] == 3
    assert line["offset"] == 1234
    assert line["amount"] == "1.50"  # non-JSON values are stringified, never an error
    assert "args" not in line
    assert "levelno" not in line


def test_extra_cannot_hide_core_fields() -> None:
    out = io.StringIO()
    configure("sink", stream=out)
    logging.getLogger("sink").info("m", extra={"service": "spoofed", "ts": "x"})
    (line,) = lines(out)
    assert line["service"] == "sink"
    assert line["extra_service"] == "spoofed"
    assert line["extra_ts"] == "x"


def test_exception_text_is_included() -> None:
    out = io.StringIO()
    configure("producer", stream=out)
    try:
        raise RuntimeError("kafka down")
    except RuntimeError:
        logging.getLogger("p").exception("send failed")
    (line,) = lines(out)
    assert line["level"] == "ERROR"
    assert line["msg"] == "send failed"
    assert "Traceback" in line["exc"]
    assert "RuntimeError: kafka down" in line["exc"]


def test_no_exc_key_without_exception() -> None:
    out = io.StringIO()
    configure("producer", stream=out)
    logging.getLogger("p").error("plain")
    assert "exc" not in lines(out)[0]


def test_multiline_message_stays_on_one_line() -> None:
    out = io.StringIO()
    configure("producer", stream=out)
    logging.getLogger("p").info("a\nb")
    assert out.getvalue().count("\n") == 1
    assert lines(out)[0]["msg"] == "a\nb"


def test_level_filtering_and_validation() -> None:
    out = io.StringIO()
    configure("svc", level="warning", stream=out)
    logging.getLogger("svc").info("hidden")
    logging.getLogger("svc").warning("shown")
    assert [line["msg"] for line in lines(out)] == ["shown"]
    with pytest.raises(ValueError, match="level"):
        configure("svc", level="LOUD")


def test_reconfigure_replaces_instead_of_duplicating() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure("svc", stream=first)
    configure("svc", stream=second)
    logging.getLogger("svc").info("once")
    assert first.getvalue() == ""
    assert len(lines(second)) == 1


def test_default_stream_is_current_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    configure("svc")
    logging.getLogger("svc").info("to stderr")
    assert json.loads(capsys.readouterr().err)["msg"] == "to stderr"


def test_warnings_are_logged_as_json() -> None:
    out = io.StringIO()
    configure("svc", stream=out)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("deprecated thing", DeprecationWarning, stacklevel=1)
    (line,) = lines(out)
    assert line["level"] == "WARNING"
    assert "deprecated thing" in line["msg"]


def test_bind_adds_correlation_fields() -> None:
    out = io.StringIO()
    configure("detector", stream=out)
    log = bind(logging.getLogger("detector"), batch_id=7)
    log.info("batch start")
    log.bind(user_id="u1").info("alert", extra={"transaction_id": "t1"})
    log.info("call-site wins", extra={"batch_id": 8})
    start, alert, override = lines(out)
    assert start["batch_id"] == 7
    assert "user_id" not in start
    assert (alert["batch_id"], alert["user_id"], alert["transaction_id"]) == (7, "u1", "t1")
    assert override["batch_id"] == 8


def test_bind_on_adapter_merges_fields() -> None:
    out = io.StringIO()
    configure("sink", stream=out)
    inner = bind(logging.getLogger("sink"), topic="fraud_alerts")
    bind(inner, partition=1).info("m")
    (line,) = lines(out)
    assert (line["topic"], line["partition"]) == ("fraud_alerts", 1)


def test_formatter_works_standalone() -> None:
    record = logging.LogRecord("n", logging.DEBUG, __file__, 1, "x=%s", ("y",), None)
    line = json.loads(JsonFormatter("svc").format(record))
    assert (line["level"], line["msg"], line["service"]) == ("DEBUG", "x=y", "svc")
