"""The one polling helper: wait for a condition with a deadline, never a fixed sleep.

Why: a fixed sleep is either too short on a loaded machine (a flaky test) or too long
everywhere else; polling against a deadline is as fast as the system allows and, when it
gives up, says what it waited for and what it saw. Tests, the component runners, the local
stack and the benchmarks all wait through this function.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError, TimeoutError):
    """The condition did not hold in time: a failed assertion in a test, a TimeoutError
    for the runners that report and go on."""


def wait_until(
    predicate: Callable[[], T],
    timeout: float,
    what: str,
    show: Callable[[], str] = lambda: "",
    interval: float = 0.5,
    tolerate: type[BaseException] | tuple[type[BaseException], ...] = (),
) -> T:
    """Poll `predicate` until it returns something truthy, and return that value.

    Polls quickly at first and backs off to one poll per `interval` seconds, so a
    condition that holds at once costs milliseconds and a long wait does not load the
    machine. An exception of a `tolerate` type counts as "not yet" (a server still
    starting); any other propagates at once (a probe can fail fast, e.g. its process died).
    At the deadline: WaitTimeout "not <what> after <timeout> s: <show()>".
    """
    deadline = time.monotonic() + timeout
    pause = min(0.02, interval)
    while True:
        try:
            value = predicate()
        except tolerate:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            seen = show()
            raise WaitTimeout(f"not {what} after {timeout:g} s" + (f": {seen}" if seen else ""))
        time.sleep(pause)
        pause = min(pause * 2, interval)
