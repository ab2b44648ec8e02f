"""The local stack: the whole pipeline on this machine with no containers.

    tools/bazel run //infra:local                       # until Ctrl-C
    tools/bazel run //infra:local -- --duration 120     # then a report

Starts Kafka, PostgreSQL, Prometheus, the detector, the alert sink, the quality monitor and
the producer; prints where everything is, a one-line summary every few seconds, and on
exit (Ctrl-C, SIGTERM or --duration) drains the pipeline and prints a report: totals,
alerts per fraud pattern, precision and recall, end-to-end latency p50/p95/p99.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from infra.components.kafka_io import end_offsets
from infra.components.metrics_scrape import Scraper, histogram_quantile, total
from infra.components.process import ComponentError
from infra.prometheus.rules import rule_files
from infra.stack import DetectorSettings, Ports, Stack, wait
from libs.cli.flags import flag, positive_float, switch
from libs.cli.service import Shutdown


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="local", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    flag(
        parser,
        "--duration",
        env="FRAUD_LOCAL_DURATION",
        default=0.0,
        type=float,
        help="seconds of traffic, then drain and report (0: until Ctrl-C)",
    )
    flag(
        parser,
        "--rate",
        env="FRAUD_LOCAL_RATE",
        default=1000.0,
        type=positive_float,
        help="transactions per second from the producer",
    )
    flag(
        parser,
        "--seed",
        env="FRAUD_LOCAL_SEED",
        default=1,
        type=int,
        help="producer seed (same seed, same stream shape)",
    )
    flag(
        parser,
        "--base-dir",
        env="FRAUD_LOCAL_DIR",
        default=Path("/tmp/fraud-local"),
        type=Path,
        help="data and logs; wiped at start unless --keep-data",
    )
    switch(
        parser,
        "--keep-data",
        env="FRAUD_LOCAL_KEEP_DATA",
        help="reuse data from the last run (topics, table, checkpoints)",
    )
    switch(
        parser,
        "--any-ports",
        env="FRAUD_LOCAL_ANY_PORTS",
        help="pick free ports instead of the defaults (9092, 5432, 9090, 8000-8003)",
    )
    flag(
        parser,
        "--summary-interval",
        env="FRAUD_LOCAL_SUMMARY_INTERVAL",
        default=5.0,
        type=positive_float,
        help="seconds between summary lines",
    )
    flag(
        parser,
        "--drain-timeout",
        env="FRAUD_LOCAL_DRAIN_TIMEOUT",
        default=120.0,
        type=positive_float,
        help="on exit, how long to wait for the pipeline to catch up",
    )
    flag(
        parser,
        "--report-file",
        env="FRAUD_LOCAL_REPORT",
        default="",
        type=str,
        help="also write the final report as JSON here",
    )
    DetectorSettings.add_flags(parser)
    switch(
        parser,
        "--no-quality",
        env="FRAUD_LOCAL_NO_QUALITY",
        help="do not run the quality monitor (saves a core at high rates)",
    )
    return parser.parse_args(argv)


def _num(n: float) -> str:
    return f"{n:,.0f}"


def _ratio(value: float | None) -> str:
    """A precision/recall for humans: '-' until there is anything to divide."""
    return "-" if value is None or value != value else f"{value:.3f}"


class Observer:
    """Reads the services' metrics and Kafka offsets into one summary."""

    def __init__(self, stack: Stack, quality: bool) -> None:
        self.stack = stack
        self.quality = quality
        self.started = time.monotonic()
        self.last: tuple[float, float] | None = None
        names = ("producer", "detector", "alert_sink", "quality")
        self.scraper = Scraper({n: stack.metrics_url(n) for n in names})

    def snapshot(self) -> dict:
        get = {}
        for name in ("producer", "detector", "alert_sink") + (("quality",) if self.quality else ()):
            get[name] = self.scraper.get(name)
        p, d, s = get["producer"], get["detector"], get["alert_sink"]
        q = get.get("quality", {})
        produced = total(p, "fraud_producer_messages_total")
        now = time.monotonic()
        rate = 0.0
        if self.last is not None and now > self.last[0]:
            rate = (produced - self.last[1]) / (now - self.last[0])
        self.last = (now, produced)
        return {
            "elapsed_s": now - self.started,
            "produced": produced,
            "produced_fraud": total(p, "fraud_producer_messages_total", fraud_label="1"),
            "produce_rate": rate,
            "detector_rows": total(d, "fraud_detector_input_rows_total", query="alerts"),
            "detector_rows_per_s": total(
                d, "fraud_detector_processed_rows_per_second", query="alerts"
            ),
            "detector_lag": total(d, "fraud_detector_consumer_lag", query="alerts"),
            "late_dropped": total(d, "fraud_detector_late_events_dropped_total"),
            "alerts_emitted": total(d, "fraud_detector_alerts_emitted_total"),
            "dlq": total(d, "fraud_detector_dlq_messages_total"),
            "alerts_stored": total(s, "fraud_sink_alerts_stored_total"),
            "sink_lag": total(s, "fraud_sink_consumer_lag"),
            "sink_consumed": total(s, "fraud_sink_messages_consumed_total"),
            "db_errors": total(s, "fraud_sink_db_errors_total"),
            "latency_p50": histogram_quantile(s, "fraud_sink_e2e_latency_seconds", 0.50),
            "latency_p95": histogram_quantile(s, "fraud_sink_e2e_latency_seconds", 0.95),
            "latency_p99": histogram_quantile(s, "fraud_sink_e2e_latency_seconds", 0.99),
            "precision": q and total(q, "fraud_quality_precision"),
            "recall": q and total(q, "fraud_quality_recall"),
        }

    def line(self, snap: dict) -> str:
        quality = ""
        if self.quality:
            quality = f" | precision {_ratio(snap['precision'])} recall {_ratio(snap['recall'])}"
        p95 = snap["latency_p95"]
        return (
            f"[{snap['elapsed_s']:6.0f}s] produced {_num(snap['produced'])} "
            f"({_num(snap['produce_rate'])}/s) | detector {_num(snap['detector_rows_per_s'])} "
            f"rows/s, lag {_num(snap['detector_lag'])} | alerts stored "
            f"{_num(snap['alerts_stored'])}, sink lag {_num(snap['sink_lag'])} | DLQ "
            f"{_num(snap['dlq'])} | late {_num(snap['late_dropped'])} | p95 "
            f"{'-' if p95 is None else f'{p95:.2f}s'}{quality}"
        )


