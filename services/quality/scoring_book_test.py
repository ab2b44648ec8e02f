"""The scoring rules: window alignment, TP/FP/FN, patterns, lateness, closing and eviction."""

from __future__ import annotations

import math

import pytest

from services.quality.scoring_book import (
    MAX_PATTERNS,
    OTHER_PATTERN,
    UNKNOWN_PATTERN,
    BookSettings,
    ScoringBook,
    Totals,
    ratio,
)

T0 = 1_795_885_200  # 2026-11-28T17:00:00Z, a multiple of 60


def book(**settings: float) -> ScoringBook:
    return ScoringBook(BookSettings(**settings))  # type: ignore[arg-type]


def verdict(t: Totals) -> tuple[int, int, int]:
    return t.true_positives, t.false_positives, t.false_negatives


# -- alignment ---------------------------------------------------------------------------


def test_window_boundary_59_999_vs_60_000() -> None:
    b = book()
    assert b.window_start(T0 + 59.999) == T0
    assert b.window_start(T0 + 59.999999) == T0
    assert b.window_start(T0 + 60.0) == T0 + 60
    b.observe_transaction("u", T0 + 59.999, "1", "high_amount")
    b.observe_transaction("u", T0 + 60.000, "1", "high_amount")
    b.observe_alert("u", T0)  # only the first window is alerted
    b.close_all()
    t = b.totals()
    assert verdict(t) == (1, 0, 1)
    assert t.fraud_windows == {"high_amount": 2}
    assert t.detected_windows == {"high_amount": 1}


def test_windows_are_aligned_to_the_epoch_not_to_the_first_event() -> None:
    b = book(window_seconds=10)
    assert b.window_start(T0 + 7.5) == T0
    assert b.window_start(T0 + 10) == T0 + 10
    assert b.window_start(0) == 0
    assert b.window_start(-0.5) == -10  # floor, not truncation, before 1970


def test_alert_window_start_is_the_key_not_the_event_time() -> None:
    b = book()
    b.observe_transaction("u", T0 + 30, "1", "rapid_fire")
    b.observe_alert("u", T0 + 60)  # next window: no fraud there
    b.close_all()
    assert verdict(b.totals()) == (0, 1, 1)


def test_users_are_separate_windows() -> None:
    b = book()
    b.observe_transaction("a", T0 + 1, "1", "high_amount")
    b.observe_alert("b", T0)
    b.close_all()
    assert verdict(b.totals()) == (0, 1, 1)


# -- verdicts ----------------------------------------------------------------------------


def test_tp_fp_fn_and_ratios() -> None:
    b = book()
    b.observe_transaction("tp", T0 + 1, "1", "high_amount")
    b.observe_alert("tp", T0)
    b.observe_transaction("fp", T0 + 2, "0", "")
    b.observe_alert("fp", T0)
    b.observe_transaction("fn", T0 + 3, "1", "country_hop")
    b.observe_transaction("tn", T0 + 4, "0", "")
    b.close_all()
    t = b.totals()
    assert verdict(t) == (1, 1, 1)
    assert t.precision == 0.5
    assert t.recall == 0.5
    assert t.transactions == {"1": 2, "0": 2}
    assert t.alerts == 2


def test_one_fraud_transaction_makes_a_fraud_window() -> None:
    b = book()
    for i in range(5):
        b.observe_transaction("u", T0 + i, "0", "")
    b.observe_transaction("u", T0 + 10, "1", "risky_merchant")
    b.observe_alert("u", T0)
    b.close_all()
    assert verdict(b.totals()) == (1, 0, 0)


def test_alert_versions_count_once() -> None:
    b = book()
    b.observe_transaction("u", T0 + 1, "1", "rapid_fire")
    for _ in range(4):  # the detector re-emits as the window grows
        b.observe_alert("u", T0)
    b.close_all()
    t = b.totals()
    assert verdict(t) == (1, 0, 0)
    assert t.alerts == 4


def test_alert_before_its_transactions_still_matches() -> None:
    b = book()
    b.observe_transaction("other", T0 + 1, "0", "")  # the monitor's view starts here
    b.observe_alert("u", T0)
    b.observe_transaction("u", T0 + 5, "1", "high_amount")
    b.close_all()
    assert verdict(b.totals()) == (1, 0, 0)


