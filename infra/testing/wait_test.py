"""wait_until returns as soon as the condition holds and names what it missed."""

from __future__ import annotations

import itertools
import time

import pytest

from infra.testing.wait import wait_until


def test_returns_when_the_condition_holds():
    calls = itertools.count()
    took = wait_until(lambda: next(calls) >= 3, 5, "third call", interval=0.001)
    assert 0 <= took < 5


def test_fails_at_the_deadline_with_what_and_show():
    started = time.monotonic()
    with pytest.raises(AssertionError, match=r"not ready after 0.2 s: saw 41"):
        wait_until(lambda: False, 0.2, "ready", lambda: "saw 41")
    assert 0.2 <= time.monotonic() - started < 2


def test_an_exception_in_the_predicate_propagates():
    def boom() -> bool:
        raise RuntimeError("process died")

    with pytest.raises(RuntimeError, match="process died"):
        wait_until(boom, 5, "never")
