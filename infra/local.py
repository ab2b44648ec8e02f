"""The local stack: the whole pipeline on this machine with no containers.

    tools/bazel run //infra:local                       # until Ctrl-C
    tools/bazel run //infra:local -- --duration 120     # then a report

Starts Kafka, PostgreSQL, Prometheus with Alertmanager (posting the pipeline's alerts to
--alert-webhook), the detector, the alert sink, the quality monitor, the producer and,
given --notifier-destinations, the fraud-alert notifier; prints where everything is, a
one-line summary every few seconds, and on exit (Ctrl-C, SIGTERM or --duration) drains
the pipeline and prints a report: totals, alerts per fraud pattern, precision and recall,
end-to-end latency p50/p95/p99.

A child that crashes is restarted after a growing delay (1 s, 2 s, 4 s ... up to
--restart-max-delay; back to 1 s once it ran --restart-reset-after s), each restart logged
and counted in the summary and the report. One that crashes more than
--crash-loop-restarts times within --crash-loop-window s stops the stack with its log's
tail. Pids are in BASE_DIR/run/NAME.pid (`kill -9` one to watch it come back).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from infra.components.alertmanager import render_config
from infra.components.kafka_io import end_offsets
from infra.components.metrics_scrape import Scraper, histogram_quantile, total
from infra.components.process import ComponentError, RestartPolicy
from infra.components.wait import wait_until
from infra.prometheus.rules import alertmanager_config, rule_files
from infra.stack import DetectorSettings, Ports, Stack
from libs.cli.flags import flag, switch
from libs.cli.service import Shutdown
from libs.cli.settings import non_negative_int, positive_float


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
        "--secure",
        env="FRAUD_LOCAL_SECURE",
        help="Kafka over SASL_SSL with SCRAM-SHA-512 and ACLs, one principal per service "
        "(CA, certificates and passwords generated under BASE_DIR/kafka-secrets)",
    )
    switch(
        parser,
        "--any-ports",
        env="FRAUD_LOCAL_ANY_PORTS",
        help="pick free ports instead of the defaults (9092, 5432, 9090, 9093, 8000-8004)",
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
    flag(
        parser,
        "--alert-webhook",
        env="FRAUD_LOCAL_ALERT_WEBHOOK",
        default="http://127.0.0.1:9095",
        type=str,
        help="where Alertmanager posts the pipeline's alerts (paths /alerts/critical, "
        "/alerts/warning, /alerts/default: infra/prometheus/alertmanager.yml)",
    )
    flag(
        parser,
        "--notifier-destinations",
        env="FRAUD_LOCAL_NOTIFIER_DESTINATIONS",
        default="",
        type=str,
        help="a destinations file (README: Notifications): also run the fraud-alert notifier",
    )
    DetectorSettings.add_flags(parser)
    add_restart_flags(parser)
    switch(
        parser,
        "--no-quality",
        env="FRAUD_LOCAL_NO_QUALITY",
        help="do not run the quality monitor (saves a core at high rates)",
    )
    return parser.parse_args(argv)


def _secure_note(stack: Stack) -> str:
    """Where a secure stack's credentials are (the passwords themselves are never shown)."""
    if stack.pki is None or stack.kafka is None:
        return ""
    return (
        f"\n               SASL_SSL/SCRAM-SHA-512, ACLs; CA, certificates and passwords in "
        f"{stack.pki.directory}; admin (mutual TLS) at {stack.kafka.ssl_bootstrap}"
    )


def add_restart_flags(parser: argparse.ArgumentParser) -> None:
    """The supervision policy's flags (see RestartPolicy)."""
    defaults = RestartPolicy()
    group = parser.add_argument_group("supervision (restart a crashed child, stop on a crash loop)")
    flag(
        group,
        "--restart-delay",
        env="FRAUD_LOCAL_RESTART_DELAY",
        default=defaults.delay,
        type=positive_float,
        help="seconds before the first restart; doubled for each further crash in a row",
    )
    flag(
        group,
        "--restart-max-delay",
        env="FRAUD_LOCAL_RESTART_MAX_DELAY",
        default=defaults.max_delay,
        type=positive_float,
        help="the longest delay before a restart",
    )
    flag(
        group,
        "--restart-reset-after",
        env="FRAUD_LOCAL_RESTART_RESET_AFTER",
        default=defaults.reset_after,
        type=positive_float,
        help="a child up this many seconds starts its delays over",
    )
    flag(
        group,
        "--crash-loop-restarts",
        env="FRAUD_LOCAL_CRASH_LOOP_RESTARTS",
        default=defaults.max_restarts,
        type=non_negative_int,
        help="a child needing more restarts than this within --crash-loop-window stops "
        "the stack (0: never restart)",
    )
    flag(
        group,
        "--crash-loop-window",
        env="FRAUD_LOCAL_CRASH_LOOP_WINDOW",
        default=defaults.window,
        type=positive_float,
        help="seconds over which restarts are counted",
    )


