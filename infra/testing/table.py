"""Read the alerts table and compare it with the alerts it must hold, column for column.

Why: every sink test ends with "the table holds exactly these alerts"; the check reads
every row and, when it fails, says how many rows are missing, extra or different.
"""

from __future__ import annotations

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


def table_diff(rows: dict[Key, dict[str, Any]], expected: dict[Key, Alert]) -> str:
    """'' when the table holds exactly `expected` (every column), else a short description."""
    missing = expected.keys() - rows.keys()
    extra = rows.keys() - expected.keys()
    wrong = [k for k in expected.keys() & rows.keys() if rows[k] != alert_to_row(expected[k])]
    if not (missing or extra or wrong):
        return ""
    sample = wrong[:1]
    return (
        f"{len(rows)} rows, {len(expected)} expected: {len(missing)} missing, {len(extra)} "
        f"unexpected, {len(wrong)} differ"
        + (
            f" (e.g. {sample[0]}: version {rows[sample[0]]['version']} != "
            f"{expected[sample[0]].version})"
            if sample
            else ""
        )
    )
