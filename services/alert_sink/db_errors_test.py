"""SQLSTATE -> what the sink does: the row is dead-lettered, or the batch is retried, and
whether the database counts as up."""

from __future__ import annotations

import pytest

from services.alert_sink.db_errors import Disposition, classify_sqlstate, describe

ROW, CONN, UNAV, CONFLICT, QUERY = (
    Disposition.ROW,
    Disposition.CONNECTION,
    Disposition.UNAVAILABLE,
    Disposition.CONFLICT,
    Disposition.QUERY,
)


@pytest.mark.parametrize(
    ("sqlstate", "disposition", "up"),
    [
        # The row's data: dead-letter it, the database answered.
        ("54000", ROW, True),  # program_limit_exceeded: index row size (3 KB user_id)
        ("54001", ROW, True),  # statement_too_complex
        ("22001", ROW, True),  # string_data_right_truncation
        ("22003", ROW, True),  # numeric_value_out_of_range
        ("22021", ROW, True),  # character_not_in_repertoire
        ("22P02", ROW, True),  # invalid_text_representation
        ("23505", ROW, True),  # unique_violation
        ("23514", ROW, True),  # check_violation
        ("21000", ROW, True),  # cardinality_violation
        ("P0001", ROW, True),  # raise_exception in a trigger
        ("44000", ROW, True),  # with_check_option_violation
        # No server to talk to: retry, the database is down.
        (None, CONN, False),  # no SQLSTATE: the connection broke, or never was
        ("", CONN, False),
        ("08006", CONN, False),  # connection_failure
        ("08001", CONN, False),  # sqlclient_unable_to_establish_sqlconnection
        ("57P01", CONN, False),  # admin_shutdown (fast shutdown)
        ("57P02", CONN, False),  # crash_shutdown
        ("57P03", CONN, False),  # cannot_connect_now (starting up)
        ("57p03", CONN, False),  # case does not matter
        # The server answered but cannot do it now: retry, it is up.
        ("53100", UNAV, True),  # disk_full
        ("53200", UNAV, True),  # out_of_memory
        ("53300", UNAV, True),  # too_many_connections
        ("57014", UNAV, True),  # query_canceled (statement_timeout)
        ("58030", UNAV, True),  # io_error
        ("XX000", UNAV, True),  # internal_error
        ("40001", CONFLICT, True),  # serialization_failure
        ("40P01", CONFLICT, True),  # deadlock_detected
        # Refused for a reason that is no row's fault: retry, someone has to look.
        ("42P01", QUERY, True),  # undefined_table
        ("42501", QUERY, True),  # insufficient_privilege
        ("25P02", QUERY, True),  # in_failed_sql_transaction
        ("0A000", QUERY, True),  # feature_not_supported
    ],
)
def test_classify_sqlstate(sqlstate, disposition, up):
    classified = classify_sqlstate(sqlstate)
    assert classified.disposition is disposition
    assert classified.server_answered is up


def test_dispositions_are_metric_labels():
    assert [str(d) for d in Disposition] == [
        "row", "connection", "unavailable", "conflict", "query",
    ]  # fmt: skip


def test_describe_puts_the_sqlstate_first():
    assert describe("54000", "index row size 3016 exceeds") == (
        "SQLSTATE 54000: index row size 3016 exceeds"
    )
    assert describe(None, "A string literal cannot contain NUL") == (
        "A string literal cannot contain NUL"
    )
