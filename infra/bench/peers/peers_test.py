"""Each peer of the benchmark computes the detector's alerts: on a small seeded stream
(3,000 transactions over two minutes of event time, the end-to-end edge cases, and
redelivered transaction_ids), its final version of every (user_id, window_start) has the
score the end-to-end reference (infra/e2e/harness.py) gives, and no other alert exists.
One broker for all peers; each peer gets its own topics."""

from __future__ import annotations

import random
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from infra.bench.peers.engines import ENGINES
from infra.bench.peers.measure import final_alerts
from infra.bench.peers.session import Session, records
from infra.e2e import harness
from infra.stack import Ports, Stack
from infra.testing.table import keyed_diff


@pytest.fixture(scope="module")
def stack():
    base = Path(tempfile.mkdtemp(prefix="peers-test-", dir="/tmp"))
    stack = Stack(base_dir=base, ports=Ports.free(), partitions=1)
    try:
        stack.start_infrastructure(prometheus=False)
        yield stack
    finally:
        stack.stop()
        for engine in ENGINES:
            harness.keep_logs(base / engine, engine)
        stack.wipe()


def stream():
    """In event-time order after the probes' clock (now), so no probe makes it late."""
    t0 = harness.window_start(datetime.now(UTC) + timedelta(seconds=60))
    txns = [e.txn for e in harness.generated(t0, seed=7, count=3000, rate=25.0)]
    txns += [e.txn for e in harness.edge_cases(t0 + timedelta(seconds=60))]
    # Redelivered: the same transaction_ids again, within the watermark of their windows.
    recent = [t for t in txns if t.event_time >= txns[2999].event_time - timedelta(seconds=20)]
    again = random.Random(7).sample(recent, 25)
    expected = {
        (user, round(start.timestamp() * 1000)): alert.fraud_score
        for (user, start), alert in harness.reference_alerts(txns).items()
    }
    return txns + again, expected


@pytest.mark.parametrize("name", ["flink", "quix"])
def test_peer_alerts_equal_the_reference(stack, name):
    session = Session(stack, ENGINES[name], stack.base_dir / name)
    try:
        session.start(timeout=300)
        txns, expected = stream()
        assert len(expected) > 30, "the seeded stream should raise plenty of alerts"
        session.send(records(txns))
        assert session.reader is not None
        took = session.reader.wait_for(lambda alerts: final_alerts(alerts) == expected, timeout=300)
        assert took is not None, keyed_diff(expected, final_alerts(session.reader.snapshot()))
    finally:
        session.close()


def test_raw_consumer_reads_everything_before_the_marker(stack):
    session = Session(stack, ENGINES["raw"], stack.base_dir / "raw")
    try:
        session.start(timeout=120)
        txns, _ = stream()
        session.send(records(txns))
        marker = session.send_probe(txns[-1].event_time + timedelta(milliseconds=1))
        assert session.wait_probe(marker, 120), "the end marker never came through"
        assert session.reader is not None
        assert final_alerts(session.reader.snapshot()) == {}, "raw computes no alerts"
    finally:
        session.close()
