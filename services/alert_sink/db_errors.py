"""What a database error means for the sink, decided by its SQLSTATE alone.

Why by SQLSTATE: psycopg2's exception classes do not say whether retrying can help. A
3 KB user_id makes the upsert fail with 54000 (index row too large), which psycopg2
raises as OperationalError, the same class as a dropped connection; treating it as an
outage retried that one row forever with the partitions paused, and reported the database
down. The SQLSTATE class says what happened (PostgreSQL, Appendix A):
- the row's data (22 data exception, 23 integrity, 54 program limit, ...): that row goes
  to the DLQ, the batch goes on;
- the server is gone or refuses sessions (no SQLSTATE at all, 08, 57P01-57P03): retry,
  and the database is down;
- the server answered but cannot do it now (53 insufficient resources, 40 rollbacks such
  as 40001/40P01, the rest of 57, 58 system errors, XX internal): retry; it is up;
- anything else (42 schema or privileges, ...): retry, it is up, and the errors metric
  shows that someone has to look. A whole batch is never dropped for a non-row error.

Pure (no psycopg2) so the table is tested on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Disposition(StrEnum):
    """What to do about an error; the values are the `kind` label of the errors metric."""

    ROW = "row"  # the row is bad: dead-letter it, store the rest
    CONNECTION = "connection"  # no usable server: retry with backoff, db_up 0
    UNAVAILABLE = "unavailable"  # server answered, out of resources or shutting a query: retry
    CONFLICT = "conflict"  # serialization failure or deadlock: retry
    QUERY = "query"  # the server refused the statement for another reason: retry


@dataclass(frozen=True, slots=True)
class Classified:
    disposition: Disposition
    server_answered: bool  # the server is there (db_up stays 1)


# Most specific first: a full SQLSTATE, then its two-character class.
_BY_CODE: dict[str, Disposition] = {
    "57P01": Disposition.CONNECTION,  # admin_shutdown
    "57P02": Disposition.CONNECTION,  # crash_shutdown
    "57P03": Disposition.CONNECTION,  # cannot_connect_now (starting up, recovery)
}
_BY_CLASS: dict[str, Disposition] = {
    "08": Disposition.CONNECTION,  # connection exception
    "21": Disposition.ROW,  # cardinality violation
    "22": Disposition.ROW,  # data exception (value too long, out of range, bad encoding)
    "23": Disposition.ROW,  # integrity constraint violation
    "27": Disposition.ROW,  # triggered data change violation
    "44": Disposition.ROW,  # WITH CHECK OPTION violation
    "54": Disposition.ROW,  # program limit exceeded (index row size, too many columns)
    "P0": Disposition.ROW,  # raised by a PL/pgSQL trigger about the row it checks
    "40": Disposition.CONFLICT,  # transaction rollback (40001 serialization, 40P01 deadlock)
    "53": Disposition.UNAVAILABLE,  # insufficient resources (disk, memory, connections)
    "57": Disposition.UNAVAILABLE,  # operator intervention (57014 statement timeout, ...)
    "58": Disposition.UNAVAILABLE,  # system error (I/O)
    "XX": Disposition.UNAVAILABLE,  # internal error
}


def classify_sqlstate(sqlstate: str | None) -> Classified:
    """The disposition of an error with this SQLSTATE (None: no answer from the server)."""
    if not sqlstate:
        return Classified(Disposition.CONNECTION, server_answered=False)
    code = sqlstate.upper()
    disposition = _BY_CODE.get(code) or _BY_CLASS.get(code[:2], Disposition.QUERY)
    return Classified(disposition, server_answered=disposition is not Disposition.CONNECTION)


def describe(sqlstate: str | None, message: str) -> str:
    """The text a dead letter's `error` header carries after the reason."""
    return f"SQLSTATE {sqlstate}: {message}" if sqlstate else message
