"""Command-line flags with environment-variable fallbacks, documented in --help.

Why: every service is configured the same way (flag > environment > default), and its
--help must name each variable, so one helper builds all of them.

A service declares its settings as a dataclass with libs/cli/settings.py instead (the
producer, the sink and the quality monitor do); `flag`/`switch` remain for the detector
and the infra tools until they move.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def flag(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    name: str,
    *,
    env: str,
    default: Any,
    help: str,
    type: Callable[[str], Any] = str,
    choices: Sequence[Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Add `--name` whose default is $env if set, else `default`.

    A value from the environment goes through `type` like a command-line value, so a bad
    variable is reported as clearly as a bad flag.
    """
    environ = os.environ if environ is None else environ
    raw = environ.get(env)
    value = default if raw is None else raw
    if isinstance(value, str) and type is not str:
        value = _convert(type, value, f"${env}")
    parser.add_argument(
        name,
        type=type,
        default=value,
        choices=choices,
        help=f"{help} [env {env}; default: {default}]",
    )


def switch(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    name: str,
    *,
    env: str,
    help: str,
    environ: Mapping[str, str] | None = None,
) -> None:
    """A boolean `--name`, also set by $env in {1, true, yes, on}."""
    environ = os.environ if environ is None else environ
    default = environ.get(env, "").strip().lower() in {"1", "true", "yes", "on"}
    parser.add_argument(name, action="store_true", default=default, help=f"{help} [env {env}]")


def _convert(type_: Callable[[str], Any], text: str, where: str) -> Any:
    try:
        return type_(text)
    except (ValueError, argparse.ArgumentTypeError) as err:
        raise SystemExit(f"error: {where}={text!r} is invalid: {err}") from None