def restart_policy(args: argparse.Namespace) -> RestartPolicy:
    try:
        return RestartPolicy(
            delay=args.restart_delay,
            max_delay=args.restart_max_delay,
            reset_after=args.restart_reset_after,
            max_restarts=args.crash_loop_restarts,
            window=args.crash_loop_window,
        )
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None


def restarts_text(restarts: dict[str, int]) -> str:
    """'alert_sink 1, detector 2' for the children that were restarted ('' if none)."""
    return ", ".join(f"{name} {n}" for name, n in sorted(restarts.items()) if n)


class Totals:
    """Counters summed across restarts: a restarted service counts from 0 again, so a value
    below the last one seen means a reset and the last one is carried over (as
    Prometheus' increase() does). Increments between the last scrape and a crash are lost."""

    def __init__(self) -> None:
        self.carried: dict[str, float] = {}
        self.last: dict[str, float] = {}

    def __call__(self, key: str, value: float) -> float:
        if value < self.last.get(key, 0.0):
            self.carried[key] = self.carried.get(key, 0.0) + self.last[key]
        self.last[key] = value
        return self.carried.get(key, 0.0) + value


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
        self.totals = Totals()
        names = ("producer", "detector", "alert_sink", "quality")
        self.scraper = Scraper({n: stack.metrics_url(n) for n in names})

    def snapshot(self) -> dict:
        get = {}
        for name in ("producer", "detector", "alert_sink") + (("quality",) if self.quality else ()):
            get[name] = self.scraper.get(name)
        p, d, s = get["producer"], get["detector"], get["alert_sink"]
        q = get.get("quality", {})
        t = self.totals
        produced = t("produced", total(p, "fraud_producer_messages_total"))
        now = time.monotonic()
        rate = 0.0
        if self.last is not None and now > self.last[0]:
            rate = (produced - self.last[1]) / (now - self.last[0])
        self.last = (now, produced)
        return {
            "elapsed_s": now - self.started,
            "produced": produced,
            "produced_fraud": t(
                "produced_fraud", total(p, "fraud_producer_messages_total", fraud_label="1")
            ),
            "produce_rate": rate,
            "detector_rows": t(
                "detector_rows", total(d, "fraud_detector_input_rows_total", query="alerts")
            ),
            "detector_rows_per_s": total(
                d, "fraud_detector_processed_rows_per_second", query="alerts"
            ),
            "detector_lag": total(d, "fraud_detector_consumer_lag", query="alerts"),
            "late_dropped": t("late", total(d, "fraud_detector_late_events_dropped_total")),
            "alerts_emitted": t("emitted", total(d, "fraud_detector_alerts_emitted_total")),
            "dlq": t("dlq", total(d, "fraud_detector_dlq_messages_total")),
            "alerts_stored": t("stored", total(s, "fraud_sink_alerts_stored_total")),
            "sink_lag": total(s, "fraud_sink_consumer_lag"),
            "sink_consumed": t("consumed", total(s, "fraud_sink_messages_consumed_total")),
            "db_errors": t("db_errors", total(s, "fraud_sink_db_errors_total")),
            "latency_p50": histogram_quantile(s, "fraud_sink_e2e_latency_seconds", 0.50),
            "latency_p95": histogram_quantile(s, "fraud_sink_e2e_latency_seconds", 0.95),
            "latency_p99": histogram_quantile(s, "fraud_sink_e2e_latency_seconds", 0.99),
            "precision": q and total(q, "fraud_quality_precision"),
            "recall": q and total(q, "fraud_quality_recall"),
            "restarts": self.stack.restarts(),
        }

    def line(self, snap: dict) -> str:
        quality = ""
        if self.quality:
            quality = f" | precision {_ratio(snap['precision'])} recall {_ratio(snap['recall'])}"
        p95 = snap["latency_p95"]
        restarts = restarts_text(snap.get("restarts", {}))
        restarts = f" | restarts: {restarts}" if restarts else ""
        return (
            f"[{snap['elapsed_s']:6.0f}s] produced {_num(snap['produced'])} "
            f"({_num(snap['produce_rate'])}/s) | detector {_num(snap['detector_rows_per_s'])} "
            f"rows/s, lag {_num(snap['detector_lag'])} | alerts stored "
            f"{_num(snap['alerts_stored'])}, sink lag {_num(snap['sink_lag'])} | DLQ "
            f"{_num(snap['dlq'])} | late {_num(snap['late_dropped'])} | p95 "
            f"{'-' if p95 is None else f'{p95:.2f}s'}{quality}{restarts}"
        )


