"""PostgreSQL DDL and the idempotent upsert for the `alerts` table, derived from ALERT_FIELDS.

The upsert is what makes replays safe: the sink commits Kafka offsets only after the
database commit, so after a crash it re-writes alerts it already wrote. A re-written
version is a no-op and an older version never replaces a newer one
(`WHERE <table>.version < EXCLUDED.version`). `cursor.rowcount` is 1 when a row was
inserted or updated and 0 when the write was ignored.
"""

from __future__ import annotations

import re
from typing import Any

from libs.schemas.alert import ALERT_FIELDS, Alert
from libs.schemas.fields import field_names

PRIMARY_KEY: tuple[str, ...] = ("user_id", "window_start")
ALERT_COLUMNS: tuple[str, ...] = field_names(ALERT_FIELDS)

# Plain or schema-qualified lower-case identifier; table names are spliced into SQL text.
_TABLE_RE = re.compile(r"(?:[a-z_][a-z0-9_]*\.)?[a-z_][a-z0-9_]*", re.ASCII)


def _checked_table(table: str) -> str:
    if not _TABLE_RE.fullmatch(table):
        raise ValueError(f"table={table!r} must be a lower-case identifier, e.g. alerts")
    return table


def alerts_ddl(table: str = "alerts") -> str:
    """CREATE TABLE IF NOT EXISTS with every contract column and the (user_id, window_start) key."""
    table = _checked_table(table)
    columns = [
        f"    {f.name} {f.sql_type}{'' if f.nullable else ' NOT NULL'},  -- {f.doc}"
        for f in ALERT_FIELDS
    ]
    return (
        f"CREATE TABLE IF NOT EXISTS {table} (\n"
        + "\n".join(columns)
        + f"\n    PRIMARY KEY ({', '.join(PRIMARY_KEY)})\n)"
    )


def alerts_row_template() -> str:
    """`(%(user_id)s, ...)`: one row of parameters, in column order."""
    return "(" + ", ".join(f"%({c})s" for c in ALERT_COLUMNS) + ")"


def _upsert(table: str, values: str, returning: str = "") -> str:
    table = _checked_table(table)
    row_name = table.rsplit(".", 1)[-1]  # how the existing row is referenced in ON CONFLICT
    updates = [c for c in ALERT_COLUMNS if c not in PRIMARY_KEY]
    return (
        f"INSERT INTO {table} ({', '.join(ALERT_COLUMNS)})\n"
        f"VALUES {values}\n"
        f"ON CONFLICT ({', '.join(PRIMARY_KEY)}) DO UPDATE SET\n"
        + ",\n".join(f"    {c} = EXCLUDED.{c}" for c in updates)
        + f"\nWHERE {row_name}.version < EXCLUDED.version"
        + (f"\nRETURNING {returning}" if returning else "")
    )


def alerts_upsert_sql(table: str = "alerts") -> str:
    """INSERT ... ON CONFLICT DO UPDATE for one alert, with psycopg2 `%(name)s` parameters.

    Parameters are the keys of `alert_to_row`. An older or equal version changes nothing.
    """
    return _upsert(table, alerts_row_template())


def alerts_upsert_many_sql(table: str = "alerts") -> str:
    """The same upsert for psycopg2.extras.execute_values (`VALUES %s`, rows formatted with
    `alerts_row_template()`); RETURNING names only the rows actually written."""
    return _upsert(table, "%s", returning=", ".join(PRIMARY_KEY))


def alert_to_row(alert: Alert) -> dict[str, Any]:
    """Parameters for `alerts_upsert_sql`: psycopg2 adapts each value to its column type.

    Tuples become lists because psycopg2 adapts a list to ARRAY (a tuple would become a
    row constructor).
    """
    row: dict[str, Any] = {}
    for name in ALERT_COLUMNS:
        value = getattr(alert, name)
        row[name] = list(value) if isinstance(value, tuple) else value
    return row
