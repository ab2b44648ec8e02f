"""Retry delays: exponential from the initial delay, capped, jittered below the base."""

from __future__ import annotations

import random

import pytest

from services.alert_sink.backoff import Backoff


def test_base_schedule_doubles_to_the_cap():
    backoff = Backoff(initial=0.5, maximum=10.0)
    assert [backoff.base(n) for n in range(7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert backoff.base(10_000) == 10.0  # no overflow for very long outages


def test_jitter_stays_within_half_the_base_and_never_exceeds_the_cap():
    backoff = Backoff(initial=0.5, maximum=10.0, jitter=0.5)
    rng = random.Random(7)
    for attempt in range(12):
        base = backoff.base(attempt)
        delays = [backoff.delay(attempt, rng) for _ in range(200)]
        assert all(base * 0.5 <= d <= base for d in delays)
        assert max(delays) - min(delays) > base * 0.3  # really spread out


def test_no_jitter_is_the_base():
    backoff = Backoff(initial=1.0, maximum=4.0, jitter=0.0)
    assert [backoff.delay(n, random.Random(1)) for n in range(4)] == [1.0, 2.0, 4.0, 4.0]


def test_same_seed_same_delays():
    backoff = Backoff()
    assert [backoff.delay(n, random.Random(3)) for n in range(5)] == [
        backoff.delay(n, random.Random(3)) for n in range(5)
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"initial": 0}, "initial=0"),
        ({"initial": 20, "maximum": 10}, "maximum=10"),
        ({"multiplier": 0.5}, "multiplier=0.5"),
        ({"jitter": 1.5}, "jitter=1.5"),
    ],
)
def test_invalid_settings_name_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Backoff(**kwargs)