def report(snap: dict, produced: int, quality: dict | None) -> dict:
    """The final figures; `quality` is the quality monitor's own report (None if not run)."""
    lat = {k: snap[f"latency_{k}"] for k in ("p50", "p95", "p99")}
    fraud = int(snap["produced_fraud"])
    if quality:
        fraud = int(quality.get("totals", {}).get("transactions", {}).get("1", fraud))
    out = {
        "seconds": round(snap["elapsed_s"], 1),
        "transactions_produced": produced,
        "fraud_transactions_produced": fraud,
        "detector_rows": int(snap["detector_rows"]),
        "late_events_dropped": int(snap["late_dropped"]),
        "dlq_messages": int(snap["dlq"]),
        "alert_versions_emitted": int(snap["alerts_emitted"]),
        "alerts_stored": int(snap["alerts_stored"]),
        "database_errors": int(snap["db_errors"]),
        "latency_seconds": {k: (None if v is None else round(v, 3)) for k, v in lat.items()},
    }
    if quality:
        out["precision"] = quality.get("precision")
        out["recall"] = quality.get("recall")
        out["fraud_windows_by_pattern"] = {
            name: {
                "fraud_windows": row.get("fraud_windows", 0),
                "alerted": row.get("detected_windows", 0),
                "recall": row.get("recall"),
            }
            for name, row in sorted(quality.get("patterns", {}).items())
        }
    return out


