"""End-to-end benchmark: drives the local stack at a fixed rate and says which stage limits.

    tools/bazel run //infra/bench:e2e -- --rate 5000 --duration 60

Prints, every --interval seconds, what each stage did (producer tx/s, detector rows/s and
lag, sink rows/s and lag), then sustained throughput, end-to-end latency p50/p95/p99
(newest contributing event → database commit) and the verdict: the first stage that did
not keep up. Figures come from the services' own Prometheus metrics and Kafka offsets.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from infra.components.kafka_io import end_offsets
from infra.components.metrics_scrape import Scraper, histogram_quantile, total
from infra.components.wait import wait_until
from infra.stack import DetectorSettings, Ports, Stack
from libs.cli.flags import flag, switch
from libs.cli.settings import non_negative_int, positive_float


@dataclass
class Sample:
    t: float
    produced: float
    detector_rows: float
    detector_lag: float
    alerts_stored: float
    sink_lag: float
    batch_p50: float | None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench-e2e", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    flag(
        parser,
        "--rate",
        env="FRAUD_BENCH_RATE",
        default=5000.0,
        type=positive_float,
        help="target transactions per second",
    )
    flag(
        parser,
        "--duration",
        env="FRAUD_BENCH_DURATION",
        default=60.0,
        type=positive_float,
        help="seconds of traffic",
    )
    flag(
        parser,
        "--warmup",
        env="FRAUD_BENCH_WARMUP",
        default=15.0,
        type=float,
        help="seconds at the start left out of the sustained figures",
    )
    flag(
        parser,
        "--interval",
        env="FRAUD_BENCH_INTERVAL",
        default=5.0,
        type=positive_float,
        help="seconds between samples",
    )
    flag(
        parser,
        "--drain-timeout",
        env="FRAUD_BENCH_DRAIN_TIMEOUT",
        default=180.0,
        type=positive_float,
        help="after the traffic, how long to wait for the backlog",
    )
    flag(
        parser,
        "--partitions",
        env="FRAUD_BENCH_PARTITIONS",
        default=3,
        type=non_negative_int,
        help="partitions of the topics",
    )
    DetectorSettings.add_flags(parser)
    switch(parser, "--quality", env="FRAUD_BENCH_QUALITY", help="also run the quality monitor")
    switch(
        parser,
        "--secure",
        env="FRAUD_BENCH_SECURE",
        help="Kafka over SASL_SSL/SCRAM-SHA-512 with ACLs, one principal per service (compare "
        "with a run without it for the cost of TLS + SCRAM)",
    )
    flag(
        parser,
        "--log-level",
        env="FRAUD_BENCH_LOG_LEVEL",
        default="WARNING",
        help="log level of the services",
    )
    flag(parser, "--json", env="FRAUD_BENCH_JSON", default="", help="write the results here")
    return parser.parse_args(argv)


def sample(scraper: Scraper, t: float, bootstrap: str, client: dict | None = None) -> Sample:
    d, s, p = (scraper.get(name) for name in ("detector", "alert_sink", "producer"))
    detector_rows = total(d, "fraud_detector_input_rows_total", query="alerts")
    try:  # records on the topic that the detector has not finished a batch with
        ends = end_offsets(bootstrap, "transactions", client=client)
        lag = max(0.0, sum(ends.values()) - detector_rows)
    except Exception:
        lag = total(d, "fraud_detector_consumer_lag", query="alerts")
    return Sample(
        t=t,
        produced=total(p, "fraud_producer_messages_total"),
        detector_rows=detector_rows,
        detector_lag=lag,
        alerts_stored=total(s, "fraud_sink_alerts_stored_total")
        + total(s, "fraud_sink_alerts_ignored_total"),
        sink_lag=total(s, "fraud_sink_consumer_lag"),
        batch_p50=histogram_quantile(
            d, "fraud_detector_batch_duration_seconds", 0.5, query="alerts"
        ),
    )


def rate(a: Sample, b: Sample, field: str) -> float:
    return (getattr(b, field) - getattr(a, field)) / (b.t - a.t) if b.t > a.t else 0.0


def verdict(
    args, steady: list[Sample], drained_s: float | None, batch_s: float | None = None
) -> str:
    """The first stage that did not keep up during the steady part of the run; when all
    did, what bounds the latency."""
    first, last = steady[0], steady[-1]
    produced = rate(first, last, "produced")
    if produced < 0.95 * args.rate:
        return (
            f"producer-limited: it sent {produced:,.0f} tx/s of the {args.rate:,.0f} asked "
            "(generation or Kafka produce is the bottleneck)"
        )
    detector = rate(first, last, "detector_rows")
    lag_growth = last.detector_lag - first.detector_lag
    if detector < 0.95 * produced or lag_growth > args.rate * args.interval:
        return (
            f"detector-limited: {detector:,.0f} rows/s for {produced:,.0f} tx/s in, "
            f"lag {first.detector_lag:,.0f} → {last.detector_lag:,.0f}"
        )
    if last.sink_lag > max(1000.0, 2 * first.sink_lag):
        return f"sink-limited: its lag grew {first.sink_lag:,.0f} → {last.sink_lag:,.0f}"
    if drained_s is None:
        return "did not drain within the timeout: some stage fell behind"
    mean_lag_s = sum(x.detector_lag for x in steady) / len(steady) / max(produced, 1.0)
    if batch_s is not None and (batch_s > 1.0 or mean_lag_s > 2.0):
        return (
            f"keeps up: every stage sustained {produced:,.0f} tx/s; latency is bound by the "
            f"detector (micro-batches of {batch_s:.1f} s, on average {mean_lag_s:.1f} s of "
            "input waiting)"
        )
    return f"keeps up: every stage sustained {produced:,.0f} tx/s"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    base = Path(tempfile.mkdtemp(prefix="bench-", dir="/tmp"))
    stack = Stack(
        base_dir=base,
        ports=Ports.free(),
        partitions=args.partitions,
        detector=DetectorSettings.from_args(args),
        service_env={"FRAUD_LOG_LEVEL": args.log_level},
        secure=args.secure,
    )
    try:
        stack.start_infrastructure(prometheus=False)
        stack.start_service("alert_sink")
        if args.quality:
            stack.start_service("quality")
        stack.start_service("detector")
        stack.wait_metrics("detector", timeout=180)
        stack.wait_metrics("alert_sink", timeout=60)
        print(
            f"bench: {args.rate:,.0f} tx/s for {args.duration:.0f} s "
            f"(master {args.spark_master}, {args.partitions} partitions"
            + (", Kafka SASL_SSL/SCRAM)" if args.secure else ")"),
            flush=True,
        )
        stack.start_service(
            "producer", ["--rate", str(args.rate), "--duration", str(args.duration), "--seed", "42"]
        )
        stack.wait_metrics("producer", timeout=60)
        scraper = Scraper({n: stack.metrics_url(n) for n in ("detector", "alert_sink", "producer")})
        started = time.monotonic()
        samples = [sample(scraper, 0.0, stack.bootstrap, stack.kafka_client)]
        print(
            f"{'t(s)':>6} {'produced/s':>11} {'detector/s':>11} {'det lag':>9} "
            f"{'sink/s':>8} {'sink lag':>9} {'batch p50':>9}"
        )
        steady_sink: dict = {}
        while stack.services["producer"].running:
            time.sleep(args.interval)  # sampling period of a measurement, not a synchronisation
            samples.append(
                sample(scraper, time.monotonic() - started, stack.bootstrap, stack.kafka_client)
            )
            if not steady_sink and samples[-1].t >= args.warmup:
                steady_sink = dict(scraper.last.get("alert_sink", {}))
            a, b = samples[-2], samples[-1]
            p50 = "-" if b.batch_p50 is None else f"{b.batch_p50:.2f}s"
            print(
                f"{b.t:6.0f} {rate(a, b, 'produced'):11,.0f} {rate(a, b, 'detector_rows'):11,.0f}"
                f" {b.detector_lag:9,.0f} {rate(a, b, 'alerts_stored'):8,.0f}"
                f" {b.sink_lag:9,.0f} {p50:>9}",
                flush=True,
            )
        produced_total = sum(
            end_offsets(stack.bootstrap, "transactions", client=stack.kafka_client).values()
        )
        drain_start = time.monotonic()
        drained_s: float | None
        try:
            wait_until(
                lambda: (
                    sample(scraper, 0, stack.bootstrap, stack.kafka_client).detector_rows
                    >= produced_total
                    and sample(scraper, 0, stack.bootstrap, stack.kafka_client).sink_lag == 0
                ),
                args.drain_timeout,
                "drain",
                interval=1.0,
                tolerate=Exception,
            )
            drained_s = time.monotonic() - drain_start
        except TimeoutError:
            drained_s = None
        sink_metrics = scraper.get("alert_sink")
        phases = {
            f"{dict(labels)['query']}.{dict(labels)['phase']}": value
            for (name, labels), value in scraper.last.get("detector", {}).items()
            if name == "fraud_detector_batch_phase_seconds"
        }
        running = [x for x in samples if x.t <= args.duration - 1] or samples
        steady = [x for x in running if x.t >= args.warmup] or running
        # Latency of what happened after the warm-up: the histogram minus its warm-up part.
        steady_hist = {k: v - steady_sink.get(k, 0.0) for k, v in sink_metrics.items()}
        latency = {
            f"p{int(q * 100)}": histogram_quantile(steady_hist, "fraud_sink_e2e_latency_seconds", q)
            for q in (0.5, 0.95, 0.99)
        }
        results = {
            "target_rate": args.rate,
            "secure": args.secure,
            "duration_s": args.duration,
            "produced": produced_total,
            "sustained_produced_per_s": rate(steady[0], steady[-1], "produced"),
            "detector_rows_per_s": rate(steady[0], steady[-1], "detector_rows"),
            "sink_rows_per_s": rate(steady[0], steady[-1], "alerts_stored"),
            "max_detector_lag": max(x.detector_lag for x in samples),
            "max_sink_lag": max(x.sink_lag for x in samples),
            "drain_s": drained_s,
            "latency_s": latency,
            "verdict": verdict(args, steady, drained_s, phases.get("alerts.triggerExecution")),
            "detector_last_batch_phases_s": phases,
            "samples": [asdict(x) for x in samples],
        }
        print(
            f"\nsustained: produced {results['sustained_produced_per_s']:,.0f} tx/s, "
            f"detector {results['detector_rows_per_s']:,.0f} rows/s, "
            f"sink {results['sink_rows_per_s']:,.0f} alert rows/s"
        )
        print(
            f"max lag: detector {results['max_detector_lag']:,.0f}, "
            f"sink {results['max_sink_lag']:,.0f}; drained in "
            + ("(timeout)" if drained_s is None else f"{drained_s:.1f} s")
        )
        print(
            "end-to-end latency (event → database): "
            + ", ".join(f"{k} {'-' if v is None else f'{v:.2f} s'}" for k, v in latency.items())
        )
        print(
            "detector, last batch of each query (s): "
            + ", ".join(f"{k} {v:.2f}" for k, v in sorted(phases.items()) if v >= 0.01)
        )
        print(f"verdict: {results['verdict']}")
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2))
        return 0
    finally:
        stack.stop()
        if os.environ.get("FRAUD_BENCH_KEEP"):
            print(f"kept {base}")
        else:
            stack.wipe()


if __name__ == "__main__":
    sys.exit(main())
