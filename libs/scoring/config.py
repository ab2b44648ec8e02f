"""Scoring configuration: thresholds, weights and alert threshold, parsed once at the edge.

Each field is a setting (libs/cli/settings.py): flag `--high-value-amount`, variable
`FRAUD_DETECTOR_HIGH_VALUE_AMOUNT` (the detector is the service that applies the rules),
else the default below, so flag, variable and default cannot drift apart. A service
that embeds the rules in its own settings uses `section(ScoringConfig, ...)` and gets
the same flags under its own variable prefix.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from libs.cli.settings import (
    SettingsError,
    add_arguments,
    env_name,
    from_namespace,
    parse_decimal,
    setting,
)

SERVICE = "DETECTOR"
GROUP = "scoring rules"


@dataclass(frozen=True, slots=True)
class ScoringConfig:
    """Rule thresholds and weights (defaults are the documented detection semantics)."""

    high_value_amount: Decimal = setting(
        Decimal(3000), help="flag high_value when max_amount > this (exact decimal)"
    )
    location_change_countries: int = setting(
        2, help="flag location_change when distinct_countries >= this"
    )
    high_frequency_count: int = setting(5, help="flag high_frequency when txn_count >= this")
    high_value_weight: int = setting(2, help="score points for high_value")
    location_change_weight: int = setting(2, help="score points for location_change")
    high_frequency_weight: int = setting(1, help="score points for high_frequency")
    alert_threshold: int = setting(2, help="a window is an alert when fraud_score >= this")
    rule_version: str = setting(
        "v1", help="recorded in every alert; change it whenever rules or settings change"
    )

    def __post_init__(self) -> None:
        amount = self.high_value_amount
        if isinstance(amount, bool) or not isinstance(amount, Decimal | int | float | str):
            raise TypeError(f"high_value_amount={amount!r} must be a Decimal, int or str")
        # Via str(): a float 3000.01 becomes Decimal("3000.01"), not its binary expansion.
        try:
            exact = parse_decimal(str(amount))
        except argparse.ArgumentTypeError as err:
            raise ValueError(f"high_value_amount: {err}") from None
        object.__setattr__(self, "high_value_amount", exact)
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "rule_version":
                if not isinstance(value, str) or not value.strip():
                    raise ValueError(f"rule_version={value!r} must be a non-empty string")
            elif f.name != "high_value_amount" and (
                isinstance(value, bool) or not isinstance(value, int)
            ):
                raise TypeError(f"{f.name}={value!r} must be an int")
            elif value < 0:
                raise ValueError(f"{f.name}={value} must be >= 0")
        if self.alert_threshold < 1:
            raise ValueError(
                f"alert_threshold={self.alert_threshold} must be >= 1 "
                "(0 would make every window an alert)"
            )

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, service: str = SERVICE
    ) -> ScoringConfig:
        """Defaults overridden by the variables; a bad value raises ValueError naming it."""
        parser = argparse.ArgumentParser(add_help=False)
        add_arguments(parser, cls, service, env)
        return from_namespace(cls, parser.parse_args([]))


def env_var(field_name: str, service: str = SERVICE) -> str:
    """Environment variable for a config field, e.g. FRAUD_DETECTOR_HIGH_VALUE_AMOUNT."""
    return env_name(service, field_name)


def add_scoring_args(
    parser: argparse.ArgumentParser,
    env: Mapping[str, str] | None = None,
    service: str = SERVICE,
) -> argparse.ArgumentParser:
    """Add one `--flag` per config field to `parser` (group "scoring rules"), defaulting to
    its variable or the default; a bad variable is a usage error naming it."""
    try:
        add_arguments(parser, ScoringConfig, service, env, group=GROUP)
    except SettingsError as err:
        parser.error(str(err))
    return parser


def config_from_args(ns: argparse.Namespace) -> ScoringConfig:
    """Build the config from a namespace parsed with `add_scoring_args`."""
    return from_namespace(ScoringConfig, ns)
