"""ns/record of `parse_transaction` on producer records: `tools/bazel run //infra/bench:schemas`.

Why: the detector validates every Kafka record with `parse_transaction` in a Python worker,
so the cost of each contract rule is paid per record. This measures the common path (valid
records as the producer writes them) so a stricter rule that slows it shows up as a number.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from libs.schemas.transaction import parse_transaction, transaction_to_json
from services.producer.generator import GeneratorConfig, generate


def records(count: int, seed: int) -> list[bytes]:
    """`count` valid records from the producer's generator, serialized as it sends them."""
    # A past start: every event_time is in the past whatever the run's duration.
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    config = GeneratorConfig(start_time=start, rate=1_000, seed=seed, count=count)
    return [transaction_to_json(item.transaction) for item in generate(config)]


def ns_per_record(parse: Callable[[bytes], object], raws: list[bytes], repeat: int) -> float:
    """Best of `repeat` passes over `raws`, in CPU nanoseconds per record.

    CPU time of this process, not wall time: the build machines are shared, and another
    process holding the core would otherwise count as parsing time.
    """
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time_ns()
        for raw in raws:
            parse(raw)
        best = min(best, (time.process_time_ns() - started) / len(raws))
    return best


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000, help="records per pass")
    parser.add_argument("--repeat", type=int, default=7, help="passes; the best one counts")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    raws = records(args.count, args.seed)
    size = sum(map(len, raws)) / len(raws)
    ns = ns_per_record(parse_transaction, raws, args.repeat)
    print(
        f"parse_transaction: {ns:,.0f} ns/record ({1e9 / ns:,.0f} records/s on one core; "
        f"{len(raws)} producer records of {size:.0f} bytes on average, "
        f"best of {args.repeat} passes, CPU time)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