def test_several_patterns_count_for_each() -> None:
    b = book()
    b.observe_transaction("u", T0 + 1, "1", "country_hop")
    b.observe_transaction("u", T0 + 2, "1", "country_hop")
    b.observe_transaction("u", T0 + 3, "1", "rapid_fire")
    b.observe_alert("u", T0)
    b.observe_transaction("v", T0 + 3, "1", "rapid_fire")
    b.close_all()
    t = b.totals()
    assert verdict(t) == (1, 0, 1)  # windows are counted once in TP/FN
    assert t.fraud_windows == {"country_hop": 1, "rapid_fire": 2}
    assert t.detected_windows == {"country_hop": 1, "rapid_fire": 1}
    assert t.pattern_recall("country_hop") == 1.0
    assert t.pattern_recall("rapid_fire") == 0.5
    assert t.pattern_recall("never_seen") is None


def test_fraud_without_pattern_header_is_unknown_pattern() -> None:
    b = book()
    b.observe_transaction("u", T0 + 1, "1", "")
    b.close_all()
    assert b.totals().fraud_windows == {UNKNOWN_PATTERN: 1}


def test_pattern_names_are_capped() -> None:
    b = book()
    for i in range(MAX_PATTERNS + 10):
        b.observe_transaction(f"u{i}", T0 + 1, "1", f"p{i}")
    b.observe_transaction("again", T0 + 1, "1", "p0")  # a kept name stays itself
    b.close_all()
    t = b.totals()
    assert len(t.fraud_windows) == MAX_PATTERNS + 1
    assert t.fraud_windows[OTHER_PATTERN] == 10
    assert t.fraud_windows["p0"] == 2
    assert len(b._pattern_bits) == MAX_PATTERNS  # overflow names are not remembered


def test_only_label_1_is_fraud() -> None:
    b = book()
    for label in ("0", "missing", "invalid"):
        b.observe_transaction(f"u-{label}", T0 + 1, label, "high_amount")
    b.close_all()
    t = b.totals()
    assert verdict(t) == (0, 0, 0)
    assert t.transactions == {"0": 1, "missing": 1, "invalid": 1}
    assert t.fraud_windows == {}


def test_ratios_are_none_without_evidence() -> None:
    assert ratio(0, 0) is None
    assert ratio(3, 4) == 0.75
    t = book().totals()
    assert t.precision is None and t.recall is None
    b = book()
    b.observe_transaction("u", T0, "1", "high_amount")
    b.close_all()  # one FN, no alert at all
    t = b.totals()
    assert t.precision is None
    assert t.recall == 0.0


# -- closing -----------------------------------------------------------------------------


def test_close_until_scores_windows_ending_at_or_before_the_watermark() -> None:
    b = book()
    b.observe_transaction("u", T0 + 1, "1", "high_amount")
    assert b.close_until(T0 + 59.999) == 0
    assert verdict(b.totals()) == (0, 0, 0)
    assert b.open_windows == 1
    assert b.close_until(T0 + 60) == 1
    assert verdict(b.totals()) == (0, 0, 1)
    assert b.open_windows == 0


def test_close_ready_waits_for_watermark_plus_grace_of_event_time() -> None:
    b = book(watermark_seconds=30, grace_seconds=15)
    b.observe_transaction("u", T0 + 1, "1", "high_amount")
    b.observe_transaction("clock", T0 + 104.999, "0", "")
    assert b.close_ready() == 0  # window end 60 + 45 > 104.999
    b.observe_alert("u", T0)  # still on time
    b.observe_transaction("clock", T0 + 105, "0", "")
    assert b.close_ready() == 1
    assert verdict(b.totals()) == (1, 0, 0)
    assert b.totals().closed_through == T0 + 60


def test_clock_is_the_newest_event_time_not_the_last() -> None:
    b = book()
    assert b.clock is None
    assert b.close_ready() == 0
    b.observe_transaction("u", T0 + 200, "0", "")
    b.observe_transaction("u", T0 + 100, "0", "")  # out of order, not late
    assert b.clock == T0 + 200
    assert b.totals().late_transactions == 0


def test_watermark_never_moves_back() -> None:
    b = book()
    b.close_until(T0 + 120)
    assert b.close_until(T0 + 60) == 0
    assert b.totals().closed_through == T0 + 120


def test_close_all_scores_everything_and_later_input_is_late() -> None:
    b = book()
    b.observe_transaction("u", T0 + 1, "1", "high_amount")
    b.observe_transaction("v", T0 + 1000, "1", "high_amount")
    assert b.close_all() == 2
    assert b.open_windows == 0
    assert b.observe_alert("v", T0 + 960) is False
    assert b.observe_transaction("w", T0 + 5000, "1", "x") is False
    t = b.totals()
    assert (t.late_alerts, t.late_transactions) == (1, 1)
    assert verdict(t) == (0, 0, 2)


# -- lateness ----------------------------------------------------------------------------


