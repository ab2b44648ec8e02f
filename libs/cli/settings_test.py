"""Settings from a dataclass: names, precedence, types, choices, bools, secrets, errors."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

from libs.cli.settings import (
    SHARED_ENV,
    add_arguments,
    build_parser,
    env_name,
    env_names,
    from_namespace,
    loggable,
    non_negative_int,
    parse,
    positive_float,
    section,
    setting,
)


@dataclass(frozen=True)
class Inner:
    threshold: Decimal = setting(Decimal("3000"), help="amount threshold")
    weight: int = setting(2, help="points", group="rules")


@dataclass(frozen=True)
class Svc:
    bootstrap_servers: str = setting("localhost:9092", help="brokers", group="Kafka")
    rate: float = setting(10.0, type=positive_float, help="tx per 100% of time")
    count: int = setting(0, type=non_negative_int, help="stop after this many")
    seed: int | None = setting(None, help="seed (unset: random)")
    mode: str = setting("fast", choices=("fast", "slow"), help="how")
    dry_run: bool = setting(False, help="do nothing")
    out: Path = setting(Path("/tmp/out"), help="where")
    tags: tuple[str, ...] = setting(("a", "b"), type=lambda t: tuple(t.split(",")), help="labels")
    token: str = setting("", secret=True, help="API token")
    rules: Inner = section(Inner, "scoring")

    def __post_init__(self) -> None:
        if self.mode == "slow" and self.rate > 100:
            raise ValueError(f"--rate={self.rate} is too fast for --mode=slow")


def run(argv: list[str], env: dict[str, str] | None = None) -> Svc:
    return parse(Svc, "SVC", argv, env or {}, prog="svc", description="a test service")


def test_variable_names_follow_the_scheme_with_the_shared_exceptions():
    assert env_names(Svc, "SVC") == {
        "bootstrap_servers": "KAFKA_BOOTSTRAP_SERVERS",
        "rate": "FRAUD_SVC_RATE",
        "count": "FRAUD_SVC_COUNT",
        "seed": "FRAUD_SVC_SEED",
        "mode": "FRAUD_SVC_MODE",
        "dry_run": "FRAUD_SVC_DRY_RUN",
        "out": "FRAUD_SVC_OUT",
        "tags": "FRAUD_SVC_TAGS",
        "token": "FRAUD_SVC_TOKEN",
        "threshold": "FRAUD_SVC_THRESHOLD",
        "weight": "FRAUD_SVC_WEIGHT",
    }
    assert env_name("sink", "postgres_dsn") == SHARED_ENV["postgres_dsn"] == "FRAUD_POSTGRES_DSN"
    assert env_name("sink", "log_level") == "FRAUD_LOG_LEVEL"
    with pytest.raises(ValueError, match="service"):
        env_name("", "rate")


def test_defaults_when_nothing_is_set():
    s = run([])
    assert s == Svc()
    assert (s.rate, s.count, s.seed, s.mode, s.dry_run) == (10.0, 0, None, "fast", False)
    assert s.rules == Inner() and s.rules.threshold == Decimal(3000)


def test_flag_beats_environment_beats_default():
    env = {"FRAUD_SVC_RATE": "25", "FRAUD_SVC_COUNT": "3", "KAFKA_BOOTSTRAP_SERVERS": "k:1"}
    s = run(["--rate", "7"], env)
    assert s.rate == 7.0  # flag
    assert s.count == 3  # environment
    assert s.bootstrap_servers == "k:1"  # shared variable
    assert s.mode == "fast"  # default
    assert run([], {"FRAUD_SVC_WEIGHT": "5"}).rules.weight == 5  # a section's field
    assert run(["--weight", "6"], {"FRAUD_SVC_WEIGHT": "5"}).rules.weight == 6


def test_types_come_from_the_annotations():
    s = run(
        ["--seed", "42", "--out", "/var/x", "--threshold", "12.50", "--tags", "x,y,z"],
    )
    assert s.seed == 42 and isinstance(s.seed, int)
    assert s.out == Path("/var/x")
    assert s.rules.threshold == Decimal("12.50") and isinstance(s.rules.threshold, Decimal)
    assert s.tags == ("x", "y", "z")
    env = {"FRAUD_SVC_SEED": " 7 ", "FRAUD_SVC_THRESHOLD": "0.01", "FRAUD_SVC_OUT": "rel"}
    s = run([], env)
    assert (s.seed, s.rules.threshold, s.out) == (7, Decimal("0.01"), Path("rel"))


def test_an_empty_variable_leaves_an_optional_setting_unset():
    assert run([], {"FRAUD_SVC_SEED": ""}).seed is None


@pytest.mark.parametrize(
    ("text", "value"),
    [("1", True), ("true", True), ("YES", True), ("on", True), ("0", False), ("off", False),
     ("", False), ("No", False)],
)  # fmt: skip
def test_bool_from_the_environment(text, value):
    assert run([], {"FRAUD_SVC_DRY_RUN": text}).dry_run is value


def test_bool_flags_turn_on_and_off():
    assert run(["--dry-run"]).dry_run is True
    assert run(["--no-dry-run"], {"FRAUD_SVC_DRY_RUN": "1"}).dry_run is False
    assert run([], {"FRAUD_SVC_DRY_RUN": "1"}).dry_run is True


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"FRAUD_SVC_RATE": "-1"}, "FRAUD_SVC_RATE='-1' is invalid: -1 must be > 0"),
        ({"FRAUD_SVC_RATE": "fast"}, "FRAUD_SVC_RATE='fast' is invalid: 'fast' is not a number"),
        ({"FRAUD_SVC_RATE": "nan"}, "FRAUD_SVC_RATE='nan' is invalid: 'nan' must be a finite"),
        ({"FRAUD_SVC_COUNT": "2.5"}, "FRAUD_SVC_COUNT='2.5' is invalid: '2.5' is not an integer"),
        ({"FRAUD_SVC_MODE": "medium"}, "FRAUD_SVC_MODE='medium' is invalid: expected one of"),
        ({"FRAUD_SVC_DRY_RUN": "maybe"}, "FRAUD_SVC_DRY_RUN='maybe' is invalid: 'maybe' is not"),
        ({"FRAUD_SVC_THRESHOLD": "lots"}, "FRAUD_SVC_THRESHOLD='lots' is invalid: 'lots' is not"),
        ({"FRAUD_SVC_THRESHOLD": "Infinity"}, "FRAUD_SVC_THRESHOLD='Infinity' is invalid"),
    ],
)
def test_a_bad_variable_is_a_usage_error_naming_it_and_its_value(env, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        run([], env)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "usage: svc" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--rate", "0"], "argument --rate: 0 must be > 0"),
        (["--count", "x"], "argument --count: 'x' is not an integer"),
        (["--mode", "medium"], "argument --mode: invalid choice: 'medium'"),
        (["--weight", "2.5"], "argument --weight: '2.5' is not an integer"),
        (["--nonsense"], "unrecognized arguments: --nonsense"),
    ],
)
def test_a_bad_flag_is_a_usage_error_naming_it_and_its_value(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        run(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_a_check_across_settings_is_a_usage_error(capsys):
    assert run(["--mode", "slow", "--rate", "50"]).mode == "slow"
    with pytest.raises(SystemExit):
        run(["--mode", "slow"], {"FRAUD_SVC_RATE": "500"})
    assert "--rate=500.0 is too fast for --mode=slow" in capsys.readouterr().err


def test_help_shows_each_variable_and_default_in_its_group():
    text = build_parser(Svc, "SVC", {}, prog="svc", description="d").format_help()
    flat = " ".join(text.split())
    for part in (
        "[env KAFKA_BOOTSTRAP_SERVERS; default: localhost:9092]",
        "tx per 100% of time [env FRAUD_SVC_RATE; default: 10.0]",
        "[env FRAUD_SVC_SEED; default: unset]",
        "[env FRAUD_SVC_DRY_RUN; default: off]",
        "[env FRAUD_SVC_TAGS; default: a,b]",
        "[env FRAUD_SVC_THRESHOLD; default: 3000]",
        "--dry-run, --no-dry-run",
        "{fast,slow}",
    ):
        assert part in flat, part
    body = text[text.index("options:") :]  # past the usage line
    assert body.index("Kafka:") < body.index("--bootstrap-servers")
    assert body.index("scoring:") < body.index("--threshold")
    assert body.index("rules:") < body.index("--weight")


def test_help_shows_the_declared_default_not_the_environments_value():
    text = build_parser(Svc, "SVC", {"FRAUD_SVC_RATE": "99"}, prog="svc", description="d")
    assert "default: 10.0]" in " ".join(text.format_help().split())


def test_a_secret_has_no_flag_and_never_shows(capsys):
    env = {"FRAUD_SVC_TOKEN": "hunter2"}
    s = run([], env)
    assert s.token == "hunter2"
    assert "hunter2" not in repr(s)
    assert loggable(s)["token"] == "***" and loggable(Svc())["token"] == ""
    parser = build_parser(Svc, "SVC", env, prog="svc", description="d")
    text = parser.format_help()
    assert "hunter2" not in text and "--token" not in text
    assert "FRAUD_SVC_TOKEN: API token (secret: environment only, never shown)" in text
    with pytest.raises(SystemExit):
        run(["--token", "x"])
    capsys.readouterr()


def test_a_bad_secret_is_reported_without_its_value(capsys):
    @dataclass(frozen=True)
    class WithPin:
        pin: int = setting(0, secret=True, help="PIN")

    with pytest.raises(SystemExit):
        parse(WithPin, "SVC", [], {"FRAUD_SVC_PIN": "s3cr3t"}, prog="p", description="d")
    err = capsys.readouterr().err
    assert "FRAUD_SVC_PIN=(secret, not shown) is invalid" in err and "s3cr3t" not in err


def test_loggable_is_plain_values():
    assert loggable(run(["--seed", "3"])) == {
        "bootstrap_servers": "localhost:9092", "rate": 10.0, "count": 0, "seed": 3,
        "mode": "fast", "dry_run": False, "out": "/tmp/out", "tags": ["a", "b"], "token": "",
        "threshold": "3000", "weight": 2,
    }  # fmt: skip


def test_add_arguments_joins_an_existing_parser():
    parser = argparse.ArgumentParser(prog="host")
    parser.add_argument("--own", default="x")
    add_arguments(parser, Inner, "HOST", {"FRAUD_HOST_WEIGHT": "9"}, group="rules of host")
    ns = parser.parse_args(["--threshold", "1"])
    assert ns.own == "x"
    assert from_namespace(Inner, ns) == Inner(threshold=Decimal(1), weight=9)


def test_a_field_without_a_parser_or_default_is_a_programming_error():
    @dataclass(frozen=True)
    class Odd:
        when: complex = setting(1j, help="?")

    with pytest.raises(TypeError, match="no parser"):
        build_parser(Odd, "SVC", {}, prog="p", description="d")
    with pytest.raises(TypeError, match="needs a default"):
        setting(help="no default")


def test_os_environ_is_the_default(monkeypatch):
    monkeypatch.setenv("FRAUD_SVC_COUNT", "11")
    assert parse(Svc, "SVC", [], prog="svc", description="d").count == 11
