"""Flag > environment > default, and --help names the variable."""

from __future__ import annotations

import argparse

import pytest

from libs.cli.flags import flag, switch
from libs.cli.settings import positive_float


def _parser(environ: dict[str, str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="svc")
    flag(
        parser,
        "--rate",
        env="SVC_RATE",
        default=10.0,
        type=positive_float,
        help="tx/s",
        environ=environ,
    )
    switch(parser, "--dry-run", env="SVC_DRY_RUN", help="do nothing", environ=environ)
    return parser


def test_default_when_nothing_is_set():
    ns = _parser({}).parse_args([])
    assert ns.rate == 10.0 and ns.dry_run is False


def test_environment_overrides_default_and_flag_overrides_environment():
    assert _parser({"SVC_RATE": "25"}).parse_args([]).rate == 25.0
    assert _parser({"SVC_RATE": "25"}).parse_args(["--rate", "7"]).rate == 7.0
    assert _parser({"SVC_DRY_RUN": "true"}).parse_args([]).dry_run is True


def test_bad_environment_value_names_the_variable():
    with pytest.raises(SystemExit, match=r"\$SVC_RATE='-1' is invalid"):
        _parser({"SVC_RATE": "-1"})


def test_help_documents_variable_and_default():
    text = _parser({}).format_help()
    assert "[env SVC_RATE; default: 10.0]" in text and "[env SVC_DRY_RUN]" in text
