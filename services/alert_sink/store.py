"""The PostgreSQL side of the sink: one transaction per batch, multi-row idempotent upsert.

Why: the sink commits Kafka offsets only after this module's database commit, so it must
say exactly when a batch is durable, and every failure must leave the batch whole for a
retry. The upsert comes from libs.schemas.sql (an older version never overwrites a newer
one, the same version twice is a no-op), so a retried or re-delivered batch is harmless.

A row PostgreSQL refuses (or psycopg2 cannot send, e.g. a NUL character in text) would
fail the whole batch forever; such rows are isolated with savepoints and returned as
rejected so the sink can dead-letter them instead of stalling.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg2
import psycopg2.extensions
import psycopg2.extras

from libs.schemas.alert import Alert
from libs.schemas.sql import (
    alert_to_row,
    alerts_ddl,
    alerts_row_template,
    alerts_upsert_many_sql,
)

# Connection defaults a DSN may override. Short timeouts and TCP keepalives make a dead
# server an error within seconds instead of a hang; the consumer must keep polling.
_CONNECTION_DEFAULTS: dict[str, str] = {
    "application_name": "alert_sink",
    "connect_timeout": "5",
    "keepalives": "1",
    "keepalives_idle": "5",
    "keepalives_interval": "2",
    "keepalives_count": "3",
    "tcp_user_timeout": "10000",
    "options": "-c statement_timeout=30000 -c timezone=UTC",
}

# Data errors are about a row, not about the database: retrying cannot fix them.
_ROW_ERRORS = (psycopg2.DataError, psycopg2.IntegrityError, ValueError)


class StoreError(Exception):
    """A database failure worth retrying; `kind` is the metric label."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(kind, detail)
        self.kind = kind
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}"


# `kind` values of StoreError (fraud_sink_db_errors_total{kind}).
ERROR_KINDS = ("connect", "connection", "query")


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What one committed batch did. `stored`: rows inserted or updated (a newer version);
    `rejected`: alerts the database refused, with its message; `committed_at`: Unix time
    of the database commit."""

    stored: tuple[Alert, ...]
    rejected: tuple[tuple[Alert, str], ...]
    committed_at: float


def upsert_many_sql(table: str) -> tuple[str, str]:
    """(statement, row template) for psycopg2.extras.execute_values.

    RETURNING lists only rows that were inserted or updated: a write the WHERE clause
    ignored (older or equal version) returns nothing.
    """
    return alerts_upsert_many_sql(table), alerts_row_template()


def safe_dsn(dsn: str) -> str:
    """The DSN without its password, for logs."""
    try:
        parts = psycopg2.extensions.parse_dsn(dsn)
    except psycopg2.ProgrammingError:
        return "(unparsable DSN)"
    return " ".join(f"{k}={v}" for k, v in parts.items() if k != "password")


class AlertStore:
    """One connection, (re)opened on demand; any failure closes it so the retry reconnects."""

    def __init__(self, dsn: str, table: str = "alerts") -> None:
        self.dsn = dsn
        self.table = table
        self._ddl = alerts_ddl(table)  # validates the table name up front
        self._many_sql, self._template = upsert_many_sql(table)
        self._one_sql = self._many_sql.replace("VALUES %s", f"VALUES {self._template}")
        self._conn: Any = None

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.closed

    def connect(self) -> None:
        """Open the connection (if needed) and create the table if it does not exist."""
        if self.connected:
            return
        given = psycopg2.extensions.parse_dsn(self.dsn)
        extra = {k: v for k, v in _CONNECTION_DEFAULTS.items() if k not in given}
        try:
            conn = psycopg2.connect(self.dsn, **extra)
        except psycopg2.Error as err:
            raise StoreError("connect", _first_line(err)) from err
        try:
            with conn.cursor() as cur:
                cur.execute(self._ddl)
            conn.commit()
        except psycopg2.Error as err:
            conn.close()
            raise StoreError("connect", _first_line(err)) from err
        self._conn = conn

    def write(self, alerts: Sequence[Alert]) -> WriteResult:
        """Upsert `alerts` (one per key, see batching.latest_per_key) in one transaction."""
        if not alerts:  # a batch of only bad messages needs no database
            return WriteResult((), (), time.time())
        self.connect()
        try:
            try:
                stored_keys = self._upsert_all(alerts)
                rejected: list[tuple[Alert, str]] = []
            except _ROW_ERRORS:
                self._conn.rollback()
                stored_keys, rejected = self._upsert_one_by_one(alerts)
            self._conn.commit()
        except psycopg2.Error as err:
            self.close()
            lost = isinstance(err, psycopg2.OperationalError | psycopg2.InterfaceError)
            kind = "connection" if lost else "query"
            raise StoreError(kind, _first_line(err)) from err
        committed_at = time.time()
        stored = tuple(a for a in alerts if (a.user_id, a.window_start) in stored_keys)
        return WriteResult(stored, tuple(rejected), committed_at)

    def _upsert_all(self, alerts: Sequence[Alert]) -> set[tuple[str, Any]]:
        with self._conn.cursor() as cur:
            returned = psycopg2.extras.execute_values(
                cur,
                self._many_sql,
                [alert_to_row(a) for a in alerts],
                template=self._template,
                page_size=len(alerts),  # one statement: keys are unique within the batch
                fetch=True,
            )
        return {(user_id, window_start) for user_id, window_start in returned}

    def _upsert_one_by_one(
        self, alerts: Sequence[Alert]
    ) -> tuple[set[tuple[str, Any]], list[tuple[Alert, str]]]:
        """Slow path after a row error: each row under a savepoint, refused rows set aside."""
        stored: set[tuple[str, Any]] = set()
        rejected: list[tuple[Alert, str]] = []
        with self._conn.cursor() as cur:
            for alert in alerts:
                cur.execute("SAVEPOINT alert_row")
                try:
                    cur.execute(self._one_sql, alert_to_row(alert))
                    stored.update((u, w) for u, w in cur.fetchall())
                except _ROW_ERRORS as err:
                    cur.execute("ROLLBACK TO SAVEPOINT alert_row")
                    rejected.append((alert, _first_line(err)))
                cur.execute("RELEASE SAVEPOINT alert_row")
        return stored, rejected

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg2.Error):
                self._conn.close()
        self._conn = None


def _first_line(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0]
