"""A service's settings as one frozen dataclass: its fields become flags and variables.

Why: four hand-written styles (a long parse_args, a `# fmt: off` block, a frozen Config
whose defaults repeated its flags', a dict of help texts) had drifted apart. Here each
setting is declared once, as a dataclass field with `setting(default, help=...)`:

- the flag is `--field-name` (metadata `flag=` may name another);
- the environment variable is `FRAUD_<SERVICE>_<FIELD_NAME>`, except for the few names
  in SHARED_ENV that every service and tool reads alike (KAFKA_BOOTSTRAP_SERVERS, ...);
- the precedence is flag > variable > default, and --help shows each flag's variable
  and default;
- a value from the environment is converted and checked like a flag's, and a bad one is
  an argparse error naming the variable and the value;
- the type comes from the annotation (str, int, float, bool, Decimal, Path, `T | None`)
  unless `type=` gives a parser; `choices=` limits the values;
- a `secret=True` setting has no flag (a command line shows in `ps`) and is read only
  from its variable; its value never appears in --help, repr(), `loggable()` or an error;
- a field declared with `section(OtherSettings)` nests another settings dataclass whose
  fields get flags and variables of the same service (e.g. the scoring rules).

Checks that span fields belong in the dataclass's `__post_init__` (raise ValueError):
`parse()` reports them as argparse errors too.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, dataclass
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

ENV_PREFIX = "FRAUD_"

# The one exception to FRAUD_<SERVICE>_<FIELD>: settings that name one fact about the
# deployment, read alike by every service, the local stack, compose and the tests, so one
# variable sets them all. Keyed by field name.
SHARED_ENV: Mapping[str, str] = types.MappingProxyType(
    {
        "bootstrap_servers": "KAFKA_BOOTSTRAP_SERVERS",  # the Kafka cluster
        "postgres_dsn": "FRAUD_POSTGRES_DSN",  # the alerts database (no password in it)
        "log_level": "FRAUD_LOG_LEVEL",  # one knob for the whole pipeline's logs
        "spark_master": "SPARK_MASTER",  # Spark's own name for it (spark-submit, compose)
    }
)

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

_SETTING = "libs.cli.settings"
_SECTION = "libs.cli.settings.section"
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


class SettingsError(ValueError):
    """A bad value from the environment or an inconsistent combination of settings."""


@dataclass(frozen=True)
class Setting:
    """What a field's metadata holds (see `setting`)."""

    help: str
    type: Callable[[str], Any] | None = None
    choices: tuple[Any, ...] | None = None
    group: str | None = None
    flag: str | None = None
    secret: bool = False


def setting(
    default: Any = MISSING,
    *,
    help: str,
    type: Callable[[str], Any] | None = None,
    choices: Sequence[Any] | None = None,
    group: str | None = None,
    flag: str | None = None,
    secret: bool = False,
    default_factory: Callable[[], Any] | Any = MISSING,
) -> Any:
    """A dataclass field that is also a flag and an environment variable.

    `type` parses a command-line or environment string (raise ValueError or
    argparse.ArgumentTypeError with a message); without it the annotation decides.
    """
    if default is MISSING and default_factory is MISSING:
        raise TypeError("a setting needs a default (or default_factory)")
    meta = Setting(help, type, tuple(choices) if choices is not None else None, group, flag,
                   secret)  # fmt: skip
    return dataclasses.field(
        default=default, default_factory=default_factory, repr=not secret,
        metadata={_SETTING: meta},
    )  # fmt: skip


def log_level_setting(group: str | None = None) -> Any:
    """The `log_level` field every service has (its variable is the shared FRAUD_LOG_LEVEL)."""
    return setting("INFO", type=log_level, choices=LOG_LEVELS, group=group, help="log level")


def section(cls: type, group: str | None = None) -> Any:
    """A field holding another settings dataclass; its fields join this service's flags
    (in `group`, unless a field names its own)."""
    return dataclasses.field(default_factory=cls, metadata={_SECTION: group})


def env_name(service: str, field_name: str) -> str:
    """FRAUD_<SERVICE>_<FIELD>, or the field's entry in SHARED_ENV."""
    if field_name in SHARED_ENV:
        return SHARED_ENV[field_name]
    if not service or not service.replace("_", "").isalnum():
        raise ValueError(f"service {service!r} must be a non-empty name like PRODUCER")
    return f"{ENV_PREFIX}{service.upper()}_{field_name.upper()}"


