"""AlertStore against a real PostgreSQL: the multi-row upsert keeps the highest version,
reports exactly which rows it wrote, isolates rows the database refuses, and reconnects
after the server restarts."""

from __future__ import annotations

import dataclasses

import psycopg2
import pytest

from libs.schemas.sql import alerts_upsert_sql
from services.alert_sink import harness
from services.alert_sink.store import AlertStore, StoreError, safe_dsn, upsert_many_sql


@pytest.fixture(scope="module")
def postgres():
    server = harness.start_postgres()
    yield server
    server.destroy()


@pytest.fixture
def store(postgres, request):
    table = f"alerts_{request.node.name.removeprefix('test_')[:40]}"
    s = AlertStore(postgres.dsn, table)
    yield s
    s.close()


def test_many_sql_is_the_library_upsert_with_values_list_and_returning():
    sql, template = upsert_many_sql("alerts")
    assert "VALUES %s" in sql and sql.endswith("RETURNING user_id, window_start")
    assert sql.replace("VALUES %s", f"VALUES {template}").removesuffix(
        "\nRETURNING user_id, window_start"
    ) == alerts_upsert_sql("alerts")


def test_creates_table_and_keeps_highest_version(store, postgres):
    v1, v2, v3 = (harness.make_alert("u1", 0, v) for v in (1, 2, 3))
    other = harness.make_alert("u2", 0, 1)
    first = store.write([v2, other])
    assert {a.user_id for a in first.stored} == {"u1", "u2"}
    assert store.write([v2]).stored == ()  # same version again: no-op
    assert store.write([v1]).stored == ()  # older: ignored
    assert store.write([v3, other]).stored == (v3,)
    rows = harness.read_table(postgres.dsn, store.table)
    assert (
        harness.table_diff(rows, {("u1", v3.window_start): v3, ("u2", other.window_start): other})
        == ""
    )


def test_refused_row_is_isolated_and_the_rest_committed(store, postgres):
    good = [harness.make_alert(f"g{i}", 0, 1) for i in range(3)]
    bad = dataclasses.replace(harness.make_alert("nul", 0, 1), reasons=("a\x00b",))
    result = store.write([good[0], bad, good[1], good[2]])
    assert set(result.stored) == set(good)
    assert [(a.user_id, "NUL" in why) for a, why in result.rejected] == [("nul", True)]
    assert set(harness.read_table(postgres.dsn, store.table)) == {
        (a.user_id, a.window_start) for a in good
    }


def test_empty_batch_needs_no_database():
    store = AlertStore("host=127.0.0.1 port=1 dbname=x user=y connect_timeout=1")
    assert store.write([]).stored == ()
    assert not store.connected


def test_database_down_is_a_store_error_then_reconnects(store, postgres):
    alert = harness.make_alert("r1", 0, 1)
    store.write([alert])
    harness.stop_postgres_fast(postgres)
    with pytest.raises(StoreError) as info:
        store.write([harness.make_alert("r1", 0, 2)])
    assert info.value.kind in ("connection", "connect")
    assert not store.connected
    with pytest.raises(StoreError) as info:
        store.write([harness.make_alert("r1", 0, 2)])
    assert info.value.kind == "connect"
    postgres.start()
    assert len(store.write([harness.make_alert("r1", 0, 2)]).stored) == 1


def test_safe_dsn_hides_the_password():
    shown = safe_dsn("host=db user=u password=secret")
    assert sorted(shown.split()) == ["host=db", "user=u"]
    with pytest.raises(psycopg2.ProgrammingError):
        psycopg2.extensions.parse_dsn("not a dsn ===")
    assert safe_dsn("not a dsn ===") == "(unparsable DSN)"
