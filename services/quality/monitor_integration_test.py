"""The quality binary against a real broker: hand-made truth and alerts give exact
precision/recall on the metrics endpoint, a late alert is counted apart, and SIGTERM
scores the still-open window, writes the report and exits 0.

Everything is produced before the monitor starts (a replay): transactions are then read
far ahead of the alerts, which is exactly when scoring must wait for the alerts backlog.
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from infra.components.kafka import KafkaBroker
from infra.components.kafka_io import produce
from infra.components.metrics_scrape import scrape, total
from infra.components.process import ManagedProcess, free_port
from infra.testing.alerts import sample_alert
from libs.schemas.alert import alert_to_json
from libs.schemas.transaction import Transaction, transaction_to_json

QUALITY = Path("services/quality/quality")
T0 = datetime(2026, 11, 28, 17, 0, tzinfo=UTC)  # window W0 = [T0, T0 + 60 s)

Headers = dict[str, bytes]


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory):
    kafka = KafkaBroker(data_dir=tmp_path_factory.mktemp("kafka"))
    kafka.start()
    kafka.create_topics({"transactions": 2, "fraud_alerts": 2})
    yield kafka
    kafka.stop()


def tx(user: str, seconds: float, pattern: str | None = None) -> tuple[bytes, bytes, Headers]:
    """A contract transaction at T0 + seconds; `pattern` set means labelled fraud."""
    txn = Transaction(str(uuid.uuid4()), user, Decimal("10.00"), "EUR", "Shop", "grocery", "FR",
                      T0 + timedelta(seconds=seconds))  # fmt: skip
    headers = {"fraud-label": b"1" if pattern else b"0", "fraud-pattern": (pattern or "").encode()}
    return user.encode(), transaction_to_json(txn), headers


def alert(user: str, window_seconds: int, version: int = 1) -> tuple[bytes, bytes, None]:
    start = T0 + timedelta(seconds=window_seconds)
    a = sample_alert(user, start, version)
    return user.encode(), alert_to_json(a), None


TRANSACTIONS = [
    # W0: tp-1 fraud (high_amount), alerted -> TP
    tx("tp-1", 5, "high_amount"),
    tx("tp-1", 7),
    # W0: tp-2 two patterns, alerted twice (two versions) -> one TP, counted for both
    tx("tp-2", 10, "country_hop"),
    tx("tp-2", 11, "country_hop"),
    tx("tp-2", 12, "rapid_fire"),
    # W0: fn-1 fraud, never alerted -> FN (a late alert for it comes later)
    tx("fn-1", 20, "risky_merchant"),
    # W0: fp-1 legitimate but alerted -> FP
    tx("fp-1", 30),
    # W0: quiet user -> not scored at all
    tx("quiet", 40),
    # tp-1 again at 59.999 (W0) and 60.000 (W1): W1 alerted on its own -> TP
    tx("tp-1", 59.999, "high_amount"),
    tx("tp-1", 60.000, "high_amount"),
    # Open fraud window W3 [180, 240): not alerted, still open when SIGTERM comes -> FN
    tx("open", 190, "rapid_fire"),
    # Event-time clock: 200 s closes every window ending <= 200 - 30 - 15 = 155 (W0, W1).
    tx("clock", 200),
]
BAD = [(b"bad", b"{not json", {"fraud-label": b"1", "fraud-pattern": b"high_amount"})]
ALERTS = [alert("tp-1", 0), alert("tp-2", 0, 1), alert("tp-2", 0, 2), alert("fp-1", 0),
          alert("tp-1", 60)]  # fmt: skip


def _monitor(broker: KafkaBroker, tmp_path: Path, port: int, report: Path) -> ManagedProcess:
    env = dict(os.environ) | {"KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap}
    logs = Path(os.environ.get("TEST_UNDECLARED_OUTPUTS_DIR", tmp_path))
    args = [str(QUALITY), "--metrics-port", str(port), "--report-file", str(report),
            "--log-interval", "1"]  # fmt: skip
    proc = ManagedProcess("quality", args, logs / "quality.log", env=env)
    proc.start()
    return proc


def test_exact_precision_recall_late_alert_and_report(broker: KafkaBroker, tmp_path: Path):
    produce(broker.bootstrap, "transactions", TRANSACTIONS + BAD)
    produce(broker.bootstrap, "fraud_alerts", ALERTS)

    port, report = free_port(), tmp_path / "report.json"
    monitor = _monitor(broker, tmp_path, port, report)
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        # W0 and W1 scored: TP = tp-1 W0, tp-2 W0, tp-1 W1; FP = fp-1; FN = fn-1.
        def scored() -> bool:
            s = scrape(url)
            return (total(s, "fraud_quality_precision") == 0.75
                    and total(s, "fraud_quality_recall") == 0.75)  # fmt: skip

        monitor.wait_until(scored, timeout=90, what="precision and recall 0.75")
        s = scrape(url)
        assert total(s, "fraud_quality_true_positives_total") == 3
        assert total(s, "fraud_quality_false_positives_total") == 1
        assert total(s, "fraud_quality_false_negatives_total") == 1
        assert total(s, "fraud_quality_late_alerts_total") == 0
        assert total(s, "fraud_quality_open_windows") == 1  # the `open` user's window
        assert total(s, "fraud_quality_fraud_windows_total", pattern="high_amount") == 2
        assert total(s, "fraud_quality_detected_windows_total", pattern="high_amount") == 2
        assert total(s, "fraud_quality_fraud_windows_total", pattern="country_hop") == 1
        assert total(s, "fraud_quality_detected_windows_total", pattern="rapid_fire") == 1
        assert total(s, "fraud_quality_detected_windows_total", pattern="risky_merchant") == 0
        assert total(s, "fraud_quality_transactions_total", fraud_label="1") == 8
        assert total(s, "fraud_quality_transactions_total", fraud_label="0") == 4
        assert total(s, "fraud_quality_bad_records_total", topic="transactions") == 1

        # An alert for fn-1's W0 after it was scored: late, and the FN stands.
        produce(broker.bootstrap, "fraud_alerts", [alert("fn-1", 0)])
        monitor.wait_until(lambda: total(scrape(url), "fraud_quality_late_alerts_total") == 1,
                           timeout=60, what="the late alert counted")  # fmt: skip
        s = scrape(url)
        assert total(s, "fraud_quality_false_negatives_total") == 1
        assert total(s, "fraud_quality_recall") == 0.75

        monitor.terminate()
        assert monitor.popen is not None
        assert monitor.popen.wait(60) == 0
    finally:
        monitor.stop()

    doc = orjson.loads(report.read_bytes())
    assert doc["stopped_by"] == "SIGTERM"
    # Shutdown scored the open window: one more FN.
    assert doc["totals"] == {
        "true_positives": 3,
        "false_positives": 1,
        "false_negatives": 2,
        "transactions": {"0": 4, "1": 8},
        "alerts": 6,
        "late_alerts": 1,
        "late_transactions": 0,
        "alerts_before_view": 0,
        "bad_records": {"transactions": {"not_json": 1}},
    }
    assert doc["precision"] == 0.75
    assert doc["recall"] == 0.6
    assert doc["patterns"] == {
        "country_hop": {"fraud_windows": 1, "detected_windows": 1, "recall": 1.0},
        "high_amount": {"fraud_windows": 2, "detected_windows": 2, "recall": 1.0},
        "rapid_fire": {"fraud_windows": 2, "detected_windows": 1, "recall": 0.5},
        "risky_merchant": {"fraud_windows": 1, "detected_windows": 0, "recall": 0.0},
    }
    assert doc["event_clock"] == "2026-11-28T17:03:20Z"
    assert doc["throughput"]["transactions_read"] == 12
