"""Tests for the alerts DDL and upsert text (executing them against PostgreSQL lives in the
integration tests; these check that the text follows the contract)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from libs.schemas.alert import ALERT_FIELDS, Alert
from libs.schemas.sql import (
    ALERT_COLUMNS,
    PRIMARY_KEY,
    alert_to_row,
    alerts_ddl,
    alerts_upsert_sql,
)

ALERT = Alert(
    user_id="u1",
    window_start=datetime(2026, 11, 28, 17, 0, tzinfo=UTC),
    window_end=datetime(2026, 11, 28, 17, 1, tzinfo=UTC),
    txn_count=2,
    distinct_countries=2,
    max_amount=Decimal("10.00"),
    total_amount=Decimal("15.50"),
    high_value=False,
    location_change=True,
    high_frequency=False,
    fraud_score=2,
    transaction_ids=("a", "b"),
    reasons=("location_change: 2 distinct countries >= 2",),
    rule_version="v1",
    detected_at=datetime(2026, 11, 28, 17, 0, 40, tzinfo=UTC),
    last_event_time=datetime(2026, 11, 28, 17, 0, 35, tzinfo=UTC),
    version=2,
)


def column_types(ddl: str) -> dict[str, str]:
    """name -> type text for each column line (`name type NOT NULL,  -- doc`)."""
    found = {}
    for line in ddl.splitlines():
        m = re.fullmatch(r"    (\w+) (.+?) NOT NULL,  -- .*", line)
        if m:
            found[m.group(1)] = m.group(2)
    return found


def test_ddl_has_every_contract_column_with_its_type() -> None:
    ddl = alerts_ddl()
    assert ddl.startswith("CREATE TABLE IF NOT EXISTS alerts (\n")
    assert column_types(ddl) == {f.name: f.sql_type for f in ALERT_FIELDS}


def test_ddl_types_match_design() -> None:
    types = column_types(alerts_ddl())
    for name in ("window_start", "window_end", "detected_at", "last_event_time"):
        assert types[name] == "timestamptz"
    for name in ("txn_count", "distinct_countries", "fraud_score", "version"):
        assert types[name] == "integer"
    for name in ("max_amount", "total_amount"):
        assert types[name].startswith("numeric(")
    for name in ("high_value", "location_change", "high_frequency"):
        assert types[name] == "boolean"
    assert types["transaction_ids"] == "text[]"
    assert types["reasons"] == "text[]"
    assert types["user_id"] == "text"


def test_ddl_primary_key_and_custom_table() -> None:
    assert "\n    PRIMARY KEY (user_id, window_start)\n)" in alerts_ddl()
    assert alerts_ddl("public.fraud_alerts").startswith(
        "CREATE TABLE IF NOT EXISTS public.fraud_alerts ("
    )


@pytest.mark.parametrize(
    "table", ["alerts; DROP TABLE x", "Alerts", "a.b.c", "", "1alerts", 'alerts"']
)
def test_table_names_are_validated(table: str) -> None:
    with pytest.raises(ValueError, match="lower-case identifier"):
        alerts_ddl(table)
    with pytest.raises(ValueError, match="lower-case identifier"):
        alerts_upsert_sql(table)


def test_upsert_inserts_every_column_with_named_placeholders() -> None:
    sql = alerts_upsert_sql()
    insert = re.search(r"INSERT INTO alerts \((.*?)\)\nVALUES \((.*?)\)\n", sql)
    assert insert is not None
    assert insert.group(1).split(", ") == list(ALERT_COLUMNS)
    assert insert.group(2).split(", ") == [f"%({c})s" for c in ALERT_COLUMNS]


def test_upsert_conflict_target_and_version_guard() -> None:
    sql = alerts_upsert_sql()
    assert "ON CONFLICT (user_id, window_start) DO UPDATE SET" in sql
    assert sql.endswith("\nWHERE alerts.version < EXCLUDED.version")
    # Every non-key column is updated, and the key columns are not.
    updated = re.findall(r"^    (\w+) = EXCLUDED\.(\w+),?$", sql, flags=re.MULTILINE)
    assert [a for a, b in updated if a == b] == [c for c in ALERT_COLUMNS if c not in PRIMARY_KEY]
    assert len(updated) == len(ALERT_COLUMNS) - 2


def test_upsert_guard_uses_bare_name_for_schema_qualified_table() -> None:
    sql = alerts_upsert_sql("fraud.alerts_v2")
    assert sql.startswith("INSERT INTO fraud.alerts_v2 (")
    assert sql.endswith("WHERE alerts_v2.version < EXCLUDED.version")


def test_alert_to_row_matches_placeholders_and_adapts_lists() -> None:
    row = alert_to_row(ALERT)
    assert list(row) == list(ALERT_COLUMNS)
    assert set(re.findall(r"%\((\w+)\)s", alerts_upsert_sql())) == set(row)
    assert row["transaction_ids"] == ["a", "b"]
    assert isinstance(row["reasons"], list)
    assert row["window_start"] == ALERT.window_start
    assert row["window_start"].tzinfo is not None
    assert row["max_amount"] == Decimal("10.00")
    assert row["version"] == 2
