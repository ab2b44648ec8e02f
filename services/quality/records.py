"""Cheap reads of the two inputs: the ground truth of a `transactions` message (headers,
user_id, event_time) and the window key of a `fraud_alerts` message.

Why not `parse_transaction`: the monitor must keep up with the whole stream on one core,
and of a transaction it needs only two fields; full validation (Decimal amounts, UUID and
country checks) would cost several times more than everything else it does per message.
A value that lacks a usable user_id or event_time is a bad record: skipped and counted
under a `libs.schemas` reason token, never fatal.
"""

from __future__ import annotations

from datetime import datetime

import orjson

from libs.schemas.alert import parse_alert
from libs.schemas.fields import InvalidRecord, Reason
from libs.schemas.headers import FRAUD_LABEL_HEADER, FRAUD_PATTERN_HEADER

# Header value -> label as counted; anything else is "invalid", no header is "missing".
_LABELS = {b"1": "1", b"0": "0"}
MISSING_LABEL = "missing"
INVALID_LABEL = "invalid"

_fromisoformat = datetime.fromisoformat
_loads = orjson.loads


class BadRecord(Exception):
    """A message the monitor cannot use; `reason` is a stable metric label."""

    def __init__(self, reason: str) -> None:
        super().__init__(str(reason))
        self.reason = str(reason)


def read_truth(headers: list[tuple[str, bytes | None]] | None) -> tuple[str, str]:
    """(fraud label, pattern) from the message headers; the pattern only matters for "1"."""
    label, pattern = MISSING_LABEL, ""
    if headers:
        for name, value in headers:
            if name == FRAUD_LABEL_HEADER:
                label = _LABELS.get(value, INVALID_LABEL) if value is not None else INVALID_LABEL
            elif name == FRAUD_PATTERN_HEADER and value:
                pattern = value.decode("utf-8", "replace")
    return label, pattern


def read_transaction(value: bytes | None) -> tuple[str, float]:
    """(user_id, event time in Unix seconds) of a transaction value, or raise BadRecord.

    Total: whatever the bytes, the only exception is BadRecord (an unforeseen failure is
    `internal_error`, counted like any bad record rather than stopping the monitor)."""
    try:
        return _read_transaction(value)
    except BadRecord:
        raise
    except Exception as err:  # one record must never stop the service
        raise BadRecord(Reason.INTERNAL_ERROR) from err


def _read_transaction(value: bytes | None) -> tuple[str, float]:
    if not value:
        raise BadRecord(Reason.EMPTY)
    try:
        obj = _loads(value)
    except orjson.JSONDecodeError:
        raise BadRecord(Reason.NOT_JSON) from None
    if type(obj) is not dict:
        raise BadRecord(Reason.NOT_OBJECT)
    user_id = obj.get("user_id")
    event_time = obj.get("event_time")
    if user_id is None or event_time is None:
        raise BadRecord(Reason.MISSING_FIELD)
    if type(user_id) is not str or not user_id:
        raise BadRecord(Reason.EMPTY_FIELD if user_id == "" else Reason.BAD_TYPE)
    if type(event_time) is not str:
        raise BadRecord(Reason.BAD_TYPE)
    try:
        moment = _fromisoformat(event_time)
    except ValueError:
        raise BadRecord(Reason.BAD_TIMESTAMP) from None
    if moment.tzinfo is None:  # a naive time's zone is a guess; the contract requires one
        raise BadRecord(Reason.BAD_TIMESTAMP)
    return user_id, moment.timestamp()


def read_alert(value: bytes | None) -> tuple[str, float, float]:
    """(user_id, window_start, window_end) in Unix seconds of an alert, or raise BadRecord.

    Alerts are few (a fraction of windows), so the full contract check is affordable.
    """
    try:
        alert = parse_alert(value or b"")
    except InvalidRecord as err:
        raise BadRecord(err.reason) from None
    except Exception as err:  # one record must never stop the service
        raise BadRecord(Reason.INTERNAL_ERROR) from err
    return alert.user_id, alert.window_start.timestamp(), alert.window_end.timestamp()
