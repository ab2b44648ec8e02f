"""The local stack's own arithmetic: counters carried across a service's restart, and
restarts and a crash loop in the summary line and the report."""

from __future__ import annotations

import pytest

from infra.local import Totals, parse_args, report, restart_policy, restarts_text


def test_a_counter_reset_by_a_restart_is_carried_over():
    totals = Totals()
    assert [totals("stored", v) for v in (0, 10, 25)] == [0, 10, 25]
    assert totals("stored", 4) == 29  # restarted: 25 before, 4 since
    assert totals("stored", 9) == 34
    assert totals("stored", 0) == 34  # restarted again, nothing new yet
    assert totals("other", 7) == 7  # keys are independent


def test_restarts_text_names_only_restarted_children():
    assert restarts_text({"detector": 0, "producer": 0}) == ""
    assert restarts_text({"detector": 2, "alert_sink": 1, "kafka": 0}) == (
        "alert_sink 1, detector 2"
    )


def _snap(**extra) -> dict:
    counters = ("detector_rows", "late_dropped", "dlq", "alerts_emitted", "alerts_stored")
    snap = {key: 0.0 for key in (*counters, "db_errors", "produced_fraud")}
    snap |= {"elapsed_s": 12.0, "latency_p50": None, "latency_p95": None, "latency_p99": None}
    return snap | extra


def test_report_counts_restarts_and_names_the_failure():
    rep = report(_snap(restarts={"producer": 0, "alert_sink": 1}), 100, None, "sink loops")
    assert rep["restarts"] == {"alert_sink": 1, "producer": 0}
    assert rep["failure"] == "sink loops"
    assert report(_snap(), 100, None)["restarts"] == {}


def test_restart_flags_become_the_policy(monkeypatch):
    monkeypatch.setenv("FRAUD_LOCAL_CRASH_LOOP_RESTARTS", "3")
    args = parse_args(["--restart-delay", "0.5", "--crash-loop-window", "60"])
    policy = restart_policy(args)
    assert (policy.delay, policy.max_restarts, policy.window) == (0.5, 3, 60.0)
    with pytest.raises(SystemExit, match=r"restart delay 50\.0 must be > 0 and <= 30\.0"):
        restart_policy(parse_args(["--restart-delay", "50"]))
