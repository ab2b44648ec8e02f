"""wait_until returns the condition's value as soon as it holds and names what it missed."""

from __future__ import annotations

import itertools
import time

import pytest

from infra.components.wait import WaitTimeout, wait_until


def test_returns_the_value_when_the_condition_holds():
    calls = itertools.count()
    assert wait_until(lambda: (n := next(calls)) >= 3 and n, 5, "third call") == 3


def test_a_condition_that_holds_at_once_costs_no_sleep():
    started = time.monotonic()
    wait_until(lambda: True, 5, "at once")
    assert time.monotonic() - started < 0.01


def test_fails_at_the_deadline_with_what_and_show():
    started = time.monotonic()
    with pytest.raises(AssertionError, match=r"not ready after 0.2 s: saw 41"):
        wait_until(lambda: False, 0.2, "ready", lambda: "saw 41", interval=0.05)
    assert 0.2 <= time.monotonic() - started < 2


def test_the_timeout_is_also_a_timeout_error():
    with pytest.raises(TimeoutError, match=r"^not drained after 0.1 s$"):
        wait_until(lambda: 0, 0.1, "drained", interval=0.02)
    assert issubclass(WaitTimeout, AssertionError)


def test_an_exception_in_the_predicate_propagates():
    def boom() -> bool:
        raise RuntimeError("process died")

    with pytest.raises(RuntimeError, match="process died"):
        wait_until(boom, 5, "never")


def test_tolerated_exceptions_count_as_not_yet():
    calls = itertools.count()

    def flaky() -> str:
        if next(calls) < 2:
            raise ConnectionRefusedError("starting")
        return "up"

    assert wait_until(flaky, 5, "up", tolerate=OSError) == "up"
    with pytest.raises(WaitTimeout, match=r"not up after 0\.1 s"):
        wait_until(lambda: 1 / 0, 0.1, "up", tolerate=ZeroDivisionError, interval=0.02)
