"""Cheap reads of transactions (truth headers, user_id, event_time) and alerts."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infra.testing.alerts import sample_alert
from libs.schemas.alert import alert_to_json
from libs.schemas.transaction import Transaction, transaction_to_json
from services.quality.records import BadRecord, read_alert, read_transaction, read_truth

T0 = datetime(2026, 11, 28, 17, 0, tzinfo=UTC)

ALERT = sample_alert("user-42", T0)


def txn_json(**changes: object) -> bytes:
    txn = Transaction(str(uuid.uuid4()), "user-7", Decimal("12.50"), "EUR", "Shop", "grocery",
                      "FR", datetime(2026, 11, 28, 17, 0, 59, 999000, tzinfo=UTC))  # fmt: skip
    obj = orjson.loads(transaction_to_json(txn))
    obj.update(changes)
    return orjson.dumps({k: v for k, v in obj.items() if v is not ...})


def test_reads_a_contract_transaction() -> None:
    user_id, event_time = read_transaction(txn_json())
    assert user_id == "user-7"
    assert event_time == pytest.approx(T0.timestamp() + 59.999, abs=1e-6)


@pytest.mark.parametrize(
    ("text", "offset"),
    [
        ("2026-11-28T17:00:00Z", 0.0),
        ("2026-11-28T17:00:00.123Z", 0.123),
        ("2026-11-28T17:00:00.123456789Z", 0.123456),  # nanoseconds truncated
        ("2026-11-28T18:00:00+01:00", 0.0),
        ("2026-11-28T16:00:00.5-01:00", 0.5),
    ],
)
def test_event_time_forms(text: str, offset: float) -> None:
    _, event_time = read_transaction(txn_json(event_time=text))
    assert event_time == pytest.approx(T0.timestamp() + offset, abs=1e-6)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "empty"),
        (b"", "empty"),
        (b"{not json", "not_json"),
        (b"\xff\xfe", "not_json"),
        (b"[1, 2]", "not_object"),
        (txn_json(user_id=...), "missing_field"),
        (txn_json(event_time=...), "missing_field"),
        (txn_json(user_id=None), "missing_field"),
        (txn_json(user_id=""), "empty_field"),
        (txn_json(user_id=7), "bad_type"),
        (txn_json(event_time=1795885200), "bad_type"),
        (txn_json(event_time="yesterday"), "bad_timestamp"),
        (txn_json(event_time="2026-11-28T17:00:00"), "bad_timestamp"),  # no zone
        (txn_json(event_time="2026-11-28"), "bad_timestamp"),
    ],
)
def test_bad_transactions_name_a_reason(value: bytes | None, reason: str) -> None:
    with pytest.raises(BadRecord) as info:
        read_transaction(value)
    assert info.value.reason == reason
    assert type(info.value.reason) is str


def test_other_fields_are_not_validated() -> None:
    # Cheap by design: the detector's DLQ judges amounts; the monitor needs only the key.
    assert read_transaction(txn_json(amount=-5, currency=None))[0] == "user-7"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([("fraud-label", b"1"), ("fraud-pattern", b"high_amount")], ("1", "high_amount")),
        ([("fraud-pattern", b"rapid_fire"), ("fraud-label", b"1")], ("1", "rapid_fire")),
        ([("fraud-label", b"0"), ("fraud-pattern", b"")], ("0", "")),
        ([("fraud-label", b"1")], ("1", "")),
        ([("fraud-label", b"yes")], ("invalid", "")),
        ([("fraud-label", None)], ("invalid", "")),
        ([("fraud-pattern", None)], ("missing", "")),
        ([("other", b"1")], ("missing", "")),
        ([], ("missing", "")),
        (None, ("missing", "")),
    ],
)
def test_truth_from_headers(
    headers: list[tuple[str, bytes | None]] | None, expected: tuple[str, str]
) -> None:
    assert read_truth(headers) == expected


def test_reads_an_alert_window() -> None:
    user_id, start, end = read_alert(alert_to_json(ALERT))
    assert (user_id, start, end) == ("user-42", T0.timestamp(), T0.timestamp() + 60)


def test_bad_alerts_carry_the_contract_reason() -> None:
    for value, reason in [(None, "empty"), (b"{", "not_json"), (b"{}", "missing_field")]:
        with pytest.raises(BadRecord) as info:
            read_alert(value)
        assert info.value.reason == reason
    obj = orjson.loads(alert_to_json(ALERT))
    obj["version"] = 0
    with pytest.raises(BadRecord, match="bad_value"):
        read_alert(orjson.dumps(obj))


_JSON_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats()
    | st.text(max_size=40)
)
_JSON = st.recursive(
    _JSON_LEAVES,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=30,
)
_FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "user_id": _JSON,
        "event_time": _JSON
        | st.sampled_from(["2026-01-01T00:00:00Z", "9999-12-31T23:59:59+14:00"]),
        "window_start": _JSON,
        "window_end": _JSON,
    },
)


@settings(derandomize=True, deadline=None, max_examples=500, database=None)
@given(
    st.binary(max_size=200) | _FIELDS.map(lambda d: orjson.dumps(d, option=orjson.OPT_NON_STR_KEYS))
)
def test_any_bytes_are_a_result_or_a_bad_record_never_another_exception(value):
    for read in (read_transaction, read_alert):
        try:
            read(value)
        except BadRecord as bad:
            assert bad.reason
