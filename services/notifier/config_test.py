"""The notifier's settings: defaults, FRAUD_NOTIFIER_* variables, --help."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.notifier.config import parse_config


def test_defaults_and_environment():
    config = parse_config([], {})
    assert config.min_score == 4 and config.dlq_topic == "notifications.dlq"
    assert config.metrics_port == 8004 and config.group_id == "fraud-notifier"
    config = parse_config(
        ["--min-score", "5"],
        {"FRAUD_NOTIFIER_DESTINATIONS": "/etc/n.yaml", "FRAUD_NOTIFIER_MIN_SCORE": "2"},
    )
    assert config.destinations == Path("/etc/n.yaml") and config.min_score == 5  # flag wins


def test_help_names_the_variables(capsys):
    with pytest.raises(SystemExit):
        parse_config(["--help"], {})
    out = capsys.readouterr().out
    for name in (
        "FRAUD_NOTIFIER_DESTINATIONS",
        "FRAUD_NOTIFIER_MAX_ATTEMPTS",
        "KAFKA_BOOTSTRAP_SERVERS",
    ):
        assert name in out


def test_inconsistent_retry_delays_are_refused(capsys):
    with pytest.raises(SystemExit):
        parse_config(["--retry-initial-ms", "5000", "--retry-max-ms", "100"], {})
    assert "--retry-initial-ms must be <= --retry-max-ms" in capsys.readouterr().err