def report(snap: dict, produced: int, quality: dict | None, failure: str | None = None) -> dict:
    """The final figures; `quality` is the quality monitor's own report (None if not run),
    `failure` why the stack was stopped (a crash loop), if it was."""
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
        "restarts": dict(sorted(snap.get("restarts", {}).items())),
        "failure": failure,
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
    print(f"restarts: {restarts_text(rep['restarts']) or 'none'}")
    if rep["failure"]:
        print(f"stopped because {rep['failure'].splitlines()[0]}")
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
    policy = restart_policy(args)
    shutdown = Shutdown().install()
    ports = Ports.free() if args.any_ports else Ports()
    try:
        rules = rule_files()  # the recording and alerting rules of infra/prometheus
        routing = render_config(alertmanager_config().read_text(), args.alert_webhook)
    except ComponentError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    stack = Stack(
        base_dir=args.base_dir,
        ports=ports,
        detector=DetectorSettings.from_args(args),
        rule_files=rules,
        alertmanager_config=routing,
        notifier=bool(args.notifier_destinations),
        secure=args.secure,
    )
    if not args.keep_data:
        stack.wipe()
    quality = not args.no_quality
    quality_report = args.base_dir / "quality-report.json"
    try:
        print(
            f"starting Kafka, PostgreSQL, Prometheus, Alertmanager under {args.base_dir} ...",
            flush=True,
        )
        took = stack.start_infrastructure()
        print("  " + ", ".join(f"{k} ready in {v:.1f} s" for k, v in took.items()), flush=True)
        stack.start_service("alert_sink")
        if args.notifier_destinations:
            notifier_file = str(Path(args.notifier_destinations).absolute())
            stack.start_service("notifier", ["--destinations", notifier_file])
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
    # From here on a crashed child is restarted; a crash loop ends the run (wakes the loop).
    supervisor = stack.supervise(
        policy,
        log=lambda message: print(f"supervisor: {message}", file=sys.stderr, flush=True),
        on_failure=lambda _message: shutdown.request(),
    )

    prometheus = stack.prometheus.url if stack.prometheus else "-"
    alertmanager = stack.alertmanager.url if stack.alertmanager else "-"
    rule_names = ", ".join(r.name for r in rules)
    secure = _secure_note(stack)
    print(
        f"""
fraud pipeline running (logs: {args.base_dir / "logs"})
  Kafka        {stack.bootstrap}   topics: transactions, fraud_alerts, transactions.dlq{secure}
  PostgreSQL   psql "{stack.dsn}" -c 'select * from alerts order by window_start desc limit 10'
  Prometheus   {prometheus}   rules {rule_names} (alerts: {prometheus}/alerts)
  Alertmanager {alertmanager}   posts to {args.alert_webhook}/alerts/<severity>
  metrics      producer :{ports.producer}  alert sink :{ports.sink}  detector :{ports.detector}"""
        + (f"  quality :{ports.quality}" if quality else "")
        + (f"  notifier :{ports.notifier}" if args.notifier_destinations else "")
        + f"\n  pids         {args.base_dir / 'run'}/NAME.pid (a crashed child is restarted)"
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
        producer = stack.services["producer"]
        if args.duration and producer.popen and producer.popen.poll() == 0:
            break  # --duration reached (a crashed producer is restarted instead)
    if supervisor.failure:
        print(f"error: {supervisor.failure}", file=sys.stderr, flush=True)
        status = 1

    print("stopping the producer and draining the pipeline ...", flush=True)
    stack.stop_service("producer")
    produced = sum(end_offsets(stack.bootstrap, "transactions", client=stack.kafka_client).values())
    if status == 0:
        try:

            def drained():
                snap = observer.snapshot()
                caught_up = (
                    snap["detector_rows"] >= produced
                    and snap["sink_consumed"] >= snap["alerts_emitted"]
                    and snap["sink_lag"] == 0
                )
                return supervisor.failure or (caught_up and snap)

            wait_until(
                drained, args.drain_timeout, "pipeline drained", interval=1.0, tolerate=Exception
            )
        except TimeoutError as err:
            print(f"warning: {err}; reporting what was done", file=sys.stderr)
        if supervisor.failure:  # a crash loop while draining
            print(f"error: {supervisor.failure}", file=sys.stderr, flush=True)
            status = 1
    snap = observer.snapshot()
    quality_figures = None
    if quality:
        stack.stop_service("quality")  # scores the windows still open, writes its report
        if quality_report.exists():
            quality_figures = json.loads(quality_report.read_text())
    rep = report(snap, produced, quality_figures, supervisor.failure)
    stack.stop()
    print_report(rep)
    if args.report_file:
        Path(args.report_file).write_text(json.dumps(rep, indent=2))
    return status


if __name__ == "__main__":
    sys.exit(main())
