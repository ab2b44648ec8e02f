"""Scoring configuration: thresholds, weights and alert threshold, parsed once at the edge.

Every field can come from a command-line flag or, failing that, from an environment
variable `FRAUD_<FIELD_NAME>` (e.g. `--high-value-amount` / `FRAUD_HIGH_VALUE_AMOUNT`),
or else the default below. Flag and variable names are derived from the field names so
they cannot drift apart.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

ENV_PREFIX = "FRAUD_"

_HELP: dict[str, str] = {
    "high_value_amount": "flag high_value when max_amount > this (exact decimal)",
    "location_change_countries": "flag location_change when distinct_countries >= this",
    "high_frequency_count": "flag high_frequency when txn_count >= this",
    "high_value_weight": "score points for high_value",
    "location_change_weight": "score points for location_change",
    "high_frequency_weight": "score points for high_frequency",
    "alert_threshold": "a window is an alert when fraud_score >= this",
    "rule_version": "recorded in every alert; change it whenever rules or settings change",
}


@dataclass(frozen=True, slots=True)
class ScoringConfig:
    """Rule thresholds and weights (defaults are the documented detection semantics)."""

    high_value_amount: Decimal = Decimal(3000)
    location_change_countries: int = 2
    high_frequency_count: int = 5
    high_value_weight: int = 2
    location_change_weight: int = 2
    high_frequency_weight: int = 1
    alert_threshold: int = 2
    rule_version: str = "v1"

    def __post_init__(self) -> None:
        amount = self.high_value_amount
        if isinstance(amount, bool) or not isinstance(amount, Decimal | int | float | str):
            raise TypeError(f"high_value_amount={amount!r} must be a Decimal, int or str")
        # Via str(): a float 3000.01 becomes Decimal("3000.01"), not its binary expansion.
        object.__setattr__(self, "high_value_amount", _parse_decimal(str(amount)))
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
    def from_env(cls, env: Mapping[str, str] | None = None) -> ScoringConfig:
        """Defaults overridden by `FRAUD_*` variables; a bad value raises ValueError naming it."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            name = env_var(f.name)
            if name in env:
                try:
                    values[f.name] = _parser_for(f.name)(env[name])
                except ValueError as err:
                    raise ValueError(f"{name}={env[name]!r}: {err}") from None
        return cls(**values)


def env_var(field_name: str) -> str:
    """Environment variable for a config field, e.g. FRAUD_HIGH_VALUE_AMOUNT."""
    return ENV_PREFIX + field_name.upper()


def _parse_decimal(text: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a decimal number") from None
    if not value.is_finite():
        raise ValueError(f"{text!r} must be finite")
    return value


def _parse_int(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not an integer") from None


def _parse_str(text: str) -> str:
    return text


def _parser_for(field_name: str) -> Callable[[str], Any]:
    default = ScoringConfig.__dataclass_fields__[field_name].default
    if isinstance(default, Decimal):
        return _parse_decimal
    if isinstance(default, int):
        return _parse_int
    return _parse_str


def _argparse_type(parse: Callable[[str], Any], label: str) -> Callable[[str], Any]:
    """Adapt a parser so argparse reports `invalid <label> value: '...'`."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    convert.__name__ = label
    return convert


def add_scoring_args(
    parser: argparse.ArgumentParser, env: Mapping[str, str] | None = None
) -> argparse.ArgumentParser:
    """Add one `--flag` per config field to `parser`, defaulting to `FRAUD_*` or the default."""
    env = os.environ if env is None else env
    group = parser.add_argument_group("scoring rules")
    for f in dataclasses.fields(ScoringConfig):
        var = env_var(f.name)
        # A string default is run through `type` by argparse, so a bad env value is
        # reported like a bad flag value.
        default = env.get(var, str(f.default))
        group.add_argument(
            "--" + f.name.replace("_", "-"),
            dest=f.name,
            type=_argparse_type(_parser_for(f.name), f.name),
            default=default,
            help=f"{_HELP[f.name]} (env {var}, default {f.default})",
        )
    return parser


def config_from_args(ns: argparse.Namespace) -> ScoringConfig:
    """Build the config from a namespace parsed with `add_scoring_args`."""
    return ScoringConfig(**{f.name: getattr(ns, f.name) for f in dataclasses.fields(ScoringConfig)})
