"""Tests for ScoringConfig validation, env variables and the argparse helpers."""

from __future__ import annotations

import argparse
import dataclasses
from decimal import Decimal

import pytest

from libs.scoring.config import (
    ScoringConfig,
    add_scoring_args,
    config_from_args,
    env_var,
)

ENV_NAMES = {
    "high_value_amount": "FRAUD_DETECTOR_HIGH_VALUE_AMOUNT",
    "location_change_countries": "FRAUD_DETECTOR_LOCATION_CHANGE_COUNTRIES",
    "high_frequency_count": "FRAUD_DETECTOR_HIGH_FREQUENCY_COUNT",
    "high_value_weight": "FRAUD_DETECTOR_HIGH_VALUE_WEIGHT",
    "location_change_weight": "FRAUD_DETECTOR_LOCATION_CHANGE_WEIGHT",
    "high_frequency_weight": "FRAUD_DETECTOR_HIGH_FREQUENCY_WEIGHT",
    "alert_threshold": "FRAUD_DETECTOR_ALERT_THRESHOLD",
    "rule_version": "FRAUD_DETECTOR_RULE_VERSION",
}


def test_env_var_names() -> None:
    assert {f.name: env_var(f.name) for f in dataclasses.fields(ScoringConfig)} == ENV_NAMES
    assert env_var("alert_threshold", "QUALITY") == "FRAUD_QUALITY_ALERT_THRESHOLD"


def test_high_value_amount_is_coerced_to_exact_decimal() -> None:
    assert ScoringConfig(high_value_amount=3000).high_value_amount == Decimal(3000)  # type: ignore[arg-type]
    assert ScoringConfig(high_value_amount="3000.01").high_value_amount == Decimal("3000.01")  # type: ignore[arg-type]
    # A float goes through str(), so it is the decimal the user wrote, not 3000.0100000000002.
    assert ScoringConfig(high_value_amount=3000.01).high_value_amount == Decimal("3000.01")  # type: ignore[arg-type]
    assert isinstance(ScoringConfig(high_value_amount=1).high_value_amount, Decimal)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"high_value_amount": "abc"}, ValueError),
        ({"high_value_amount": "NaN"}, ValueError),
        ({"high_value_amount": -1}, ValueError),
        ({"high_value_amount": True}, TypeError),
        ({"high_frequency_count": 2.5}, TypeError),
        ({"high_frequency_count": True}, TypeError),
        ({"high_value_weight": -1}, ValueError),
        ({"alert_threshold": 0}, ValueError),
        ({"rule_version": ""}, ValueError),
        ({"rule_version": 1}, ValueError),
    ],
)
def test_invalid_config(kwargs: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        ScoringConfig(**kwargs)  # type: ignore[arg-type]


def test_from_env_defaults_when_unset() -> None:
    assert ScoringConfig.from_env({}) == ScoringConfig()


def test_from_env_reads_every_field() -> None:
    env = {
        "FRAUD_DETECTOR_HIGH_VALUE_AMOUNT": "2500.50",
        "FRAUD_DETECTOR_LOCATION_CHANGE_COUNTRIES": "3",
        "FRAUD_DETECTOR_HIGH_FREQUENCY_COUNT": " 10 ",
        "FRAUD_DETECTOR_HIGH_VALUE_WEIGHT": "4",
        "FRAUD_DETECTOR_LOCATION_CHANGE_WEIGHT": "1",
        "FRAUD_DETECTOR_HIGH_FREQUENCY_WEIGHT": "0",
        "FRAUD_DETECTOR_ALERT_THRESHOLD": "3",
        "FRAUD_DETECTOR_RULE_VERSION": "2026-11",
        "UNRELATED": "x",
    }
    assert ScoringConfig.from_env(env) == ScoringConfig(
        high_value_amount=Decimal("2500.50"),
        location_change_countries=3,
        high_frequency_count=10,
        high_value_weight=4,
        location_change_weight=1,
        high_frequency_weight=0,
        alert_threshold=3,
        rule_version="2026-11",
    )


def test_from_env_uses_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAUD_DETECTOR_ALERT_THRESHOLD", "4")
    assert ScoringConfig.from_env().alert_threshold == 4


def test_from_env_error_names_the_variable() -> None:
    with pytest.raises(ValueError, match="FRAUD_DETECTOR_HIGH_FREQUENCY_COUNT='five'"):
        ScoringConfig.from_env({"FRAUD_DETECTOR_HIGH_FREQUENCY_COUNT": "five"})


def parse(argv: list[str], env: dict[str, str] | None = None) -> ScoringConfig:
    parser = add_scoring_args(argparse.ArgumentParser(prog="detector"), env=env or {})
    return config_from_args(parser.parse_args(argv))


def test_args_default_to_config_defaults() -> None:
    assert parse([]) == ScoringConfig()


def test_flags_override_env_which_overrides_defaults() -> None:
    env = {"FRAUD_DETECTOR_HIGH_VALUE_AMOUNT": "1000", "FRAUD_DETECTOR_ALERT_THRESHOLD": "3"}
    config = parse(["--high-value-amount", "2000.25"], env)
    assert config.high_value_amount == Decimal("2000.25")
    assert config.alert_threshold == 3  # from env
    assert config.high_frequency_count == 5  # default


def test_every_field_has_a_flag() -> None:
    config = parse(
        [
            "--high-value-amount=1",
            "--location-change-countries=3",
            "--high-frequency-count=4",
            "--high-value-weight=5",
            "--location-change-weight=6",
            "--high-frequency-weight=7",
            "--alert-threshold=8",
            "--rule-version=x",
        ]
    )
    assert dataclasses.astuple(config) == (Decimal(1), 3, 4, 5, 6, 7, 8, "x")


def test_bad_flag_and_bad_env_are_argparse_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse(["--high-frequency-count", "many"])
    assert "--high-frequency-count" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse([], {"FRAUD_DETECTOR_HIGH_VALUE_AMOUNT": "lots"})
    assert "'lots' is not a decimal number" in capsys.readouterr().err


def test_invalid_combination_is_reported_by_config_from_args() -> None:
    with pytest.raises(ValueError, match="alert_threshold"):
        parse(["--alert-threshold", "0"])


def test_help_documents_env_vars_and_defaults() -> None:
    parser = add_scoring_args(argparse.ArgumentParser(), env={})
    text = parser.format_help()
    for name in ENV_NAMES.values():
        assert name in text
    assert "default: 3000]" in " ".join(text.split())
