"""The producer's settings: defaults, environment, flags, refusals, --help."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from libs.cli.settings import env_names
from services.producer.config import SERVICE, ProducerSettings, parse_settings
from services.producer.generator import PATTERNS, RAPID_FIRE

START = datetime(2026, 11, 28, 17, 0, tzinfo=UTC)


def test_defaults():
    s = parse_settings([], environ={})
    assert (s.bootstrap_servers, s.topic) == ("localhost:9092", "transactions")
    assert (s.rate, s.duration, s.count, s.seed) == (100.0, 0.0, 0, None)
    assert (s.fraud_ratio, s.patterns, s.compression) == (0.10, PATTERNS, "lz4")
    assert (s.metrics_port, s.log_level) == (8000, "INFO")


def test_environment_then_flags():
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": "kafka:19092",
        "FRAUD_PRODUCER_RATE": "1000",
        "FRAUD_PRODUCER_DURATION": "0",
        "FRAUD_PRODUCER_PATTERNS": "rapid_fire",
        "FRAUD_LOG_LEVEL": "debug",
    }
    s = parse_settings(["--rate", "5", "--seed", "9"], environ=env)
    assert s.bootstrap_servers == "kafka:19092"
    assert (s.rate, s.seed, s.patterns, s.log_level) == (5.0, 9, (RAPID_FIRE,), "DEBUG")


@pytest.mark.parametrize(
    "argv",
    [
        ["--rate", "0"],
        ["--duration", "-1"],
        ["--fraud-ratio", "1"],
        ["--patterns", "nope"],
        ["--compression", "brotli"],
        ["--log-level", "LOUD"],
    ],
)
def test_bad_values_are_refused(argv, capsys):
    with pytest.raises(SystemExit):
        parse_settings(argv, environ={})
    assert "error" in capsys.readouterr().err


def test_bad_variable_names_itself(capsys):
    with pytest.raises(SystemExit):
        parse_settings([], environ={"FRAUD_PRODUCER_COUNT": "-3"})
    assert "FRAUD_PRODUCER_COUNT='-3' is invalid" in capsys.readouterr().err


def test_duration_becomes_a_count_at_the_rate():
    s = parse_settings(["--rate", "10", "--duration", "2.05", "--count", "100"], environ={})
    assert s.generator_config(START, seed=1).count == 21
    assert parse_settings([], environ={}).generator_config(START, seed=1).count is None


def test_help_names_every_variable(capsys):
    with pytest.raises(SystemExit):
        parse_settings(["--help"], environ={})
    text = " ".join(capsys.readouterr().out.split())
    for var in env_names(ProducerSettings, SERVICE).values():
        assert f"[env {var};" in text, var
    assert "[env FRAUD_PRODUCER_RATE; default: 100.0]" in text
