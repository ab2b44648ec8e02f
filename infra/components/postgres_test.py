"""PostgreSQL starts from local binaries; the `alerts` table from libs/schemas' DDL takes an
alert, keeps the newest version and reads it back exactly."""

from __future__ import annotations

import dataclasses
import os
import tempfile
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg2
import pytest

from infra.components.postgres import PostgresServer
from libs.schemas.alert import Alert
from libs.schemas.sql import alert_to_row, alerts_ddl, alerts_upsert_sql


@pytest.fixture(scope="module")
def postgres():
    # Under /tmp and world-searchable: as root the server runs as `nobody`.
    data_dir = Path(tempfile.mkdtemp(prefix="pg-", dir="/tmp"))
    os.chmod(data_dir, 0o755)
    server = PostgresServer(data_dir=data_dir / "cluster")
    print(f"postgres ready in {server.start():.1f} s")
    yield server
    server.destroy()


def _alert(version: int, total: str) -> Alert:
    start = datetime(2026, 11, 28, 17, 0, tzinfo=UTC)
    return Alert(
        user_id="u-42",
        window_start=start,
        window_end=start + timedelta(seconds=60),
        txn_count=version,
        distinct_countries=2,
        max_amount=Decimal("3000.01"),
        total_amount=Decimal(total),
        high_value=True,
        location_change=True,
        high_frequency=False,
        fraud_score=4,
        transaction_ids=tuple(f"t{i}" for i in range(version)),
        reasons=("max_amount 3000.01 > 3000", "2 countries >= 2"),
        rule_version="v1",
        detected_at=start + timedelta(seconds=61),
        last_event_time=start + timedelta(seconds=59, milliseconds=123),
        version=version,
    )


def _rows(conn) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT user_id, window_start, version, total_amount, transaction_ids FROM alerts"
        )
        return cur.fetchall()


def test_alerts_table_upsert_keeps_newest_version(postgres):
    conn = psycopg2.connect(postgres.dsn)
    with conn, conn.cursor() as cur:
        cur.execute(alerts_ddl())
        cur.execute(alerts_ddl())  # idempotent
    upsert = alerts_upsert_sql()
    v2, v1, v3 = _alert(2, "3100.01"), _alert(1, "3000.01"), _alert(3, "3200.01")
    for alert in (v2, v2, v1):  # same version twice, then an older one
        with conn, conn.cursor() as cur:
            cur.execute(upsert, alert_to_row(alert))
    assert _rows(conn) == [("u-42", v2.window_start, 2, Decimal("3100.01"), ["t0", "t1"])]
    with conn, conn.cursor() as cur:
        cur.execute(upsert, alert_to_row(v3))
    assert _rows(conn) == [("u-42", v3.window_start, 3, Decimal("3200.01"), ["t0", "t1", "t2"])]

    with conn.cursor() as cur:
        cur.execute("SELECT * FROM alerts")
        names = [d.name for d in cur.description]
        stored = dict(zip(names, cur.fetchone(), strict=True))
    expected = alert_to_row(v3)
    assert stored == expected
    conn.close()


def test_primary_key_is_user_and_window(postgres):
    conn = psycopg2.connect(postgres.dsn)
    with conn, conn.cursor() as cur:
        cur.execute(alerts_ddl())
        other = dataclasses.replace(_alert(1, "1"), window_start=datetime(2026, 1, 1, tzinfo=UTC))
        cur.execute(alerts_upsert_sql(), alert_to_row(other))
        cur.execute(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
            "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = 'alerts'::regclass AND i.indisprimary "
            "ORDER BY array_position(i.indkey, a.attnum)"
        )
        assert [r[0] for r in cur.fetchall()] == ["user_id", "window_start"]
    conn.close()
