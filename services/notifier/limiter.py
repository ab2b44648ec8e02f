"""Per-destination rate limit in fixed periods: up to N individual messages per period;
whatever is still waiting when the budget is spent goes out as one digest when the next
period starts. Pure logic (the clock is an argument), so it is tested without waiting.

Why a digest and not a drop: a burst of fraud is exactly when people must hear about
every alert, just not as 500 pings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from services.notifier.destinations import RateLimit


@dataclass
class Window:
    limit: RateLimit
    period: int = field(default=-1)
    used: int = 0
    overflowed: bool = False  # something waited past the budget in an earlier period

    def _roll(self, now: float) -> bool:
        period = math.floor(now / self.limit.per_seconds)
        if period != self.period:
            self.period, self.used = period, 0
            return True
        return False

    def plan(self, now: float, waiting: int) -> tuple[int, bool]:
        """(how many to send individually now, whether to send the rest as a digest now)."""
        rolled = self._roll(now)
        if self.overflowed and rolled and waiting:
            return 0, True
        budget = self.limit.messages - self.used
        if waiting > budget:
            self.overflowed = True
        return max(0, min(waiting, budget)), False

    def spent(self, count: int) -> None:
        self.used += count

    def digest_sent(self) -> None:
        self.overflowed = False
        self.used += 1

    def next_period_at(self) -> float:
        return (self.period + 1) * self.limit.per_seconds
