"""Nothing is lost or duplicated when a component fails mid-stream: the detector and the
sink are SIGKILLed and restarted (checkpoint, committed offsets), and PostgreSQL goes away
for a while. The final table must equal the independent reference exactly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from infra.components.kafka_io import produce
from infra.components.metrics_scrape import scrape, total
from infra.e2e import harness
from infra.stack import wait


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
        wait(
            lambda: harness.table_alerts(stack.dsn) == expected,
            timeout=300,
            what="alerts table equals the reference",
        )
    except TimeoutError:
        raise AssertionError(harness.diff(expected, harness.table_alerts(stack.dsn))) from None


def test_detector_and_sink_killed_and_restarted(stack):
    t0 = harness.window_start(datetime.now(UTC) - timedelta(minutes=20))
    events = harness.generated(t0, seed=5, count=3000, rate=25.0)
    expected = harness.reference_alerts(e.txn for e in events)
    first, second, third = _chunks(events, 3)

    stack.start_service("alert_sink")
    stack.start_service("detector")
    produce(stack.bootstrap, "transactions", [e.record() for e in first])
    wait(lambda: _rows(stack) > 0, timeout=300, what="first alerts stored")

    stack.services["detector"].kill()  # SIGKILL: no chance to finish the batch in hand
    produce(stack.bootstrap, "transactions", [e.record() for e in second])
    stack.start_service("detector")  # resumes from its checkpoint
    rows_before = _rows(stack)
    wait(lambda: _rows(stack) > rows_before, timeout=300, what="detector progressing again")

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
    wait(lambda: _rows(stack) > 0, timeout=300, what="first alerts stored")

    stack.postgres.stop()
    produce(stack.bootstrap, "transactions", [e.record() for e in second])
    sink = stack.metrics_url("alert_sink")
    wait(
        lambda: total(scrape(sink), "fraud_sink_db_errors_total") > 0,
        timeout=120,
        what="the sink notices the outage",
    )
    assert stack.services["alert_sink"].running, "the sink must ride out the outage"
    stack.postgres.start()  # same data directory and port
    _final_table_matches(stack, expected)
    assert total(scrape(sink), "fraud_sink_db_up") == 1