def env_names(cls: type, service: str) -> dict[str, str]:
    """field name -> variable, sections included (for docs and tests)."""
    return {name: env_name(service, name) for name, *_ in _settings(cls)}


# -- parsers -----------------------------------------------------------------------------


def parse_int(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None


def parse_float(text: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number")
    return value


def parse_decimal(text: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"{text!r} is not a decimal number") from None
    if not value.is_finite():
        raise argparse.ArgumentTypeError(f"{text!r} must be finite")
    return value


def parse_bool(text: str) -> bool:
    word = text.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not a boolean (1/0, true/false, yes/no, on/off)")


def positive_int(text: str) -> int:
    value = parse_int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} must be > 0")
    return value


def non_negative_int(text: str) -> int:
    value = parse_int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} must be >= 0")
    return value


def positive_float(text: str) -> float:
    value = parse_float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} must be > 0")
    return value


def non_negative_float(text: str) -> float:
    value = parse_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} must be a finite number >= 0")
    return value


def log_level(text: str) -> str:
    return text.strip().upper()


_BY_TYPE: dict[Any, Callable[[str], Any]] = {
    str: str,
    int: parse_int,
    float: parse_float,
    bool: parse_bool,
    Decimal: parse_decimal,
    Path: Path,
}


# -- building the parser -----------------------------------------------------------------


def add_arguments(
    parser: argparse.ArgumentParser,
    cls: type,
    service: str,
    environ: Mapping[str, str] | None = None,
    group: str | None = None,
) -> None:
    """Add a flag per setting of `cls`, its default taken from the environment now.

    Raises SettingsError naming the variable and its value when one is invalid.
    """
    environ = os.environ if environ is None else environ
    groups: dict[str | None, Any] = {}
    for name, f, meta, section_group, owner in _settings(cls):
        var = env_name(service, name)
        convert = _converter(owner, f, meta)
        value = f.default_factory() if f.default is MISSING else f.default  # type: ignore[misc]
        raw = environ.get(var)
        if raw is not None:
            value = _from_env(var, raw, convert, meta, _optional(owner, f))
        if meta.secret:  # no flag; the value rides on the namespace only
            parser.set_defaults(**{name: value})
            continue
        title = meta.group or section_group or group
        if title not in groups:
            groups[title] = parser if title is None else parser.add_argument_group(title)
        target = groups[title]
        flag = meta.flag or "--" + name.replace("_", "-")
        shown = f"{meta.help} [env {var}; default: {_show(f)}]"
        shown = shown.replace("%", "%%")  # argparse %-formats help texts
        if _hint(owner, f) is bool and meta.type is None:
            no_flag = "--no-" + flag.removeprefix("--")
            target.add_argument(flag, no_flag, dest=name, action=_Switch, default=value,
                                help=shown)  # fmt: skip
            continue
        target.add_argument(
            flag,
            dest=name,
            type=_named(convert, name),
            default=value,
            choices=meta.choices,
            help=shown,
        )
    epilog = _secret_help(cls, service)
    if epilog:
        parser.epilog = "\n\n".join(filter(None, [parser.epilog, epilog]))


def from_namespace(cls: type[T], ns: argparse.Namespace) -> T:
    """The settings from a namespace parsed after `add_arguments` (raises ValueError from
    the dataclass's own checks)."""
    values = {}
    for f in dataclasses.fields(cls):
        if _SECTION in f.metadata:
            values[f.name] = from_namespace(_hints(cls)[f.name], ns)
        elif _SETTING in f.metadata:
            values[f.name] = getattr(ns, f.name)
    return cls(**values)


def parse(
    cls: type[T],
    service: str,
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    prog: str,
    description: str,
) -> T:
    """argv (default sys.argv[1:]) and the environment (default os.environ) -> settings.

    Every mistake (a bad flag, a bad variable, an inconsistent combination) exits with
    argparse's usage error, status 2.
    """
    parser = build_parser(cls, service, environ, prog=prog, description=description)
    ns = parser.parse_args(argv)
    try:
        return from_namespace(cls, ns)
    except (ValueError, TypeError) as err:
        parser.error(str(err))
    raise AssertionError("unreachable")  # parser.error exits


