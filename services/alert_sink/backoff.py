"""Retry delays for database (and DLQ) outages: exponential, capped, with jitter.

Why: the sink never skips a batch, so during an outage it retries the same batch until it
succeeds. Exponential growth keeps a down database from being hammered, the cap bounds
how long recovery goes unnoticed, and jitter keeps several sinks from reconnecting in step.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

# 2**64 is far past any cap; bounding the exponent keeps the float finite.
_MAX_EXPONENT = 64


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay before retry number `attempt` (0 for the first retry).

    The base delay is `initial * multiplier**attempt`, capped at `maximum`; the jitter
    draws the actual delay uniformly from [base * (1 - jitter), base], so it never
    exceeds the cap ("equal jitter" with the default 0.5).
    """

    initial: float = 0.5
    maximum: float = 10.0
    multiplier: float = 2.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.maximum:
            raise ValueError(
                f"backoff initial={self.initial} must be > 0 and <= maximum={self.maximum}"
            )
        if self.multiplier < 1:
            raise ValueError(f"backoff multiplier={self.multiplier} must be >= 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"backoff jitter={self.jitter} must be within [0, 1]")

    def base(self, attempt: int) -> float:
        """The delay before jitter."""
        exponent = min(max(attempt, 0), _MAX_EXPONENT)
        return min(self.maximum, self.initial * self.multiplier**exponent)

    def delay(self, attempt: int, rng: random.Random) -> float:
        """The jittered delay to sleep before retry `attempt`."""
        base = self.base(attempt)
        return base * (1 - self.jitter * rng.random())
