"""AlertStore against a real PostgreSQL, connected as the sink's least-privilege role
(password from a file): the multi-row upsert keeps the highest version, reports exactly
which rows it wrote, isolates rows the database refuses, reconnects after the server
restarts, and names the setup step when its table is missing."""

from __future__ import annotations

import dataclasses
import secrets

import psycopg2
import pytest

from infra.components.postgres_setup import LOCAL_ROLES
from infra.testing.alerts import stream_alert
from infra.testing.sink import start_postgres, stop_postgres_fast
from infra.testing.table import read_table, table_diff
from libs.schemas.sql import alerts_upsert_sql
from services.alert_sink.store import AlertStore, StoreError, safe_dsn, upsert_many_sql


@pytest.fixture(scope="module")
def postgres():
    server = start_postgres()
    yield server
    server.destroy()


@pytest.fixture(scope="module")
def password_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("secrets") / "sink-password"
    path.write_text(LOCAL_ROLES.sink.password + "\n")
    return path


def sink_store(postgres, table: str, password_file) -> AlertStore:
    """A store on `table` (made by the setup step) as the sink's role."""
    postgres.setup((table,))
    return AlertStore(postgres.role_dsn(LOCAL_ROLES.sink), table, password_file=password_file)


@pytest.fixture
def store(postgres, request, password_file):
    s = sink_store(
        postgres, f"alerts_{request.node.name.removeprefix('test_')[:40]}", password_file
    )
    yield s
    s.close()


def test_many_sql_is_the_library_upsert_with_values_list_and_returning():
    sql, template = upsert_many_sql("alerts")
    assert "VALUES %s" in sql and sql.endswith("RETURNING user_id, window_start")
    assert sql.replace("VALUES %s", f"VALUES {template}").removesuffix(
        "\nRETURNING user_id, window_start"
    ) == alerts_upsert_sql("alerts")


def test_keeps_highest_version(store, postgres):
    v1, v2, v3 = (stream_alert("u1", 0, v) for v in (1, 2, 3))
    other = stream_alert("u2", 0, 1)
    first = store.write([v2, other])
    assert {a.user_id for a in first.stored} == {"u1", "u2"}
    assert store.write([v2]).stored == ()  # same version again: no-op
    assert store.write([v1]).stored == ()  # older: ignored
    assert store.write([v3, other]).stored == (v3,)
    rows = read_table(postgres.dsn, store.table)
    assert table_diff(rows, {("u1", v3.window_start): v3, ("u2", other.window_start): other}) == ""


def test_refused_row_is_isolated_and_the_rest_committed(store, postgres):
    good = [stream_alert(f"g{i}", 0, 1) for i in range(3)]
    bad = dataclasses.replace(stream_alert("nul", 0, 1), reasons=("a\x00b",))
    result = store.write([good[0], bad, good[1], good[2]])
    assert set(result.stored) == set(good)
    assert [(a.user_id, "NUL" in why) for a, why in result.rejected] == [("nul", True)]
    assert set(read_table(postgres.dsn, store.table)) == {(a.user_id, a.window_start) for a in good}


def test_a_row_too_large_for_the_index_is_rejected_with_its_sqlstate(store, postgres):
    # Random text does not compress, so the primary key's btree entry is over its limit:
    # SQLSTATE 54000, which psycopg2 raises as OperationalError like a lost connection.
    huge = dataclasses.replace(stream_alert("x", 0, 1), user_id=secrets.token_urlsafe(2250))
    assert len(huge.user_id) == 3000
    good = [stream_alert(f"g{i}", 0, 1) for i in range(3)]
    result = store.write([good[0], huge, good[1], good[2]])
    assert set(result.stored) == set(good)
    ((alert, why),) = result.rejected
    assert alert is huge and why.startswith("SQLSTATE 54000: index row size"), why
    assert store.connected  # the server answered: nothing to reconnect
    assert set(read_table(postgres.dsn, store.table)) == {(a.user_id, a.window_start) for a in good}