def test_late_alert_is_counted_and_does_not_rescore() -> None:
    b = book()
    b.observe_transaction("u", T0 + 1, "1", "high_amount")
    b.close_until(T0 + 60)
    assert verdict(b.totals()) == (0, 0, 1)
    assert b.observe_alert("u", T0) is False
    t = b.totals()
    assert verdict(t) == (0, 0, 1)  # stays a false negative
    assert t.late_alerts == 1
    assert t.alerts == 1
    assert b.open_windows == 0  # and nothing was stored for it


def test_alert_for_an_open_window_is_not_late() -> None:
    b = book()
    b.close_until(T0 + 60)
    assert b.observe_alert("u", T0 + 60) is True
    assert b.totals().late_alerts == 0


def test_late_transaction_is_counted_and_ignored() -> None:
    b = book()
    b.observe_transaction("u", T0 + 200, "0", "")
    b.close_until(T0 + 120)
    assert b.observe_transaction("u", T0 + 119.5, "1", "high_amount") is False
    b.close_all()
    t = b.totals()
    assert t.late_transactions == 1
    assert t.transactions == {"0": 1, "1": 1}  # read, counted, but not scored
    assert verdict(t) == (0, 0, 0)
    assert t.clock == T0 + 200


# -- before the monitor's view -----------------------------------------------------------


def test_alert_for_a_window_before_any_transaction_read_is_not_a_false_positive() -> None:
    b = book()
    b.observe_alert("u", T0)  # e.g. after a restart: its transactions were read before
    b.observe_transaction("v", T0 + 60, "0", "")  # first transaction read
    b.observe_alert("v", T0 + 60)  # a window we can judge: a real FP
    b.close_all()
    t = b.totals()
    assert t.alerts_before_view == 1
    assert verdict(t) == (0, 1, 0)


def test_window_straddling_the_first_transaction_is_judged() -> None:
    b = book()
    b.observe_transaction("v", T0 + 30, "0", "")
    b.observe_alert("u", T0)  # window [T0, T0+60) contains T0+30: in view
    b.close_all()
    assert verdict(b.totals()) == (0, 1, 0)
    assert b.totals().alerts_before_view == 0


def test_no_transactions_at_all_judges_nothing() -> None:
    b = book()
    b.observe_alert("u", T0)
    b.close_all()
    t = b.totals()
    assert verdict(t) == (0, 0, 0)
    assert t.alerts_before_view == 1


# -- memory ------------------------------------------------------------------------------


def test_only_fraud_or_alerted_windows_take_memory() -> None:
    b = book()
    for i in range(1000):
        b.observe_transaction(f"user-{i}", T0 + i % 60, "0", "")
    assert b.open_windows == 0
    b.observe_transaction("f", T0 + 1, "1", "high_amount")
    b.observe_alert("a", T0)
    assert b.open_windows == 2


def test_closed_windows_are_evicted_in_a_long_run() -> None:
    """An hour of event time at one fraud window per second: memory stays flat."""
    b = book()
    peak = 0
    for second in range(3600):
        t = T0 + second
        b.observe_transaction(f"u{second}", t + 0.5, "1", "rapid_fire")
        if second % 2:
            b.observe_alert(f"u{second}", b.window_start(t))
        b.observe_transaction("bystander", t + 0.9, "0", "")
        b.close_ready()
        peak = max(peak, b.open_windows)
    # Open: at most the windows within watermark + grace + one window of the clock.
    assert peak <= 60 + 45 + 1
    assert len(b._open) <= 3  # window starts held: the current one and two behind
    b.close_all()
    t = b.totals()
    assert b.open_windows == 0 and b._open == {}
    assert t.true_positives + t.false_negatives == 3600
    assert (t.true_positives, t.false_negatives) == (1800, 1800)


# -- settings ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"window_seconds": 0}, "window_seconds=0 must be > 0"),
        ({"window_seconds": 1.5}, "must be an integer"),
        ({"window_seconds": True}, "must be an integer"),
        ({"watermark_seconds": -1}, "watermark_seconds=-1 must be"),
        ({"grace_seconds": math.inf}, "grace_seconds=inf must be"),
        ({"grace_seconds": math.nan}, "grace_seconds=nan must be"),
    ],
)
def test_bad_settings_are_refused(settings: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BookSettings(**settings)  # type: ignore[arg-type]


def test_delay_is_watermark_plus_grace() -> None:
    assert BookSettings().delay == 45.0
    assert BookSettings(watermark_seconds=10, grace_seconds=0).delay == 10


def test_totals_snapshot_is_detached_from_the_book() -> None:
    b = book()
    b.observe_transaction("u", T0, "1", "high_amount")
    before = b.totals()
    b.close_all()
    assert before.fraud_windows == {}
    assert before.open_windows == 1
    assert b.totals().fraud_windows == {"high_amount": 1}
