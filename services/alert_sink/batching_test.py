"""Batch decoding: highest version per key wins, bad messages are set aside, and the
offsets to commit cover every message of the batch."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from infra.testing.alerts import sample_alert
from libs.schemas.alert import Alert, alert_to_json, parse_alert
from services.alert_sink.batching import (
    SourceMessage,
    commit_offsets,
    decode_batch,
    drop_partitions,
    latest_per_key,
)

START = datetime(2026, 11, 28, 17, 0, tzinfo=UTC)


def alert(user: str, version: int, window: int = 0, rule: str = "v1") -> Alert:
    start = START + timedelta(minutes=window)
    return sample_alert(user, start, version, rule_version=rule)


def msg(offset: int, value: bytes | None, partition: int = 0) -> SourceMessage:
    return SourceMessage("fraud_alerts", partition, offset, b"k", value)


def test_highest_version_per_key_wins_regardless_of_order():
    batch = decode_batch(
        [
            msg(0, alert_to_json(alert("a", 2))),
            msg(1, alert_to_json(alert("a", 5))),
            msg(2, alert_to_json(alert("a", 3))),  # out of order, older
            msg(3, alert_to_json(alert("b", 1))),
            msg(4, alert_to_json(alert("a", 1, window=1))),  # same user, other window: own key
        ]
    )
    got = {(d.alert.user_id, d.alert.window_start): d.alert.version for d in batch.latest}
    assert got == {
        ("a", START): 5,
        ("b", START): 1,
        ("a", START + timedelta(minutes=1)): 1,
    }
    assert batch.superseded == 2
    assert batch.bad == ()


def test_equal_versions_keep_the_first_like_the_database():
    first, second = alert("a", 2, rule="first"), alert("a", 2, rule="second")
    decoded = decode_batch([msg(0, alert_to_json(first)), msg(1, alert_to_json(second))])
    assert [d.alert.rule_version for d in decoded.latest] == ["first"]
    assert decoded.latest[0].message.offset == 0
    assert decoded.superseded == 1


def test_latest_per_key_keeps_first_seen_key_order():
    items = decode_batch([msg(i, alert_to_json(alert(u, 1))) for i, u in enumerate("cab")])
    assert [d.alert.user_id for d in latest_per_key(items.latest)] == ["c", "a", "b"]


def test_bad_messages_are_collected_with_reason_and_detail():
    batch = decode_batch(
        [
            msg(0, b"not json"),
            msg(1, alert_to_json(alert("a", 1))),
            msg(2, b"\xff\xfe"),
            msg(3, None),
            msg(4, b'{"user_id": "a"}'),
        ]
    )
    assert [(b.message.offset, b.reason) for b in batch.bad] == [
        (0, "not_json"),
        (2, "not_utf8"),
        (3, "empty"),
        (4, "missing_field"),
    ]
    assert "window_start" in batch.bad[3].detail
    assert [d.alert.user_id for d in batch.latest] == ["a"]


def test_a_parser_that_raises_unexpectedly_makes_an_internal_error_not_a_crash():
    def parse(value: bytes) -> Alert:
        if value == b"boom":
            raise RecursionError("maximum recursion depth exceeded")
        return parse_alert(value)

    good = alert_to_json(alert("a", 1))
    batch = decode_batch([msg(0, b"boom"), msg(1, good)], parse)
    assert [(b.message.offset, b.reason) for b in batch.bad] == [(0, "internal_error")]
    assert batch.bad[0].detail.startswith("RecursionError: ")
    assert [d.alert.user_id for d in batch.latest] == ["a"]


def test_commit_offsets_are_last_offset_plus_one_per_partition_including_bad_ones():
    messages = [msg(7, b"x", 0), msg(3, b"x", 1), msg(5, b"x", 0), msg(4, b"bad", 1)]
    assert commit_offsets(messages) == {("fraud_alerts", 0): 8, ("fraud_alerts", 1): 5}
    assert decode_batch(messages).commit_offsets() == commit_offsets(messages)
    assert commit_offsets([]) == {}


def test_drop_partitions_removes_revoked_messages_and_their_alerts():
    batch = decode_batch(
        [
            msg(0, alert_to_json(alert("a", 1)), partition=0),
            msg(0, alert_to_json(alert("b", 1)), partition=1),
            msg(1, b"bad", partition=1),
        ]
    )
    kept = drop_partitions(batch, {("fraud_alerts", 1)})
    assert [d.alert.user_id for d in kept.latest] == ["a"]
    assert kept.bad == ()
    assert kept.commit_offsets() == {("fraud_alerts", 0): 1}
    assert drop_partitions(batch, {("other", 0)}) is batch
    assert drop_partitions(batch, {("fraud_alerts", 0), ("fraud_alerts", 1)}).messages == ()


def test_batch_is_frozen():
    batch = decode_batch([])
    assert batch.latest == () and batch.commit_offsets() == {}
    try:
        batch.superseded = 3  # type: ignore[misc]
    except dataclasses.FrozenInstanceError:
        return
    raise AssertionError("Batch must be immutable")
