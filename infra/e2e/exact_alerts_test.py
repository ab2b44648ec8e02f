"""The real pipeline (Kafka → Spark detector → Kafka → sink → PostgreSQL) produces exactly
the alerts an independent reference computes: a seeded stream plus hand-written edge cases,
malformed records (which must land in the DLQ while good traffic flows) and late events;
then, on the same stack, hostile input of every kind at scale with redelivered duplicates."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from infra.components.kafka_io import TopicReader, produce
from infra.components.metrics_scrape import scrape, total
from infra.components.wait import wait_until
from infra.e2e import harness
from infra.testing.table import keyed_diff
from libs.schemas.fields import Reason


@pytest.fixture(scope="module")
def stack():
    yield from harness.e2e_stack("exact")


def _interleave(good: list, bad: list) -> list:
    """Bad records spread evenly through the good ones."""
    out, step = [], max(1, len(good) // (len(bad) + 1))
    for i, event in enumerate(good):
        out.append(event)
        if i % step == step - 1 and bad:
            out.append(bad.pop(0))
    return out + bad


def test_exact_alert_set_with_bad_input_and_late_events(stack):
    t0 = harness.window_start(datetime.now(UTC) - timedelta(minutes=30))
    stream = harness.generated(t0, seed=11, count=2500, rate=25.0)  # 100 s of traffic
    edges = harness.edge_cases(t0 + timedelta(seconds=60))
    bad = harness.bad_records(t0 + timedelta(seconds=60))
    phase_a = _interleave(stream + edges, list(bad))
    on_time = [e.txn for e in phase_a if e.txn is not None]

    stack.start_service("alert_sink")
    stack.start_service("detector")
    produce(stack.bootstrap, "transactions", [e.record() for e in phase_a])

    # Phase B only once phase A is processed: then the watermark is known exactly.
    watermark = max(t.event_time for t in on_time) - harness.WATERMARK
    detector = stack.metrics_url("detector")
    wait_until(
        lambda: (
            total(scrape(detector), "fraud_detector_input_rows_total", query="alerts")
            >= len(phase_a)
            and total(scrape(detector), "fraud_detector_watermark_seconds") >= watermark.timestamp()
        ),
        timeout=300,
        what="detector processed phase A",
        tolerate=Exception,
    )
    first_user = stream[0].txn
    late = [
        *[harness.txn("late-old-window", t0 - timedelta(minutes=10), "5000.00") for _ in range(3)],
        # Would turn an existing closed window into a high-value alert if it were accepted.
        harness.txn(
            first_user.user_id,
            harness.window_start(first_user.event_time) + timedelta(seconds=1),
            "9999.00",
        ),
        # Behind the newest event but its window is still open: counted.
        harness.txn("late-but-in-time", watermark + timedelta(seconds=25), "4000.00"),
    ]
    kept, dropped = harness.accepted_after_watermark(on_time, late)
    assert len(kept) == 1 and len(dropped) == 4
    produce(stack.bootstrap, "transactions", [harness.good(t).record() for t in late])

    expected = harness.reference_alerts(on_time + kept)
    users = {user for user, _ in expected}
    assert {
        "edge-amount-3000.01",
        "edge-count-5-two-countries",
        "edge-window-same",
        "late-but-in-time",
    } <= users
    assert not users & {
        "edge-amount-3000.00",
        "edge-count-4",
        "edge-count-5",
        "edge-window-split",
        "late-old-window",
        "bad-input",
    }
    assert len(expected) > 30, "the seeded stream should raise plenty of alerts"

    try:
        wait_until(
            lambda: harness.table_alerts(stack.dsn) == expected,
            timeout=300,
            what="alerts table equals the reference",
            tolerate=Exception,
        )
    except TimeoutError:
        raise AssertionError(keyed_diff(expected, harness.table_alerts(stack.dsn))) from None
    # Spark counts late rows after partial aggregation: the three late events of one user
    # and window count once when they share a micro-batch.
    wait_until(
        lambda: 2 <= total(scrape(detector), "fraud_detector_late_events_dropped_total") <= 4,
        timeout=60,
        what="late events counted",
        tolerate=Exception,
    )

    # Every bad record is in the DLQ, once, with its reason and where it came from.
    dlq = TopicReader(stack.bootstrap, "transactions.dlq")
    try:
        dlq.wait_for(lambda rs: len(rs) >= len(bad), timeout=120, what="DLQ records")
        dlq.poll(2)
        reasons = Counter(r.headers["error-reason"].decode() for r in dlq.records)
        assert reasons == Counter(e.reason for e in bad)
        assert sorted(r.value or b"" for r in dlq.records) == sorted(e.value for e in bad)
        for record in dlq.records:
            assert record.headers["source-topic"] == b"transactions"
            assert int(record.headers["source-offset"]) >= 0
            assert (
                record.headers["error"]
                .decode()
                .startswith(record.headers["error-reason"].decode() + ": ")
            )
    finally:
        dlq.close()

    # The same figures reach a real Prometheus through its scrape.
    prom = stack.prometheus
    wait_until(
        lambda: (
            prom.query("sum(fraud_detector_dlq_messages_total)")
            and float(prom.query("sum(fraud_detector_dlq_messages_total)")[0]["value"][1])
            == len(bad)
        ),
        timeout=60,
        what="Prometheus sees the DLQ count",
        tolerate=Exception,
    )
    stored = prom.query('sum(fraud_sink_alerts_stored_total{job="alert_sink"})')
    assert stored and float(stored[0]["value"][1]) >= len(expected)


def _running(stack, name: str):
    """The stack's service `name`, started if this test runs alone."""
    if name not in stack.services:
        stack.start_service(name)
    return stack.services[name]


