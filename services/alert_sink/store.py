"""The PostgreSQL side of the sink: one transaction per batch, multi-row idempotent upsert.

Why: the sink commits Kafka offsets only after this module's database commit, so it must
say exactly when a batch is durable, and every failure must leave the batch whole for a
retry. The upsert comes from libs.schemas.sql (an older version never overwrites a newer
one, the same version twice is a no-op), so a retried or re-delivered batch is harmless.

A row PostgreSQL refuses (or psycopg2 cannot send, e.g. a NUL character in text) would
fail the whole batch forever; such rows are isolated with savepoints and returned as
rejected so the sink can dead-letter them instead of stalling. Which errors are the row's
fault is decided by SQLSTATE (db_errors.py), not by psycopg2's exception class: a 3 KB
user_id fails with 54000 as an OperationalError, yet it is that row's problem, and the
server is perfectly up.

The table is not created here: the sink's role (`fraud_sink`) may only SELECT, INSERT and
UPDATE it, and the database setup step (infra/components/postgres_setup.py) makes it.
`connect` checks that it exists and says so when it does not (retried: in compose the
sink may be up before the setup ran).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
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
from services.alert_sink.db_errors import Classified, Disposition, classify_sqlstate, describe

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

# What psycopg2 raises for a row before sending it (a NUL character in text): the row's
# fault, like a data SQLSTATE.
_CLIENT_ROW_ERRORS = (ValueError,)


class StoreError(Exception):
    """A database failure worth retrying; `kind` is the metric label, `server_answered`
    whether the server was there to say no (then the database counts as up)."""

    def __init__(
        self, kind: str, detail: str, server_answered: bool = False, sqlstate: str | None = None
    ) -> None:
        super().__init__(kind, detail)
        self.kind = kind
        self.detail = detail
        self.server_answered = server_answered
        self.sqlstate = sqlstate

    def __str__(self) -> str:
        return f"{self.kind}: {describe(self.sqlstate, self.detail)}"


# `kind` values of StoreError (fraud_sink_db_errors_total{kind}): a failed connect, then
# the dispositions of db_errors.py other than "row" (a row error is a dead letter).
ERROR_KINDS = ("connect", *(str(d) for d in Disposition if d is not Disposition.ROW))


def classify(err: BaseException) -> Classified:
    """The disposition of an exception from psycopg2 (or its client-side ValueError)."""
    if isinstance(err, _CLIENT_ROW_ERRORS):
        return Classified(Disposition.ROW, server_answered=True)
    return classify_sqlstate(getattr(err, "pgcode", None))


def _is_row_error(err: BaseException) -> bool:
    return isinstance(err, psycopg2.Error | ValueError) and (
        classify(err).disposition is Disposition.ROW
    )


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
    """One connection, (re)opened on demand; any failure closes it so the retry reconnects.

    `params`: libpq parameters over the DSN's (sslmode, sslrootcert); `password_file`: read
    at every connect (so a rotated password is picked up on the next reconnect)."""

    def __init__(
        self,
        dsn: str,
        table: str = "alerts",
        params: Mapping[str, str] | None = None,
        password_file: Path | str | None = None,
    ) -> None:
        self.dsn = dsn
        self.table = table
        self.params = dict(params or {})
        self.password_file = Path(password_file) if password_file else None
        alerts_ddl(table)  # validates the table name up front
        self._many_sql, self._template = upsert_many_sql(table)
        self._one_sql = self._many_sql.replace("VALUES %s", f"VALUES {self._template}")
        self._conn: Any = None

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.closed

    def connect(self) -> None:
        """Open the connection (if needed) and check that the table exists."""
        if self.connected:
            return
        given = psycopg2.extensions.parse_dsn(self.dsn)
        extra = {k: v for k, v in _CONNECTION_DEFAULTS.items() if k not in given}
        extra |= self.params
        try:
            if self.password_file is not None:
                extra["password"] = self.password_file.read_text().strip()
        except OSError as err:
            raise StoreError("connect", f"cannot read the password file: {err}") from err
        try:
            conn = psycopg2.connect(self.dsn, **extra)
        except psycopg2.Error as err:
            raise StoreError("connect", _first_line(err), sqlstate=err.pgcode) from err
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT to_regclass(%s)", (self.table,))
                (found,) = cur.fetchone()
            conn.rollback()
        except psycopg2.Error as err:
            conn.close()
            # Connected, so the server answered unless the session broke meanwhile.
            answered = classify(err).server_answered
            raise StoreError("connect", _first_line(err), answered, err.pgcode) from err
        if found is None:
            conn.close()
            raise StoreError(
                "connect",
                f"table {self.table} does not exist: the database setup step creates it "
                "(infra/components/postgres_setup.py; the postgres image, //infra:local "
                "and the tests' PostgresServer run it)",
                server_answered=True,
                sqlstate="42P01",
            )
        self._conn = conn

    def ping(self) -> None:
        """`SELECT 1`, reconnecting once if the connection in hand is dead (the server may
        have restarted meanwhile): StoreError if the database cannot answer."""
        for last in (not self.connected, True):
            self.connect()
            try:
                with self._conn.cursor() as cur:
                    cur.execute("SELECT 1")
                self._conn.rollback()
                return
            except psycopg2.Error as err:
                self.close()
                if last:
                    raise self._error(err) from err

    def write(self, alerts: Sequence[Alert]) -> WriteResult:
        """Upsert `alerts` (one per key, see batching.latest_per_key) in one transaction."""
        if not alerts:  # a batch of only bad messages needs no database
            return WriteResult((), (), time.time())
        self.connect()
        try:
            try:
                stored_keys = self._upsert_all(alerts)
                rejected: list[tuple[Alert, str]] = []
            except (psycopg2.Error, ValueError) as err:
                if not _is_row_error(err):
                    raise
                self._conn.rollback()
                stored_keys, rejected = self._upsert_one_by_one(alerts)
            self._conn.commit()
        except psycopg2.Error as err:
            self.close()
            raise self._error(err) from err
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
                except (psycopg2.Error, ValueError) as err:
                    if not _is_row_error(err):
                        raise  # the batch is retried as a whole
                    cur.execute("ROLLBACK TO SAVEPOINT alert_row")
                    sqlstate = getattr(err, "pgcode", None)
                    rejected.append((alert, describe(sqlstate, _first_line(err))))
                cur.execute("RELEASE SAVEPOINT alert_row")
        return stored, rejected

    @staticmethod
    def _error(err: psycopg2.Error) -> StoreError:
        classified = classify(err)
        kind = str(classified.disposition)
        if classified.disposition is Disposition.ROW:
            kind = str(Disposition.QUERY)  # a row error outside any row (e.g. at commit)
        return StoreError(kind, _first_line(err), classified.server_answered, err.pgcode)

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg2.Error):
                self._conn.close()
        self._conn = None


def _first_line(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0]
