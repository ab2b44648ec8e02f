"""The JSON document the quality monitor writes at exit (--report-file).

Why a file as well as metrics: a benchmark or an end-to-end run wants one artefact with
the final verdict (after shutdown scored the still-open windows), readable without a
Prometheus; CI can archive it and compare runs.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from services.quality.scoring_book import BookSettings, Totals

SERVICE = "quality"


def iso(seconds: float | None) -> str | None:
    """Unix seconds as ISO-8601 UTC with `Z`; None for none or infinity (JSON null)."""
    if seconds is None or not math.isfinite(seconds):
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def rounded(value: float | None, digits: int = 6) -> float | None:
    """Rounded for a readable report; None stays None (JSON null, never NaN)."""
    return None if value is None else round(value, digits)


def build_report(
    totals: Totals,
    *,
    settings: BookSettings,
    bad_records: Mapping[tuple[str, str], int],
    stopped_by: str,
    elapsed_seconds: float,
    transactions_read: int,
    active_rate: float | None,
) -> dict[str, Any]:
    """The --report-file document: `totals` (window verdicts and every counter),
    `precision`/`recall` (null when undefined), `patterns` (per pattern: fraud windows,
    detected windows, recall), `event_clock` (newest transaction event time) and
    `throughput` (transactions read and the rate between the first and last batch that
    held any: the catch-up speed on a backlog, the input rate when live)."""
    bad: dict[str, dict[str, int]] = {}
    for (topic, reason), count in sorted(bad_records.items()):
        bad.setdefault(topic, {})[reason] = count
    patterns = {
        pattern: {
            "fraud_windows": count,
            "detected_windows": totals.detected_windows.get(pattern, 0),
            "recall": rounded(totals.pattern_recall(pattern)),
        }
        for pattern, count in sorted(totals.fraud_windows.items())
    }
    return {
        "service": SERVICE,
        "stopped_by": stopped_by,
        "settings": {
            "window_seconds": settings.window_seconds,
            "watermark_seconds": settings.watermark_seconds,
            "grace_seconds": settings.grace_seconds,
        },
        "totals": {
            "true_positives": totals.true_positives,
            "false_positives": totals.false_positives,
            "false_negatives": totals.false_negatives,
            "transactions": dict(sorted(totals.transactions.items())),
            "alerts": totals.alerts,
            "late_alerts": totals.late_alerts,
            "late_transactions": totals.late_transactions,
            "alerts_before_view": totals.alerts_before_view,
            "bad_records": bad,
        },
        "precision": rounded(totals.precision),
        "recall": rounded(totals.recall),
        "patterns": patterns,
        "event_clock": iso(totals.clock),
        "throughput": {
            "transactions_read": transactions_read,
            "elapsed_seconds": round(elapsed_seconds, 3),
            "transactions_per_second": rounded(active_rate, 1),
        },
    }


def write_report(path: Path, report: Mapping[str, Any]) -> None:
    """Atomically (temp file + rename): a reader never sees half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