def test_an_error_about_the_server_not_the_row_fails_the_batch(store, postgres):
    store.write([stream_alert("q1", 0, 1)])
    with psycopg2.connect(postgres.dsn) as conn, conn.cursor() as cur:
        cur.execute(f"ALTER TABLE {store.table} RENAME TO {store.table}_gone")
    try:
        with pytest.raises(StoreError) as info:
            # Reuses the open connection: the table it names is gone (42P01).
            store.write([stream_alert("q1", 0, 2)])
        assert (info.value.kind, info.value.sqlstate) == ("query", "42P01")
        assert info.value.server_answered
        assert "SQLSTATE 42P01" in str(info.value)
    finally:
        with psycopg2.connect(postgres.dsn) as conn, conn.cursor() as cur:
            cur.execute(f"ALTER TABLE {store.table}_gone RENAME TO {store.table}")
    assert len(store.write([stream_alert("q1", 0, 2)]).stored) == 1


def test_a_missing_table_is_a_connect_error_naming_the_setup_step(postgres, password_file):
    store = AlertStore(postgres.role_dsn(LOCAL_ROLES.sink), "alerts_never_set_up",
                       password_file=password_file)  # fmt: skip
    with pytest.raises(StoreError) as info:
        store.write([stream_alert("m1", 0, 1)])
    assert (info.value.kind, info.value.sqlstate) == ("connect", "42P01")
    assert "table alerts_never_set_up does not exist" in str(info.value)
    assert "postgres_setup" in str(info.value) and not store.connected


def test_a_wrong_password_file_is_refused(postgres, tmp_path):
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-password\n")
    store = AlertStore(postgres.role_dsn(LOCAL_ROLES.sink), "alerts", password_file=wrong)
    with pytest.raises(StoreError) as info:
        store.ping()
    assert info.value.kind == "connect"
    assert "password authentication failed" in str(info.value)
    missing = AlertStore(postgres.dsn, "alerts", password_file=tmp_path / "absent")
    with pytest.raises(StoreError, match="cannot read the password file"):
        missing.ping()


def test_ping_answers_reconnects_and_reports_an_unreachable_server(postgres, password_file):
    store = sink_store(postgres, "alerts_ping", password_file)
    store.ping()
    assert store.connected
    with psycopg2.connect(postgres.dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'alert_sink' AND pid <> pg_backend_pid()"
        )
    store.ping()  # the dead connection is replaced at once
    store.close()
    down = AlertStore("host=127.0.0.1 port=1 dbname=x user=y connect_timeout=1")
    with pytest.raises(StoreError) as info:
        down.ping()
    assert info.value.kind == "connect" and not info.value.server_answered


def test_empty_batch_needs_no_database():
    store = AlertStore("host=127.0.0.1 port=1 dbname=x user=y connect_timeout=1")
    assert store.write([]).stored == ()
    assert not store.connected


def test_database_down_is_a_store_error_then_reconnects(store, postgres):
    alert = stream_alert("r1", 0, 1)
    store.write([alert])
    stop_postgres_fast(postgres)
    with pytest.raises(StoreError) as info:
        store.write([stream_alert("r1", 0, 2)])
    assert info.value.kind in ("connection", "connect")
    assert not store.connected
    with pytest.raises(StoreError) as info:
        store.write([stream_alert("r1", 0, 2)])
    assert info.value.kind == "connect"
    postgres.start()
    assert len(store.write([stream_alert("r1", 0, 2)]).stored) == 1


def test_safe_dsn_hides_the_password():
    shown = safe_dsn("host=db user=u password=secret")
    assert sorted(shown.split()) == ["host=db", "user=u"]
    with pytest.raises(psycopg2.ProgrammingError):
        psycopg2.extensions.parse_dsn("not a dsn ===")
    assert safe_dsn("not a dsn ===") == "(unparsable DSN)"
