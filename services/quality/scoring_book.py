"""Alerts scored against ground truth per (user_id, event-time window): the monitor's core.

Why a pure class: what counts as a true positive, when a window is final, and what to do
with stragglers are the decisions that make the precision/recall gauges trustworthy, so
they live here, free of Kafka and Prometheus, and are tested exhaustively.

Semantics (docs/design.md "Detection semantics"):
- Windows are tumbling, `window_seconds` long, aligned to the Unix epoch, per user_id;
  a transaction at t belongs to the window starting at floor(t / W) * W.
- A window is a fraud window when it holds >= 1 transaction labelled "1"; the patterns
  of those transactions are remembered. It is alerted when an alert for
  (user_id, window_start) arrived (any version; repeats change nothing).
- A window is final (scored, then evicted) once `close_until(w)` is called with
  window_end <= w. The monitor passes the event-time clock (newest transaction seen)
  minus watermark minus grace, so replays and tests score deterministically.
- TP = fraud & alerted, FP = alerted & not fraud, FN = fraud & not alerted. Windows that
  are neither are never stored: only fraud or alerted windows take memory, and each is
  one small int (bit 0: alerted, bit i: pattern i) in a dict, so a live run at 25k tx/s
  holds a few hundred thousand windows at most, in tens of MB.
- Pattern names come from a header, so at most `MAX_PATTERNS` distinct ones are kept
  (they become metric labels); any further name is counted as `OTHER_PATTERN`.
- An alert or transaction for a window that is already final is counted as late and
  changes nothing (a window is scored exactly once).
- An alerted window with no fraud that ends before the oldest transaction this book has
  seen cannot be judged (its transactions were before the monitor's view, e.g. after a
  restart from committed offsets): it is counted as `alerts_before_view`, not as an FP.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

FRAUD_LABEL = "1"
UNKNOWN_PATTERN = "unknown"  # fraud-label "1" with an empty fraud-pattern header
OTHER_PATTERN = "other"  # every pattern name after the first MAX_PATTERNS
MAX_PATTERNS = 32
_ALERTED = 1  # bit 0 of a window's state; bit i + 1 is pattern i


def ratio(numerator: int, denominator: int) -> float | None:
    """numerator / denominator, or None when nothing was counted (0 / 0 is no evidence)."""
    return numerator / denominator if denominator else None


@dataclass(frozen=True, slots=True)
class BookSettings:
    """Window length and how long after window_end (event time) a window stays open."""

    window_seconds: int = 60
    watermark_seconds: float = 30.0
    grace_seconds: float = 15.0

    def __post_init__(self) -> None:
        if isinstance(self.window_seconds, bool) or not isinstance(self.window_seconds, int):
            raise ValueError(f"window_seconds={self.window_seconds!r} must be an integer")
        if self.window_seconds <= 0:
            raise ValueError(f"window_seconds={self.window_seconds} must be > 0")
        for name in ("watermark_seconds", "grace_seconds"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name}={value} must be a finite number >= 0")

    @property
    def delay(self) -> float:
        """Seconds of event time after window_end before a window is scored."""
        return self.watermark_seconds + self.grace_seconds


@dataclass(frozen=True, slots=True)
class Totals:
    """Everything scored and counted so far (a snapshot; safe to hand to another thread)."""

    true_positives: int = 0
    false_positives: int = 0
    false_negatives: int = 0
    fraud_windows: Mapping[str, int] = field(default_factory=dict)  # by pattern
    detected_windows: Mapping[str, int] = field(default_factory=dict)  # by pattern
    transactions: Mapping[str, int] = field(default_factory=dict)  # by fraud-label value
    alerts: int = 0
    late_alerts: int = 0
    late_transactions: int = 0
    alerts_before_view: int = 0
    open_windows: int = 0
    clock: float | None = None  # newest transaction event time (Unix seconds)
    closed_through: float | None = None  # every window ending at or before this is scored

    @property
    def precision(self) -> float | None:
        return ratio(self.true_positives, self.true_positives + self.false_positives)

    @property
    def recall(self) -> float | None:
        return ratio(self.true_positives, self.true_positives + self.false_negatives)

    def pattern_recall(self, pattern: str) -> float | None:
        return ratio(self.detected_windows.get(pattern, 0), self.fraud_windows.get(pattern, 0))


class ScoringBook:
    """Per-window truth and alerts, scored when closed. Not thread-safe: one consumer loop
    feeds it; other threads read `totals()` snapshots."""

    def __init__(self, settings: BookSettings | None = None) -> None:
        self.settings = settings or BookSettings()
        self._width = self.settings.window_seconds
        # window_start -> user_id -> state bits. Grouping by start makes closing a walk
        # over a handful of starts instead of a scan of every stored window.
        self._open: dict[int, dict[str, int]] = {}
        self._pattern_bits: dict[str, int] = {}
        self._pattern_names: list[str] = []  # pattern i is bit i + 1
        self._open_count = 0
        self._clock = -math.inf
        self._earliest = math.inf
        self._closed_through = -math.inf
        self._tp = self._fp = self._fn = 0
        self._fraud_windows: dict[str, int] = {}
        self._detected_windows: dict[str, int] = {}
        self._transactions: dict[str, int] = {}
        self._alerts = self._late_alerts = self._late_transactions = 0
        self._before_view = 0

    # -- input ---------------------------------------------------------------------------

    def window_start(self, event_time: float) -> int:
        """Start (Unix seconds) of the epoch-aligned window holding `event_time`."""
        return int(event_time // self._width) * self._width

    def observe_transaction(
        self, user_id: str, event_time: float, label: str, pattern: str = ""
    ) -> bool:
        """Record one transaction (event_time in Unix seconds, label the fraud-label header
        value). Returns False when its window was already scored (counted as late)."""
        self._transactions[label] = self._transactions.get(label, 0) + 1
        start = int(event_time // self._width) * self._width
        if start + self._width <= self._closed_through:
            self._late_transactions += 1
            return False
        if event_time > self._clock:
            self._clock = event_time
        if event_time < self._earliest:
            self._earliest = event_time
        if label == FRAUD_LABEL:
            bit = self._pattern_bits.get(pattern) or self._new_pattern(pattern)
            self._mark(user_id, start, bit)
        return True

    def observe_alert(self, user_id: str, window_start: float) -> bool:
        """Record an alert for (user_id, window_start). Returns False when that window was
        already scored (counted as late; the verdict stands)."""
        self._alerts += 1
        start = int(window_start // self._width) * self._width
        if start + self._width <= self._closed_through:
            self._late_alerts += 1
            return False
        self._mark(user_id, start, _ALERTED)
        return True

    def _mark(self, user_id: str, start: int, bit: int) -> None:
        users = self._open.get(start)
        if users is None:
            users = self._open[start] = {}
        state = users.get(user_id)
        if state is None:
            self._open_count += 1
            state = 0
        users[user_id] = state | bit

    def _new_pattern(self, pattern: str) -> int:
        """The bit for a pattern name not seen before. Names beyond the cap share the
        OTHER_PATTERN bit and are not remembered, so hostile headers cannot grow memory."""
        name = pattern or UNKNOWN_PATTERN
        overflow = name not in self._pattern_names and len(self._pattern_names) >= MAX_PATTERNS
        if overflow:
            name = OTHER_PATTERN
        if name not in self._pattern_names:
            self._pattern_names.append(name)
        bit = 2 << self._pattern_names.index(name)
        if not overflow:
            self._pattern_bits[pattern] = bit
        return bit

    # -- closing -------------------------------------------------------------------------

    @property
    def clock(self) -> float | None:
        """Newest transaction event time seen (None before the first one)."""
        return None if self._clock == -math.inf else self._clock

    def close_until(self, watermark: float) -> int:
        """Score and evict every window with window_end <= `watermark`; returns how many.

        The watermark only moves forward: a smaller value than before scores nothing.
        """
        if watermark <= self._closed_through:
            return 0
        self._closed_through = watermark
        due = sorted(s for s in self._open if s + self._width <= watermark)
        scored = 0
        for start in due:
            users = self._open.pop(start)
            for state in users.values():
                self._score(start, state)
            scored += len(users)
        self._open_count -= scored
        return scored

    def close_ready(self) -> int:
        """Score the windows the event-time clock has passed by watermark + grace."""
        if self._clock == -math.inf:
            return 0
        return self.close_until(self._clock - self.settings.delay)

    def close_all(self) -> int:
        """Score every open window (shutdown / final report); later input is late."""
        return self.close_until(math.inf)

    def _score(self, start: int, state: int) -> None:
        alerted = state & _ALERTED
        pattern_bits = state >> 1
        if not pattern_bits:  # alerted, no fraud (a stored window is fraud or alerted)
            if start + self._width <= self._earliest:
                self._before_view += 1
            else:
                self._fp += 1
            return
        if alerted:
            self._tp += 1
        else:
            self._fn += 1
        while pattern_bits:
            lowest = pattern_bits & -pattern_bits
            pattern_bits ^= lowest
            name = self._pattern_names[lowest.bit_length() - 1]
            self._fraud_windows[name] = self._fraud_windows.get(name, 0) + 1
            if alerted:
                self._detected_windows[name] = self._detected_windows.get(name, 0) + 1

    # -- output --------------------------------------------------------------------------

    @property
    def open_windows(self) -> int:
        """Stored windows not yet scored (only fraud or alerted windows are stored)."""
        return self._open_count

    def totals(self) -> Totals:
        return Totals(
            true_positives=self._tp,
            false_positives=self._fp,
            false_negatives=self._fn,
            fraud_windows=dict(self._fraud_windows),
            detected_windows=dict(self._detected_windows),
            transactions=dict(self._transactions),
            alerts=self._alerts,
            late_alerts=self._late_alerts,
            late_transactions=self._late_transactions,
            alerts_before_view=self._before_view,
            open_windows=self._open_count,
            clock=self.clock,
            closed_through=None if self._closed_through == -math.inf else self._closed_through,
        )
