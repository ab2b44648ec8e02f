"""The database setup step on a real PostgreSQL: each service role may do its job and
nothing else. The sink's role is refused DDL, `COPY ... TO PROGRAM`, other tables, other
roles and databases, each with SQLSTATE 42501 and nothing written; passwords are SCRAM
verifiers, a wrong one is refused, and running the setup again rotates them."""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path

import psycopg2
import psycopg2.errors
import pytest

from infra.components.postgres import PostgresServer
from infra.components.postgres_setup import (
    LOCAL_ROLES,
    NOTIFIER,
    OWNER,
    SINK,
    Role,
    Roles,
    scram_verifier,
)
from libs.schemas.alert import Alert
from libs.schemas.sql import alert_to_row, alerts_upsert_sql

PROOF = Path("/tmp") / f"fraud-copy-to-program-{os.getpid()}"


@pytest.fixture(scope="module")
def postgres():
    data_dir = Path(tempfile.mkdtemp(prefix="pg-roles-", dir="/tmp"))
    os.chmod(data_dir, 0o755)  # as root the server runs as `nobody`
    server = PostgresServer(data_dir=data_dir / "cluster")
    server.start()
    server.setup()  # a second run changes nothing
    yield server
    server.destroy()


def connect(server: PostgresServer, role: Role):
    conn = psycopg2.connect(server.role_dsn(role), password=role.password)
    conn.autocommit = True
    return conn


def _alert(version: int) -> Alert:
    from datetime import UTC, datetime, timedelta
    from decimal import Decimal

    start = datetime(2026, 11, 28, 17, 0, tzinfo=UTC)
    return Alert(
        user_id="u-roles", window_start=start, window_end=start + timedelta(seconds=60),
        txn_count=version, distinct_countries=2, max_amount=Decimal("3000.01"),
        total_amount=Decimal("3000.01"), high_value=True, location_change=True,
        high_frequency=False, fraud_score=4, transaction_ids=("t1",), reasons=("r",),
        rule_version="v1", detected_at=start + timedelta(seconds=61),
        last_event_time=start + timedelta(seconds=59), version=version,
    )  # fmt: skip


def snapshot(server: PostgresServer) -> dict:
    """What a refused statement must not have changed: tables, columns, rows, roles."""
    with psycopg2.connect(server.dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT table_schema, table_name, column_name FROM information_schema.columns "
            "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2, 3"
        )
        columns = cur.fetchall()
        cur.execute("SELECT count(*) FROM alerts")
        alerts = cur.fetchone()[0]
        cur.execute("SELECT count(*) FROM notifications")
        notifications = cur.fetchone()[0]
        cur.execute("SELECT rolname, rolsuper, rolcreatedb, rolcreaterole FROM pg_roles ORDER BY 1")
        roles = cur.fetchall()
        cur.execute("SELECT datname FROM pg_database ORDER BY 1")
        databases = cur.fetchall()
        cur.execute("SELECT nspname FROM pg_namespace ORDER BY 1")
        schemas = cur.fetchall()
    return {"columns": columns, "alerts": alerts, "notifications": notifications,
            "roles": roles, "databases": databases, "schemas": schemas}  # fmt: skip


def test_roles_are_logins_without_any_power_and_scram_only(postgres):
    with psycopg2.connect(postgres.dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT rolname, rolsuper, rolcreatedb, rolcreaterole, rolreplication, "
            "rolbypassrls, rolcanlogin, left(rolpassword, 14) FROM pg_authid "
            "WHERE rolname = ANY(%s) ORDER BY 1",
            ([OWNER, SINK, NOTIFIER],),
        )
        rows = cur.fetchall()
        cur.execute("SELECT tablename, tableowner FROM pg_tables WHERE schemaname = 'public'")
        owners = dict(cur.fetchall())
        cur.execute("SHOW password_encryption")
        assert cur.fetchone()[0] == "scram-sha-256"
    assert rows == [
        (name, False, False, False, False, False, True, "SCRAM-SHA-256$")
        for name in sorted([OWNER, SINK, NOTIFIER])
    ]
    assert owners == {"alerts": OWNER, "notifications": OWNER, "notifier_offsets": OWNER}


