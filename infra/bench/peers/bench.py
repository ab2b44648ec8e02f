"""Peers benchmark: our detector and its peers, one after another, on ONE local broker,
the same seeded stream and the same rules (contract.py).

    tools/bazel run //infra/bench:peers -- --rates 1000,5000 --duration 60 --warmup 30

For each engine: start it on its own topics (1 partition) and wait for a probe alert;
then, per rate, run the repo's producer (services/producer, --seed) for warmup +
duration seconds and send an end marker; then the saturation run: --saturation-count
pre-generated transactions of the same seeded generator produced as fast as the client
can, and the time until the end marker's alert comes out.

Figures, the same for every engine:
- sustained tx/s: saturation records / (first record produced → last alert seen, the end
  marker's alert or any after it);
- latency: for every alert version on the output topic whose newest contributing
  transaction was sent after the warm-up, seen-on-output wall time minus that
  transaction's send time (the producer's event_time, also the record's CreateTime);
- CPU seconds per million transactions (saturation run) and peak RSS, of the engine's
  whole process tree (psutil).
The raw consumer computes nothing: it shows the transport limit (no latency row).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from infra.bench.peers.contract import WINDOW_MS
from infra.bench.peers.engines import ENGINES
from infra.bench.peers.measure import final_alerts, percentile
from infra.bench.peers.session import Phase, Session, records, shifted
from infra.components.kafka_io import end_offsets
from infra.components.wait import wait_until
from infra.stack import DetectorSettings, Ports, Stack
from libs.cli.flags import flag, non_negative_int, positive_float
from services.producer.generator import GeneratorConfig, generate


def _rates(text: str) -> list[float]:
    try:
        rates = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected rates like 1000,5000") from None
    if not rates or min(rates) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected positive rates like 1000,5000")
    return rates


def _engines(text: str) -> list[str]:
    names = [x.strip() for x in text.split(",") if x.strip()]
    unknown = [n for n in names if n not in ENGINES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"{text!r}: engines are {', '.join(ENGINES)}")
    return names


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench-peers",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # fmt: off
    flag(parser, "--engines", env="FRAUD_PEERS_ENGINES", default=",".join(ENGINES),
         type=_engines, help="engines to run, in order")
    flag(parser, "--rates", env="FRAUD_PEERS_RATES", default="1000,5000", type=_rates,
         help="fixed rates (tx/s) for the latency runs, comma-separated")
    flag(parser, "--duration", env="FRAUD_PEERS_DURATION", default=60.0, type=positive_float,
         help="measured seconds of traffic per rate (after the warm-up)")
    flag(parser, "--warmup", env="FRAUD_PEERS_WARMUP", default=30.0, type=float,
         help="seconds of traffic per rate before measuring")
    flag(parser, "--saturation-count", env="FRAUD_PEERS_SATURATION_COUNT", default=200_000,
         type=non_negative_int, help="transactions of the saturation run (0: skip it)")
    flag(parser, "--saturation-event-rate", env="FRAUD_PEERS_SATURATION_EVENT_RATE",
         default=5000.0, type=positive_float,
         help="event-time spacing of the saturation stream (tx per second of event time)")
    flag(parser, "--seed", env="FRAUD_PEERS_SEED", default=42, type=int,
         help="seed of the generator (every engine gets the same stream)")
    flag(parser, "--startup-timeout", env="FRAUD_PEERS_STARTUP_TIMEOUT", default=300.0,
         type=positive_float, help="seconds an engine may take to emit its first probe alert")
    flag(parser, "--drain-timeout", env="FRAUD_PEERS_DRAIN_TIMEOUT", default=300.0,
         type=positive_float, help="seconds to wait for a phase's end marker")
    flag(parser, "--json", env="FRAUD_PEERS_JSON", default="", help="also write results here")
    # fmt: on
    DetectorSettings.add_flags(parser)
    return parser.parse_args(argv)


def latency_figures(session: Session, phase: Phase, warmup: float, duration: float) -> dict:
    assert session.reader is not None
    lo = phase.started_wall_ms + warmup * 1000
    hi = phase.started_wall_ms + (warmup + duration) * 1000
    lat = [
        a.latency_ms / 1000
        for a in session.reader.snapshot()
        if not a.is_probe and lo <= a.last_event_ms <= hi
    ]
    return {
        "alerts": len(lat),
        **{f"p{q}": percentile(lat, q / 100) for q in (50, 95, 99)},
    }


def run_rate(session: Session, rate: float, args: argparse.Namespace) -> dict:
    topic = session.topics.input
    before = sum(end_offsets(session.stack.bootstrap, topic).values())
    phase, cpu0 = session.begin(f"{rate:g}/s")
    total = args.warmup + args.duration
    proc = session.stack.start_service(
        "producer",
        ["--rate", str(rate), "--duration", str(total), "--seed", str(args.seed),
         "--topic", topic, "--log-level", "WARNING"],
    )  # fmt: skip
    with contextlib.suppress(TimeoutError):  # a late producer is stopped, not waited for
        wait_until(lambda: not proc.running, total + 120, "the producer finished")
    session.stack.stop_service("producer")
    phase = session.end(phase, cpu0, args.drain_timeout)
    phase.records = sum(end_offsets(session.stack.bootstrap, topic).values()) - before
    return {
        "phase": asdict(phase),
        "produced_per_s": phase.records / total,
        "latency_s": latency_figures(session, phase, args.warmup, args.duration),
    }


def run_saturation(session: Session, stream: list, args: argparse.Namespace) -> dict:
    # Shifted by whole windows (the origin is a window start), so every engine gets the
    # same windows and must end with the same alert set.
    now_ms = round(time.time() * 1000)
    start_ms = now_ms - now_ms % WINDOW_MS + WINDOW_MS
    batch = records(shifted(stream, datetime.fromtimestamp(start_ms / 1000, UTC)))
    phase, cpu0 = session.begin("saturation")
    t0 = time.monotonic()
    session.send(batch)
    produce_s = time.monotonic() - t0
    phase = session.end(phase, cpu0, args.drain_timeout)
    phase.records = len(batch)
    assert session.reader is not None
    final = final_alerts([a for a in session.reader.snapshot() if a.window_start_ms >= start_ms])
    digest = hashlib.sha256(
        repr(sorted((u, w - start_ms, s) for (u, w), s in final.items())).encode()
    ).hexdigest()[:12]
    return {
        "final_alerts": len(final) if session.engine.computes_alerts else None,
        "final_alerts_digest": digest if session.engine.computes_alerts else None,
        "phase": asdict(phase),
        "produce_s": produce_s,
        "tx_per_s": len(batch) / phase.seconds if phase.drained else None,
        "cpu_s_per_million": phase.cpu_seconds / len(batch) * 1e6,
    }


def run_engine(stack: Stack, name: str, stream: list, args, base: Path) -> dict:
    engine = ENGINES[name]
    session = Session(stack, engine, base / name)
    result: dict = {"engine": name, "description": engine.description}
    try:
        result["startup_s"] = session.start(args.startup_timeout)
        print(f"{name}: ready after {result['startup_s']:.1f} s", flush=True)
        result["rates"] = {}
        for rate in args.rates:
            r = run_rate(session, rate, args)
            result["rates"][f"{rate:g}"] = r
            lat = r["latency_s"]
            print(
                f"{name} @ {rate:g}/s: produced {r['produced_per_s']:,.0f}/s, "
                f"{lat['alerts']} alerts, p50/p95/p99 {_s(lat['p50'])}/{_s(lat['p95'])}/"
                f"{_s(lat['p99'])}",
                flush=True,
            )
        if stream:
            result["saturation"] = run_saturation(session, stream, args)
            s = result["saturation"]
            print(
                f"{name} saturation: {_n(s['tx_per_s'])} tx/s "
                f"(produced in {s['produce_s']:.1f} s), {s['cpu_s_per_million']:.0f} CPU s/1M, "
                f"{s['final_alerts']} alerts (set {s['final_alerts_digest']})",
                flush=True,
            )
        assert session.sampler is not None
        result["peak_rss_mb"] = (
            max(
                [p["phase"]["peak_rss"] for p in result["rates"].values()]
                + ([result["saturation"]["phase"]["peak_rss"]] if stream else [])
            )
            / 2**20
        )
    except Exception as err:  # one engine failing must not lose the others' figures
        result["error"] = f"{type(err).__name__}: {err}"
        print(f"{name}: FAILED {result['error']}", flush=True)
    finally:
        session.close()
    return result


def _s(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}s"


def _n(v: float | None) -> str:
    return "-" if v is None else f"{v:,.0f}"


def figures(results: list[dict], rates: list[float]) -> dict[str, dict[str, float | None]]:
    """metric → engine → value (None when not measured)."""
    out: dict[str, dict[str, float | None]] = {}

    def put(metric: str, engine: str, value) -> None:
        out.setdefault(metric, {})[engine] = value

    for r in results:
        e = r["engine"]
        put("sustained tx/s", e, r.get("saturation", {}).get("tx_per_s"))
        for rate in rates:
            lat = r.get("rates", {}).get(f"{rate:g}", {}).get("latency_s", {})
            for q in ("p50", "p95", "p99"):
                value = lat.get(q) if ENGINES[e].computes_alerts else None
                put(f"{q} s @{rate:g}/s", e, value)
        put("CPU s / 1M tx", e, r.get("saturation", {}).get("cpu_s_per_million"))
        put("peak RSS MB", e, r.get("peak_rss_mb"))
    return out


def table(results: list[dict], rates: list[float]) -> str:
    data = figures(results, rates)
    engines = [r["engine"] for r in results]
    width = max(len(m) for m in data) + 2
    lines = [f"{'':<{width}}" + "".join(f"{e:>12}" for e in engines)]
    for metric, values in data.items():
        cells = []
        for e in engines:
            v = values.get(e)
            cells.append("-" if v is None else (f"{v:,.0f}" if v >= 100 else f"{v:.2f}"))
        lines.append(f"{metric:<{width}}" + "".join(f"{c:>12}" for c in cells))
    lines.append("")
    lines.append("ratios (row engine / column engine):")
    for metric, values in data.items():
        lines.append(f"  {metric}")
        lines.append(f"  {'':<10}" + "".join(f"{e:>10}" for e in engines))
        for a in engines:
            cells = []
            for b in engines:
                va, vb = values.get(a), values.get(b)
                cells.append("-" if va is None or not vb else f"{va / vb:.2f}")
            lines.append(f"  {a:<10}" + "".join(f"{c:>10}" for c in cells))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    base = Path(tempfile.mkdtemp(prefix="bench-peers-", dir="/tmp"))
    stack = Stack(
        base_dir=base,
        ports=Ports.free(),
        partitions=1,
        detector=DetectorSettings.from_args(args),
        service_env={"FRAUD_LOG_LEVEL": "WARNING"},
    )
    stream: list = []
    if args.saturation_count:
        origin = datetime(2026, 1, 1, tzinfo=UTC)
        config = GeneratorConfig(
            start_time=origin,
            rate=args.saturation_event_rate,
            seed=args.seed,
            count=args.saturation_count,
        )
        stream = [g.transaction for g in generate(config)]
    print(
        f"peers: {', '.join(args.engines)}; rates {args.rates} for {args.warmup:g}+"
        f"{args.duration:g} s; saturation {args.saturation_count:,} tx; seed {args.seed}; "
        f"{os.cpu_count()} cores",
        flush=True,
    )
    results = []
    try:
        stack.start_infrastructure(prometheus=False)
        for name in args.engines:
            results.append(run_engine(stack, name, stream, args, base))
    finally:
        stack.stop()
        if os.environ.get("FRAUD_BENCH_KEEP"):
            print(f"kept {base}")
        else:
            stack.wipe()
    print()
    print(table(results, args.rates))
    digests = {
        r["engine"]: r["saturation"]["final_alerts_digest"]
        for r in results
        if r.get("saturation", {}).get("final_alerts_digest")
    }
    if digests:
        same = len(set(digests.values())) == 1
        print(
            "saturation alert sets (final version per user and window): "
            + ("identical across " if same else "DIFFER: ")
            + ", ".join(f"{e} {d}" for e, d in digests.items())
        )
    for r in results:
        if "error" in r:
            print(f"{r['engine']}: {r['error']}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
