"""Generator throughput on one core: `tools/bazel run //services/producer:generator_bench`.

Why: the producer must sustain tens of thousands of tx/s from a single Python process, so
the generator's own cost (and generation plus JSON encoding, the producer's CPU work
before librdkafka) is measured here rather than guessed.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from libs.schemas.transaction import transaction_to_json
from services.producer.generator import GeneratorConfig, generate


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300_000, help="transactions per run")
    parser.add_argument("--rate", type=float, default=25_000, help="simulated tx/s (pool size)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; best wins")
    args = parser.parse_args(argv)
    config = GeneratorConfig(
        start_time=datetime.now(UTC), rate=args.rate, seed=args.seed, count=args.count
    )

    started = time.perf_counter()
    next(iter(generate(GeneratorConfig(start_time=config.start_time, rate=1.0, count=1))))
    print(f"startup (pools, Faker): {time.perf_counter() - started:.2f} s")

    def generate_only() -> None:
        for _ in generate(config):
            pass

    def generate_and_encode() -> None:
        for item in generate(config):
            transaction_to_json(item.transaction)
            item.headers()

    for name, run in (("generate", generate_only), ("generate+encode", generate_and_encode)):
        best = min(_timed(run) for _ in range(args.repeat))
        print(
            f"{name}: {args.count} tx in {best:.2f} s = {args.count / best:,.0f} tx/s "
            f"(users={config.user_count}, best of {args.repeat})"
        )
    return 0


def _timed(run) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


if __name__ == "__main__":
    raise SystemExit(main())
