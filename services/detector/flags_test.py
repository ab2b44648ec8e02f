"""The detector's flags: --max-future-skew parses durations (flag > env > default) and the
default master keeps task retries; both are documented in --help."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.detector.config import parse_settings


def test_defaults_keep_retries_and_a_five_minute_skew(monkeypatch):
    monkeypatch.delenv("SPARK_MASTER", raising=False)
    monkeypatch.delenv("FRAUD_DETECTOR_MAX_FUTURE_SKEW", raising=False)
    args = parse_settings([])
    assert args.spark_master == "local[*,4]"
    assert args.max_future_skew == timedelta(minutes=5)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("300 seconds", timedelta(minutes=5)),
        ("1 second", timedelta(seconds=1)),
        ("2.5 minutes", timedelta(seconds=150)),
        ("1 hour", timedelta(hours=1)),
    ],
)
def test_skew_from_the_flag_or_the_environment(monkeypatch, text, expected):
    assert parse_settings(["--max-future-skew", text]).max_future_skew == expected
    monkeypatch.setenv("FRAUD_DETECTOR_MAX_FUTURE_SKEW", text)
    assert parse_settings([]).max_future_skew == expected


@pytest.mark.parametrize("text", ["5", "five minutes", "5 days", "-1 seconds", ""])
def test_a_bad_skew_is_refused_with_the_expected_form(monkeypatch, capsys, text):
    with pytest.raises(SystemExit):
        parse_settings(["--max-future-skew", text])
    assert "is not a duration like '300 seconds'" in capsys.readouterr().err
    monkeypatch.setenv("FRAUD_DETECTOR_MAX_FUTURE_SKEW", text)
    with pytest.raises(SystemExit):
        parse_settings([])
    assert "FRAUD_DETECTOR_MAX_FUTURE_SKEW" in capsys.readouterr().err


def test_help_names_the_flags_and_their_variables(capsys):
    with pytest.raises(SystemExit):
        parse_settings(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert (
        "--max-future-skew" in text
        and "FRAUD_DETECTOR_MAX_FUTURE_SKEW; default: 300 seconds" in text
    )
    assert "future_event_time" in text
    assert "local[N,F]" in text and "default: local[*,4]" in text
