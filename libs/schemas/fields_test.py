"""Tests for the field vocabulary, the error type and the contract/dataclass drift check."""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from decimal import Decimal

import pytest

from libs.schemas.alert import ALERT_FIELDS, Alert
from libs.schemas.fields import (
    Field,
    InvalidRecord,
    Kind,
    Reason,
    check_record_class,
    control_character,
    field_names,
    show,
)
from libs.schemas.transaction import TRANSACTION_FIELDS, Transaction


@pytest.mark.parametrize(
    ("field", "sql_type"),
    [
        (Field("a", Kind.STRING, "d"), "text"),
        (Field("a", Kind.INT, "d"), "integer"),
        (Field("a", Kind.BOOL, "d"), "boolean"),
        (Field("a", Kind.TIMESTAMP, "d"), "timestamptz"),
        (Field("a", Kind.STRING_LIST, "d"), "text[]"),
        (Field("a", Kind.DECIMAL, "d", precision=15, scale=2), "numeric(15,2)"),
    ],
)
def test_sql_type_per_kind(field: Field, sql_type: str) -> None:
    assert field.sql_type == sql_type


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "Amount", "kind": Kind.STRING}, "lower-case identifier"),
        ({"name": "bad-name", "kind": Kind.STRING}, "lower-case identifier"),
        ({"name": "a", "kind": Kind.DECIMAL}, "needs 0 <= scale < precision"),  # no precision
        ({"name": "a", "kind": Kind.DECIMAL, "precision": 2, "scale": 2}, "scale < precision"),
        ({"name": "a", "kind": Kind.DECIMAL, "precision": 39, "scale": 2}, "precision <= 38"),
        ({"name": "a", "kind": Kind.INT, "precision": 5}, "only apply to DECIMAL"),
    ],
)
def test_field_rejects_inconsistent_definitions(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Field(doc="d", **kwargs)  # type: ignore[arg-type]


def test_field_doc_must_be_one_line() -> None:
    # Docs become SQL line comments; a newline would end the comment early.
    with pytest.raises(ValueError, match="single line"):
        Field("a", Kind.STRING, "two\nlines")


def test_contract_field_names_are_unique() -> None:
    for fields in (TRANSACTION_FIELDS, ALERT_FIELDS):
        names = field_names(fields)
        assert len(names) == len(set(names))


def test_dataclasses_follow_field_order() -> None:
    assert tuple(Transaction.__dataclass_fields__) == field_names(TRANSACTION_FIELDS)
    assert tuple(Alert.__dataclass_fields__) == field_names(ALERT_FIELDS)


def test_check_record_class_detects_drift() -> None:
    @dataclass
    class Drifted:
        transaction_id: str
        user: str  # renamed

    with pytest.raises(TypeError, match="Drifted"):
        check_record_class(Drifted, TRANSACTION_FIELDS)


def test_invalid_record_carries_reason_and_detail() -> None:
    err = InvalidRecord(Reason.BAD_AMOUNT, "amount=-5 must be > 0")
    assert err.reason == "bad_amount"
    assert type(err.reason) is str  # plain str, safe as a metric label / header value
    assert err.detail == "amount=-5 must be > 0"
    assert str(err) == "bad_amount: amount=-5 must be > 0"
    assert isinstance(err, ValueError)


def test_invalid_record_pickles() -> None:
    # Spark ships exceptions between the JVM-side Python workers and the driver.
    err = pickle.loads(pickle.dumps(InvalidRecord("not_json", "boom")))
    assert (err.reason, err.detail) == ("not_json", "boom")


def test_reason_tokens_are_stable_snake_case() -> None:
    for reason in Reason:
        assert reason.value == reason.name.lower()
    assert {r.value for r in Reason} >= {
        "not_utf8",
        "too_large",
        "not_json",
        "not_object",
        "missing_field",
        "bad_type",
        "empty_field",
        "bad_amount",
        "bad_currency",
        "bad_country",
        "bad_timestamp",
        "bad_uuid",
    }


def test_show_renders_json_like_and_truncates() -> None:
    assert show("x") == '"x"'
    assert show(True) == "true"
    assert show(None) == "null"
    assert show(Decimal("-5.00")) == "-5.00"
    long = show("y" * 1000)
    assert len(long) == 80
    assert long.endswith("...")
    assert show(object()).startswith("<object")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": Kind.INT, "max_length": 5}, "only apply to STRING"),
        ({"kind": Kind.TIMESTAMP, "no_controls": True}, "only apply to STRING"),
        ({"kind": Kind.STRING, "max_length": -1}, "must be >= 0"),
    ],
)
def test_string_limits_only_for_strings(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Field(name="a", doc="d", **kwargs)  # type: ignore[arg-type]


def test_new_reason_tokens() -> None:
    assert {r.value for r in Reason} >= {
        "too_deep",
        "duplicate_key",
        "too_long",
        "control_character",
        "future_event_time",
    }


# --- show: total and bounded on hostile values ------------------------------------------


def nested_list(depth: int) -> list[object]:
    value: list[object] = []
    for _ in range(depth):
        value = [value]
    return value


def test_show_survives_deep_nesting() -> None:
    # json.dumps raised RecursionError here: the crash this module must never repeat.
    for depth in (990, 5000, 100_000):
        text = show(nested_list(depth))
        assert text == "[" * 77 + "..."
    deep_dict: dict[str, object] = {}
    for _ in range(5000):
        deep_dict = {"k": deep_dict}
    assert show(deep_dict).startswith('{"k": {"k": ')


def test_show_is_bounded_on_huge_values() -> None:
    assert len(show("x" * 10_000_000)) == 80
    assert len(show(list(range(1_000_000)))) == 80
    assert show(10**10_000) == "<integer of 33220 bits>"  # str() would raise past 4,300 digits
    assert show([1, 2], limit=200) == "[1, 2]"


def test_show_escapes_what_would_corrupt_a_log_line_or_header() -> None:
    text = show("a\x00b\n\u202e\ud800\U000e0001\u2028")
    assert text == '"a\\u0000b\\u000a\\u202e\\ud800\\U000e0001\\u2028"'
    text.encode("utf-8")  # a lone surrogate would make this raise
    assert show("Café Zürich\u00a0東京") == '"Café Zürich\u00a0東京"'  # printable stays as is
    assert show('q"\\') == '"q\\"\\\\"'


def test_show_json_like_scalars_and_containers() -> None:
    assert show({"a": [1, 2.5, None, False]}) == '{"a": [1, 2.5, null, false]}'
    assert show(float("nan")) == "NaN"
    assert show(float("-inf")) == "-Infinity"
    assert show((1, "x")) == '[1, "x"]'
    assert show(b"\x00\x01") == "b'\\x00\\x01'"


def test_show_never_raises() -> None:
    class Hostile:
        def __repr__(self) -> str:
            raise RuntimeError("no repr for you")

    assert show(Hostile()) == "<Hostile>"
    assert show([Hostile()]) == "<list>"


def test_control_character_finds_the_first_cc_cf_or_surrogate() -> None:
    assert control_character("user-42") is None
    assert control_character("Café\u00a0Zürich 東京") is None  # Zs is not a control
    assert control_character("ab\x00c") == (2, "\x00")
    assert control_character("\tx") == (0, "\t")
    assert control_character("a\u200db") == (1, "\u200d")  # Cf: zero-width joiner
    assert control_character("x\ufeff") == (1, "\ufeff")  # Cf: BOM
    assert control_character("x\udc00") == (1, "\udc00")  # lone surrogate
    assert control_character("\x85") == (0, "\x85")  # C1 control