def print_report(rep: dict) -> None:
    print("\n=== fraud pipeline report ===")
    print(
        f"ran {rep['seconds']} s: {_num(rep['transactions_produced'])} transactions "
        f"({_num(rep['fraud_transactions_produced'])} fraud), "
        f"{_num(rep['detector_rows'])} processed by the detector"
    )
    print(
        f"alerts: {_num(rep['alert_versions_emitted'])} versions emitted, "
        f"{_num(rep['alerts_stored'])} rows written | DLQ {rep['dlq_messages']} | "
        f"late dropped {rep['late_events_dropped']} | DB errors {rep['database_errors']}"
    )
    lat = rep["latency_seconds"]
    print(
        "end-to-end latency (event → database): "
        + ", ".join(f"{k} {'-' if v is None else f'{v:.2f} s'}" for k, v in lat.items())
    )
    if "precision" in rep:
        print(
            f"precision {_ratio(rep['precision'])}, recall {_ratio(rep['recall'])} "
            "(fraud windows: a user's 60 s window holding a labelled transaction)"
        )
        for pattern, row in rep["fraud_windows_by_pattern"].items():
            print(
                f"  {pattern or '(none)':16s} fraud windows {row['fraud_windows']:>7,} "
                f"alerted {row['alerted']:>7,}  recall {_ratio(row['recall'])}"
            )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    shutdown = Shutdown().install()
    ports = Ports.free() if args.any_ports else Ports()
    try:
        rules = rule_files()  # the recording and alerting rules of infra/prometheus
    except ComponentError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    stack = Stack(
        base_dir=args.base_dir,
        ports=ports,
        detector=DetectorSettings.from_args(args),
        rule_files=rules,
    )
    if not args.keep_data:
        stack.wipe()
    quality = not args.no_quality
    quality_report = args.base_dir / "quality-report.json"
    try:
        print(f"starting Kafka, PostgreSQL, Prometheus under {args.base_dir} ...", flush=True)
        took = stack.start_infrastructure()
        print("  " + ", ".join(f"{k} ready in {v:.1f} s" for k, v in took.items()), flush=True)
        stack.start_service("alert_sink")
        if quality:
            stack.start_service("quality", ["--report-file", str(quality_report)])
        stack.start_service("detector")
        print("starting the detector (Spark) ...", flush=True)
        stack.wait_metrics("detector", timeout=180)
        producer_args = ["--rate", str(args.rate), "--seed", str(args.seed)]
        if args.duration:
            producer_args += ["--duration", str(args.duration)]
        stack.start_service("producer", producer_args)
    except (ComponentError, TimeoutError) as err:
        print(f"error: {err}", file=sys.stderr)
        stack.stop()
        return 1

    prometheus = stack.prometheus.url if stack.prometheus else "-"
    rule_names = ", ".join(r.name for r in rules)
    print(
        f"""
fraud pipeline running (logs: {args.base_dir / "logs"})
  Kafka        {stack.bootstrap}   topics: transactions, fraud_alerts, transactions.dlq
  PostgreSQL   psql "{stack.dsn}" -c 'select * from alerts order by window_start desc limit 10'
  Prometheus   {prometheus}   rules {rule_names} (alerts: {prometheus}/alerts)
  metrics      producer :{ports.producer}  alert sink :{ports.sink}  detector :{ports.detector}"""
        + (f"  quality :{ports.quality}" if quality else "")
        + ("\n  Spark UI     http://127.0.0.1:4040" if args.spark_ui else "")
        + "\nCtrl-C stops everything"
        + (f"; running {args.duration:.0f} s" if args.duration else "")
        + "\n",
        flush=True,
    )

    observer = Observer(stack, quality)
    status = 0
    while not shutdown.wait(args.summary_interval):
        print(observer.line(observer.snapshot()), flush=True)
        for name, proc in stack.services.items():
            if name != "producer" and not proc.running:
                print(
                    f"error: {name} exited ({proc.popen.returncode}); see {proc.log_path}",
                    file=sys.stderr,
                )
                shutdown.request()
                status = 1
        producer = stack.services["producer"]
        if args.duration and not producer.running:
            break

    print("stopping the producer and draining the pipeline ...", flush=True)
    stack.stop_service("producer")
    produced = sum(end_offsets(stack.bootstrap, "transactions").values())
    if status == 0:
        try:

            def drained():
                snap = observer.snapshot()
                caught_up = (
                    snap["detector_rows"] >= produced
                    and snap["sink_consumed"] >= snap["alerts_emitted"]
                    and snap["sink_lag"] == 0
                )
                return caught_up and snap

            wait(drained, args.drain_timeout, "pipeline drained", interval=1.0)
        except TimeoutError as err:
            print(f"warning: {err}; reporting what was done", file=sys.stderr)
    snap = observer.snapshot()
    quality_figures = None
    if quality:
        stack.stop_service("quality")  # scores the windows still open, writes its report
        if quality_report.exists():
            quality_figures = json.loads(quality_report.read_text())
    rep = report(snap, produced, quality_figures)
    stack.stop()
    print_report(rep)
    if args.report_file:
        Path(args.report_file).write_text(json.dumps(rep, indent=2))
    return status


if __name__ == "__main__":
    sys.exit(main())