def test_the_sink_role_reads_and_upserts_alerts(postgres):
    conn = connect(postgres, LOCAL_ROLES.sink)
    with conn.cursor() as cur:
        for version in (1, 2, 1):
            cur.execute(alerts_upsert_sql(), alert_to_row(_alert(version)))
        cur.execute("SELECT version FROM alerts WHERE user_id = 'u-roles'")
        assert cur.fetchall() == [(2,)]
        cur.execute("SELECT current_user, usesuper FROM pg_user WHERE usename = current_user")
        assert cur.fetchone() == (SINK, False)
    conn.close()


REFUSED_FOR_THE_SINK = {
    "create table": "CREATE TABLE stolen (x int)",
    "create temp table": "CREATE TEMP TABLE stolen (x int)",
    "drop table": "DROP TABLE alerts",
    "alter table": "ALTER TABLE alerts ADD COLUMN note text",
    "truncate": "TRUNCATE alerts",
    "delete": "DELETE FROM alerts",
    "create index": "CREATE INDEX stolen ON alerts (fraud_score)",
    "copy to program": f"COPY alerts TO PROGRAM 'touch {PROOF}'",
    "copy from program": f"COPY alerts FROM PROGRAM 'touch {PROOF}'",
    "copy to file": f"COPY alerts TO '{PROOF}'",
    "read notifications": "SELECT * FROM notifications",
    "write notifier offsets": "INSERT INTO notifier_offsets VALUES ('g', 't', 0, 0)",
    "create schema": "CREATE SCHEMA stolen",
    "create database": "CREATE DATABASE stolen",
    "create role": "CREATE ROLE stolen LOGIN",
    "become superuser": f"ALTER ROLE {SINK} SUPERUSER",
    "become the owner": f"SET ROLE {OWNER}",
    "read a server file": "SELECT pg_read_file('/etc/passwd')",
}


@pytest.mark.parametrize("statement", REFUSED_FOR_THE_SINK.values(), ids=REFUSED_FOR_THE_SINK)
def test_the_sink_role_is_refused_and_nothing_changes(postgres, statement):
    PROOF.unlink(missing_ok=True)
    before = snapshot(postgres)
    conn = connect(postgres, LOCAL_ROLES.sink)
    with pytest.raises(psycopg2.errors.InsufficientPrivilege) as info, conn.cursor() as cur:
        cur.execute(statement)
    conn.close()
    message = str(info.value)
    assert info.value.pgcode == "42501"
    assert "permission denied" in message or "must be" in message, message
    assert snapshot(postgres) == before
    assert not PROOF.exists()


def test_the_notifier_role_has_its_tables_and_not_the_alerts(postgres):
    conn = connect(postgres, LOCAL_ROLES.notifier)
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO notifier_offsets VALUES ('g', 't', 0, 5) ON CONFLICT "
            "(group_id, topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset"
        )
        cur.execute("SELECT next_offset FROM notifier_offsets")
        assert cur.fetchall() == [(5,)]
        for statement in ("SELECT * FROM alerts", "DELETE FROM notifications", "DROP TABLE alerts"):
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cur.execute(statement)
    conn.close()


def test_a_wrong_password_or_no_password_is_refused(postgres):
    for password in ("wrong", ""):
        with pytest.raises(psycopg2.OperationalError) as info:
            psycopg2.connect(postgres.role_dsn(LOCAL_ROLES.sink), password=password).close()
        assert "password authentication failed" in str(info.value) or (
            "no password supplied" in str(info.value)
        )


def test_running_the_setup_again_rotates_the_passwords(postgres):
    rotated = Roles(
        *(dataclasses.replace(r, password=r.password + "-rotated") for r in LOCAL_ROLES)
    )
    postgres.roles = rotated
    try:
        postgres.setup()
        connect(postgres, rotated.sink).close()
        with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
            connect(postgres, LOCAL_ROLES.sink)
    finally:
        postgres.roles = LOCAL_ROLES
        postgres.setup()
    connect(postgres, LOCAL_ROLES.sink).close()


def test_scram_verifier_is_postgres_format_and_salted():
    # The logins above prove the server accepts it; here its shape and the fresh salt.
    verifier = scram_verifier("pencil", b"0123456789abcdef")
    assert verifier.startswith("SCRAM-SHA-256$4096:MDEyMzQ1Njc4OWFiY2RlZg==$")
    assert verifier == scram_verifier("pencil", b"0123456789abcdef")
    assert verifier.count("$") == 2 and verifier.count(":") == 2
    assert verifier != scram_verifier("pencil")


def test_a_password_that_is_not_printable_ascii_is_refused():
    for bad in ("", "with space", "naïve"):
        with pytest.raises(ValueError, match="printable ASCII"):
            Role(SINK, bad)
