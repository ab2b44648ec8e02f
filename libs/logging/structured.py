"""Structured JSON logging: one JSON object per line, so logs can be searched by field.

Every line has `ts` (ISO-8601 UTC), `level`, `service`, `logger`, `msg`, then any fields
passed via `extra=` or bound with `bind()` (correlation fields such as user_id,
transaction_id, batch_id, topic/partition/offset), then `exc` when there is an exception.

This module lives at `libs.logging.structured`; `import logging` below is absolute and
therefore always the standard library, never this package.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping, MutableMapping
from datetime import UTC, datetime
from typing import Any, TextIO

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}
_CORE_KEYS = ("ts", "level", "service", "logger", "msg")


class JsonFormatter(logging.Formatter):
    """Formats a record as a single-line JSON object (see module docstring)."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        line: dict[str, Any] = {
            "ts": ts.removesuffix("+00:00") + "Z",
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRS:
                # An extra field never hides a core one.
                line[f"extra_{key}" if key in _CORE_KEYS else key] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exc"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        # default=str: a Decimal or datetime in `extra` must never break logging.
        return json.dumps(line, default=str, ensure_ascii=False)


def configure(service: str, level: str = "INFO", stream: TextIO | None = None) -> logging.Logger:
    """Make the root logger write JSON lines to `stream` (default: the current sys.stderr).

    Call once at process start. Replaces the root logger's handlers, so calling it again
    reconfigures instead of duplicating lines. Returns the root logger.
    """
    numeric = logging.getLevelNamesMapping().get(level.upper())
    if numeric is None:
        raise ValueError(f"level={level!r} must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    logging.captureWarnings(True)  # warnings.warn() becomes a JSON line too
    return root


class BoundLogger(logging.LoggerAdapter[logging.Logger]):
    """LoggerAdapter that adds bound fields to every record; call-site `extra` wins."""

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        kwargs["extra"] = {**(self.extra or {}), **kwargs.get("extra", {})}
        return msg, kwargs

    def bind(self, **fields: Any) -> BoundLogger:
        """A new adapter with these fields added to the bound ones."""
        return BoundLogger(self.logger, {**(self.extra or {}), **fields})


def bind(
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger], **fields: Any
) -> BoundLogger:
    """Logger that adds `fields` (e.g. user_id=..., batch_id=...) to every line."""
    if isinstance(logger, logging.LoggerAdapter):
        bound: Mapping[str, Any] = logger.extra or {}
        return BoundLogger(logger.logger, {**bound, **fields})
    return BoundLogger(logger, fields)
