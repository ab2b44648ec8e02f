"""Where fraud-alert notifications go: a config file (YAML or JSON) listing destinations,
each a generic JSON webhook, a Slack-compatible incoming webhook or email over SMTP.

Why a file and not flags: a deployment has several destinations, each with its own rate
limit and credentials. Secrets never sit in the file: a field `x` may be given as
`x_env: VAR` (read from the environment) or `x_file: /path` (read from a file, e.g. a
mounted Kubernetes secret), and a missing secret is an error at startup, not at the first
alert.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

KINDS = ("webhook", "slack", "email")
_NAME = re.compile(r"[a-z][a-z0-9_-]{0,62}")
_SECRETS = ("url", "password")


class ConfigError(ValueError):
    """A destinations file that cannot be used; the message names the file and field."""


@dataclass(frozen=True)
class RateLimit:
    """At most `messages` individual notifications per `per_seconds`; the excess is folded
    into one digest sent when the next period starts."""

    messages: int = 30
    per_seconds: float = 60.0


@dataclass(frozen=True)
class Destination:
    name: str
    kind: str
    rate_limit: RateLimit
    url: str = ""  # webhook and slack
    timeout_s: float = 5.0
    # email
    smtp_host: str = ""
    smtp_port: int = 587
    starttls: bool = True
    ca_file: str = ""  # trust this CA for STARTTLS (an internal relay); default: the system's
    username: str = ""
    password: str = ""
    sender: str = ""
    recipients: tuple[str, ...] = ()

    def __repr__(self) -> str:  # the URL of a Slack webhook is itself a secret
        return f"Destination(name={self.name!r}, kind={self.kind!r})"


@dataclass(frozen=True)
class NotifyConfig:
    destinations: tuple[Destination, ...]
    rows_url: str = ""  # link to an alert's rows; {user_id} and {window_start} are filled in


def _secret(raw: Mapping[str, Any], key: str, where: str, environ: Mapping[str, str]) -> str:
    if f"{key}_env" in raw:
        var = str(raw[f"{key}_env"])
        if var not in environ:
            raise ConfigError(f"{where}: {key}_env names {var}, which is not set")
        return environ[var]
    if f"{key}_file" in raw:
        path = Path(str(raw[f"{key}_file"]))
        try:
            return path.read_text().strip()
        except OSError as err:
            raise ConfigError(f"{where}: {key}_file {path}: {err.strerror}") from None
    return str(raw.get(key, ""))


def _destination(raw: Any, where: str, environ: Mapping[str, str]) -> Destination:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(raw).__name__}")
    name, kind = str(raw.get("name", "")), raw.get("kind")
    if not _NAME.fullmatch(name):
        raise ConfigError(f"{where}: name={name!r} must match {_NAME.pattern}")
    where = f"{where} ({name})"
    if kind not in KINDS:
        raise ConfigError(f"{where}: kind={kind!r} must be one of {', '.join(KINDS)}")
    known = {
        "name", "kind", "rate_limit", "timeout_s", "smtp_host", "smtp_port", "starttls",
        "username", "sender", "recipients", "ca_file",
    } | {f"{k}{s}" for k in _SECRETS for s in ("", "_env", "_file")}  # fmt: skip
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"{where}: unknown fields {sorted(unknown)}")
    limit = raw.get("rate_limit") or {}
    try:
        rate = RateLimit(int(limit.get("messages", 30)), float(limit.get("per_seconds", 60)))
    except (TypeError, ValueError, AttributeError):
        raise ConfigError(f"{where}: rate_limit={limit!r} needs messages and per_seconds") from None
    if rate.messages < 1 or rate.per_seconds <= 0:
        raise ConfigError(f"{where}: rate_limit {rate} must allow >= 1 message per > 0 s")
    dest = Destination(
        name=name,
        kind=kind,
        rate_limit=rate,
        url=_secret(raw, "url", where, environ),
        timeout_s=float(raw.get("timeout_s", 5.0)),
        smtp_host=str(raw.get("smtp_host", "")),
        smtp_port=int(raw.get("smtp_port", 587)),
        starttls=bool(raw.get("starttls", True)),
        ca_file=str(raw.get("ca_file", "")),
        username=str(raw.get("username", "")),
        password=_secret(raw, "password", where, environ),
        sender=str(raw.get("sender", "")),
        recipients=tuple(str(r) for r in raw.get("recipients", ())),
    )
    if kind in ("webhook", "slack") and not re.match(r"https?://", dest.url):
        raise ConfigError(f"{where}: a {kind} needs url (or url_env/url_file), http(s)://...")
    if kind == "email" and not (dest.smtp_host and dest.sender and dest.recipients):
        raise ConfigError(f"{where}: email needs smtp_host, sender and recipients")
    return dest


def load(path: Path, environ: Mapping[str, str] | None = None) -> NotifyConfig:
    """Read a destinations file (.json, else YAML)."""
    environ = os.environ if environ is None else environ
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"{path}: {err.strerror}") from None
    try:
        raw = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: not valid {path.suffix or 'YAML'}: {err}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("destinations"), list):
        raise ConfigError(f"{path}: expected a mapping with a list `destinations`")
    dests = tuple(
        _destination(d, f"{path}: destinations[{i}]", environ)
        for i, d in enumerate(raw["destinations"])
    )
    names = [d.name for d in dests]
    if not dests or len(set(names)) != len(names):
        raise ConfigError(f"{path}: destinations must be non-empty with unique names: {names}")
    return NotifyConfig(dests, rows_url=str(raw.get("rows_url", "")))