def test_hostile_input_at_scale_and_redeliveries(stack):
    """A few hundred hostile records of every reason a transaction can get, interleaved with
    a seeded stream and redelivered copies of its records: each hostile record reaches the
    DLQ once with its reason, the detector never restarts, duplicates count once."""
    t0 = harness.window_start(datetime.now(UTC) - timedelta(minutes=20))
    stream = harness.generated(t0, seed=23, count=2000, rate=25.0)  # 80 s of traffic
    hostile = harness.hostile_records(t0 + timedelta(seconds=20), count=300, seed=23)
    reasons = {h.reason for h in hostile}
    assert reasons == set(Reason) - harness.NOT_FOR_TRANSACTIONS, "a reason is not exercised"
    # Redeliveries: 150 records again, 1 to 200 records after their first delivery.
    rng = random.Random(23)
    records: list[tuple] = [e.record() for e in stream]
    kinds: list[str] = ["good"] * len(records)
    for i in sorted(rng.sample(range(len(stream)), 150), reverse=True):
        at = min(len(records), i + 1 + rng.randint(0, 200))
        records.insert(at, stream[i].record())
        kinds.insert(at, "redelivery")
    step = len(records) // (len(hostile) + 1)
    for n, h in enumerate(hostile):
        records.insert((n + 1) * step + n, h.record())
        kinds.insert((n + 1) * step + n, h.kind)
    redeliveries = kinds.count("redelivery")

    sink = _running(stack, "alert_sink")
    detector = _running(stack, "detector")
    pid = detector.popen.pid
    url = stack.metrics_url("detector")
    wait_until(
        lambda: total(scrape(url), "fraud_detector_ready") == 1,
        timeout=300,
        what="ready",
        tolerate=Exception,
    )
    before = scrape(url)
    stored_before = harness.table_alerts(stack.dsn)
    expected_new = harness.reference_alerts(e.txn for e in stream)
    assert not set(expected_new) & set(stored_before)
    expected = stored_before | expected_new

    where = harness.produce_tracked(stack.bootstrap, "transactions", records)
    hostile_at = {
        where[i]: h
        for i, h in zip(
            [i for i, k in enumerate(kinds) if k not in ("good", "redelivery")],
            hostile,
            strict=True,
        )
    }
    mine = set(where)

    try:
        wait_until(
            lambda: harness.table_alerts(stack.dsn) == expected,
            timeout=300,
            what="alerts table equals the reference",
            tolerate=Exception,
        )
    except TimeoutError:
        raise AssertionError(keyed_diff(expected, harness.table_alerts(stack.dsn))) from None

    dlq = TopicReader(stack.bootstrap, "transactions.dlq")
    try:

        def ours(records) -> list:
            return [
                r
                for r in records
                if (int(r.headers["source-partition"]), int(r.headers["source-offset"])) in mine
            ]

        dlq.wait_for(lambda rs: len(ours(rs)) >= len(hostile), timeout=120, what="DLQ records")
        dlq.poll(2)
        letters = Counter(
            (int(r.headers["source-partition"]), int(r.headers["source-offset"]))
            for r in ours(dlq.records)
        )
        assert set(letters) == set(hostile_at), "DLQ records for good records, or missing ones"
        assert set(letters.values()) == {1}, "a hostile record reached the DLQ twice"
        for r in ours(dlq.records):
            h = hostile_at[(int(r.headers["source-partition"]), int(r.headers["source-offset"]))]
            assert r.headers["error-reason"].decode() == h.reason, h.kind
            assert r.headers["source-topic"] == b"transactions"
    finally:
        dlq.close()

    # Same process all along: never exited, never restarted.
    assert detector.running and detector.popen.pid == pid and stack.services["detector"] is detector
    assert sink.running
    after = scrape(url)

    def delta(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    dropped = delta("fraud_detector_duplicates_dropped_total") + delta(
        "fraud_detector_late_events_dropped_total"
    )
    assert dropped == redeliveries, (dropped, redeliveries)
    future = sum(1 for h in hostile if h.reason == "future_event_time")
    assert delta("fraud_detector_dlq_messages_total", reason="future_event_time") == future
    assert delta("fraud_detector_future_rows_guarded_total") == 0
    assert total(after, "fraud_detector_watermark_ahead_seconds") < 0
    assert total(after, "fraud_detector_ready") == 1

    tried = Counter(h.kind for h in hostile)
    in_dlq = Counter(hostile_at[w].kind for w in letters)
    print(f"\n{'kind':32} {'tried':>6} {'in DLQ':>7} crashes")
    for kind in tried:
        print(f"{kind:32} {tried[kind]:6} {in_dlq[kind]:7} {0:7}")
    print(f"{'redelivered good records':32} {redeliveries:6} {'-':>7} {0:7}")
    print(
        f"duplicates dropped {delta('fraud_detector_duplicates_dropped_total'):.0f}, "
        f"as late {delta('fraud_detector_late_events_dropped_total'):.0f}; "
        f"{len(expected_new)} alerts equal to the reference"
    )
