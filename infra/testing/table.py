"""Read the alerts table and compare it with the alerts it must hold, column for column.

Why: every sink and end-to-end test ends with "the table holds exactly these alerts"; the
check reads every row and, when it fails, says how many rows are missing, extra or
different. keyed_diff is that comparison for any keyed result (a table, a peer's output).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg2

from infra.testing.alerts import Key
from libs.schemas.alert import Alert
from libs.schemas.sql import alert_to_row


def read_table(dsn: str, table: str = "alerts") -> dict[Key, dict[str, Any]]:
    """Every row keyed by (user_id, window_start); {} while the table does not exist or the
    server does not answer (a probe for wait_until)."""
    try:
        conn = psycopg2.connect(dsn, connect_timeout=3)
    except psycopg2.OperationalError:
        return {}
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT to_regclass(%s)", (table,))
            if cur.fetchone()[0] is None:
                return {}
            cur.execute(f"SELECT * FROM {table}")
            names = [d.name for d in cur.description]
            rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    finally:
        conn.close()
    return {(r["user_id"], r["window_start"]): r for r in rows}


def keyed_diff(expected: Mapping[Any, Any], actual: Mapping[Any, Any], shown: int = 3) -> str:
    """'' when both hold the same keys with equal values, else how many keys are missing,
    unexpected and different, with the first few of each."""
    missing = sorted(expected.keys() - actual.keys())
    extra = sorted(actual.keys() - expected.keys())
    wrong = sorted(k for k in expected.keys() & actual.keys() if expected[k] != actual[k])
    if not (missing or extra or wrong):
        return ""
    examples = "; ".join(f"{k}: {actual[k]} != expected {expected[k]}" for k in wrong[:shown])
    return (
        f"{len(actual)} present, {len(expected)} expected: {len(missing)} missing "
        f"{missing[:shown]}, {len(extra)} unexpected {extra[:shown]}, {len(wrong)} differ"
        + (f" ({examples})" if examples else "")
    )


def table_diff(rows: dict[Key, dict[str, Any]], expected: dict[Key, Alert]) -> str:
    """'' when the table holds exactly `expected` (every column), else a short description."""
    return keyed_diff({k: alert_to_row(a) for k, a in expected.items()}, rows, shown=1)
