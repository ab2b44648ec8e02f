"""Nothing is lost or duplicated when a component fails mid-stream: the detector and the
sink are SIGKILLed and restarted (checkpoint, committed offsets), PostgreSQL goes away for
a while, and the Kafka broker is SIGKILLed and restarted under the running services. The
final table must equal the independent reference exactly (the primary key makes a
duplicated alert impossible to store twice; an extra or different row is a mismatch)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from infra.components.kafka_io import produce
from infra.components.metrics_scrape import scrape, total
from infra.components.wait import wait_until
from infra.e2e import harness
from infra.testing.table import keyed_diff


@pytest.fixture
def stack(request):
    yield from harness.e2e_stack(request.node.name.removeprefix("test_")[:20])


def _chunks(events: list, n: int) -> list[list]:
    size = -(-len(events) // n)
    return [events[i : i + size] for i in range(0, len(events), size)]


def _rows(stack) -> int:
    return len(harness.table_alerts(stack.dsn))


def _final_table_matches(stack, expected) -> None:
    try:
        wait_until(
            lambda: harness.table_alerts(stack.dsn) == expected,
            timeout=300,
            what="alerts table equals the reference",
            tolerate=Exception,
        )
    except TimeoutError:
        raise AssertionError(keyed_diff(expected, harness.table_alerts(stack.dsn))) from None


def test_detector_and_sink_killed_and_restarted(stack):
    t0 = harness.window_start(datetime.now(UTC) - timedelta(minutes=20))
    events = harness.generated(t0, seed=5, count=3000, rate=25.0)
    expected = harness.reference_alerts(e.txn for e in events)
    first, second, third = _chunks(events, 3)

    stack.start_service("alert_sink")
    stack.start_service("detector")
    produce(stack.bootstrap, "transactions", [e.record() for e in first])
    wait_until(
        lambda: _rows(stack) > 0, timeout=300, what="first alerts stored", tolerate=Exception
    )

    stack.services["detector"].kill()  # SIGKILL: no chance to finish the batch in hand
    produce(stack.bootstrap, "transactions", [e.record() for e in second])
    stack.start_service("detector")  # resumes from its checkpoint
    rows_before = _rows(stack)
    wait_until(
        lambda: _rows(stack) > rows_before,
        timeout=300,
        what="detector progressing again",
        tolerate=Exception,
    )

    stack.services["alert_sink"].kill()
    produce(stack.bootstrap, "transactions", [e.record() for e in third])
    stack.start_service("alert_sink")  # resumes from its committed offsets
    _final_table_matches(stack, expected)


def test_database_outage(stack):
    t0 = harness.window_start(datetime.now(UTC) - timedelta(minutes=20))
    events = harness.generated(t0, seed=9, count=2400, rate=25.0)
    expected = harness.reference_alerts(e.txn for e in events)
    first, second = _chunks(events, 2)

    stack.start_service("alert_sink")
    stack.start_service("detector")
    produce(stack.bootstrap, "transactions", [e.record() for e in first])
    wait_until(
        lambda: _rows(stack) > 0, timeout=300, what="first alerts stored", tolerate=Exception
    )

    stack.postgres.stop()
    produce(stack.bootstrap, "transactions", [e.record() for e in second])
    sink = stack.metrics_url("alert_sink")
    wait_until(
        lambda: total(scrape(sink), "fraud_sink_db_errors_total") > 0,
        timeout=120,
        what="the sink notices the outage",
        tolerate=Exception,
    )
    assert stack.services["alert_sink"].running, "the sink must ride out the outage"
    stack.postgres.start()  # same data directory and port
    _final_table_matches(stack, expected)
    assert total(scrape(sink), "fraud_sink_db_up") == 1


def test_broker_killed_and_restarted(stack):
    """SIGKILL the only broker mid-stream and start it again on the same port and data
    directory: the detector, the sink and the quality monitor ride it out by themselves
    (same processes) and the table equals the reference."""
    t0 = harness.window_start(datetime.now(UTC) - timedelta(minutes=20))
    events = harness.generated(t0, seed=13, count=3000, rate=25.0)
    expected = harness.reference_alerts(e.txn for e in events)
    first, second, third = _chunks(events, 3)

    for name in ("alert_sink", "detector", "quality"):
        stack.start_service(name)
    pids = {name: stack.services[name].popen.pid for name in ("alert_sink", "detector", "quality")}
    produce(stack.bootstrap, "transactions", [e.record() for e in first])
    wait_until(
        lambda: _rows(stack) > 0, timeout=300, what="first alerts stored", tolerate=Exception
    )

    produce(stack.bootstrap, "transactions", [e.record() for e in second])
    stack.kafka.kill()  # mid-stream: the detector is reading the second chunk
    assert not stack.kafka.process.running
    stack.kafka.start()  # same port, same data directory
    produce(stack.bootstrap, "transactions", [e.record() for e in third])
    _final_table_matches(stack, expected)

    quality = stack.metrics_url("quality")
    wait_until(
        lambda: total(scrape(quality), "fraud_quality_transactions_total") >= len(events),
        timeout=180,
        what="the quality monitor read every transaction",
        tolerate=Exception,
    )
    for name, pid in pids.items():
        proc = stack.services[name]
        assert proc.running and proc.popen.pid == pid, f"{name} exited or was restarted"
    table = harness.table_alerts(stack.dsn)
    lost = set(expected) - set(table)
    # A transaction counted twice would show as a different txn_count; an extra window as
    # a row the reference does not have.
    changed = [k for k in expected if k in table and table[k] != expected[k]]
    extra = set(table) - set(expected)
    print(
        f"\nbroker SIGKILL: {len(expected)} alerts expected, {len(table)} stored; "
        f"{len(lost)} lost, {len(changed)} with other aggregates, {len(extra)} unexpected"
    )
