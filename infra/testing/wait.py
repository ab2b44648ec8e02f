"""The one polling helper of the tests: wait for a condition with a deadline, never a sleep.

Why: a fixed sleep is either too short on a loaded machine (a flaky test) or too long
everywhere else; polling against a deadline is as fast as the system allows and, when
it gives up, says what it waited for and what it saw.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(
    predicate: Callable[[], object],
    timeout: float,
    what: str,
    show: Callable[[], str] = lambda: "",
    interval: float = 0.05,
) -> float:
    """Poll `predicate` until it returns something truthy; returns the seconds it took.

    At the deadline: AssertionError "not <what> after <timeout> s: <show()>". An exception
    from `predicate` propagates (a probe can fail fast, e.g. when its process died).
    """
    started = time.monotonic()
    deadline = started + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not {what} after {timeout:g} s: {show()}")
        time.sleep(interval)
    return time.monotonic() - started