def build_parser(
    cls: type,
    service: str,
    environ: Mapping[str, str] | None = None,
    *,
    prog: str,
    description: str,
) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        formatter_class=_Formatter,
        epilog="Each flag can also be set by the variable named in its help; a flag wins "
        "over the variable, which wins over the default.",
    )
    try:
        add_arguments(parser, cls, service, environ)
    except SettingsError as err:
        parser.error(str(err))
    return parser


def loggable(settings: Any) -> dict[str, Any]:
    """Every setting as plain values for a start-up log line; secrets masked."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if _SECTION in f.metadata:
            out.update(loggable(value))
        elif _SETTING in f.metadata:
            if f.metadata[_SETTING].secret:
                value = "***" if value else ""
            elif isinstance(value, Decimal | Path):
                value = str(value)
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
    return out


# -- internals ---------------------------------------------------------------------------


def _settings(cls: type, section_group: str | None = None):
    """(name, field, Setting, section's group, owning class) for every setting, sections
    flattened."""
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        if _SECTION in f.metadata:
            yield from _settings(hints[f.name], f.metadata[_SECTION] or section_group)
        elif _SETTING in f.metadata:
            yield f.name, f, f.metadata[_SETTING], section_group, cls


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _hint(cls: type, f: dataclasses.Field) -> Any:
    """The field's type, `T | None` unwrapped to T."""
    hint = _hints(cls)[f.name]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(args) == 1:
        return args[0]
    return hint


def _optional(cls: type, f: dataclasses.Field) -> bool:
    return type(None) in typing.get_args(_hints(cls)[f.name])


def _converter(cls: type, f: dataclasses.Field, meta: Setting) -> Callable[[str], Any]:
    if meta.type is not None:
        return meta.type
    hint = _hint(cls, f)
    if hint not in _BY_TYPE:
        raise TypeError(f"{cls.__name__}.{f.name}: no parser for {hint!r}; give type=")
    return _BY_TYPE[hint]


def _from_env(
    var: str, raw: str, convert: Callable[[str], Any], meta: Setting, optional: bool
) -> Any:
    shown = "(secret, not shown)" if meta.secret else repr(raw)
    if optional and not raw.strip():
        return None
    try:
        value = convert(raw)
    except (ValueError, argparse.ArgumentTypeError) as err:
        why = "invalid value" if meta.secret else str(err)
        raise SettingsError(f"environment variable {var}={shown} is invalid: {why}") from None
    if meta.choices is not None and value not in meta.choices:
        raise SettingsError(
            f"environment variable {var}={shown} is invalid: expected one of "
            + ", ".join(map(str, meta.choices))
        )
    return value


def _named(convert: Callable[[str], Any], name: str) -> Callable[[str], Any]:
    """argparse names the type in its messages ("invalid int value"): name the setting."""

    def parse_value(text: str) -> Any:
        try:
            return convert(text)
        except (ValueError, TypeError) as err:
            raise argparse.ArgumentTypeError(str(err) or f"invalid {name}: {text!r}") from None

    parse_value.__name__ = name
    return parse_value


class _Formatter(argparse.HelpFormatter):
    """Wraps each line of the description and epilog on its own (argparse would join
    them), keeping a line's indent."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        out = []
        for line in text.splitlines():
            lead = line[: len(line) - len(line.lstrip())]
            out.append(super()._fill_text(line, width, indent + lead) if line.strip() else "")
        return "\n".join(out)


class _Switch(argparse.Action):
    """`--name` sets True, `--no-name` False (argparse's BooleanOptionalAction would add
    its own "(default: ...)" to the help, next to ours)."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        setattr(namespace, self.dest, not (option_string or "").startswith("--no-"))


def _show(f: dataclasses.Field) -> str:
    value = f.default_factory() if f.default is MISSING else f.default  # type: ignore[misc]
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, tuple | list):
        return ",".join(map(str, value))
    if isinstance(value, timedelta):
        return f"{value.total_seconds():g} seconds"
    if value == "":
        return "''"
    return str(value)


def _secret_help(cls: type, service: str) -> str:
    lines = [
        f"  {env_name(service, name)}: {meta.help} (secret: environment only, never shown)"
        for name, _f, meta, *_ in _settings(cls)
        if meta.secret
    ]
    return "secrets (environment only):\n" + "\n".join(lines) if lines else ""
