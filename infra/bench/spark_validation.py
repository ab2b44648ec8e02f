"""rows/s of the expression validator (`spark_validation.validate`) against the detector's
mapInArrow validator (`services.detector.validation.validate_batches`) on the same batch.

Why: real-time mode needs the expression validator; this shows what it costs (or saves)
against today's Python one. Both run on one cached DataFrame of the producer's records
(plus a share of hostile ones), local[2], and write to Spark's `noop` sink so every output
column is computed. `tools/bazel run //infra/bench:spark_validation -- --rows 100000`
"""

from __future__ import annotations

import argparse
import functools
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from libs.schemas.spark_validation import validate
from libs.schemas.transaction import transaction_to_json
from libs.spark.session import session
from services.detector.validation import VALIDATED_DDL, validate_batches
from services.producer.generator import GeneratorConfig, generate

HOSTILE = [b"", b"\xff", b"{", b"[1]", b'{"a":1,"a":2}', b'{"amount":1e400}']


def corpus(spark: SparkSession, rows: int) -> DataFrame:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    config = GeneratorConfig(start_time=start, rate=1_000, seed=3, count=rows)
    values = [transaction_to_json(g.transaction) for g in generate(config)]
    for i in range(0, len(values), 100):  # 1% hostile
        values[i] = HOSTILE[(i // 100) % len(HOSTILE)]
    data = [(None, v, 0, i) for i, v in enumerate(values)]
    df = spark.createDataFrame(data, "key binary, value binary, partition int, offset bigint")
    df = df.repartition(2).cache()
    df.count()
    return df


def rows_per_s(run: Callable[[], DataFrame], rows: int, repeat: int) -> float:
    run().write.format("noop").mode("overwrite").save()  # warm-up: codegen, Python workers
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        run().write.format("noop").mode("overwrite").save()
        best = min(best, time.perf_counter() - t0)
    return rows / best


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="records per run")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs each; best counts")
    args = parser.parse_args(argv)
    spark = session("spark-validation-bench", master="local[2]")
    spark.sparkContext.setLogLevel("ERROR")
    df = corpus(spark, args.rows)
    now = F.lit(datetime.now(UTC))
    arrow = functools.partial(validate_batches)
    expressions = rows_per_s(lambda: validate(df, now=now), args.rows, args.repeat)
    python = rows_per_s(
        lambda: df.select("key", "value", "partition", "offset").mapInArrow(arrow, VALIDATED_DDL),
        args.rows,
        args.repeat,
    )
    print(f"rows: {args.rows}, local[2], best of {args.repeat}")
    print(f"spark expressions (spark_validation.validate): {expressions:12,.0f} rows/s")
    print(f"mapInArrow (validation.validate_batches):      {python:12,.0f} rows/s")
    print(f"ratio expressions / mapInArrow: {expressions / python:.2f}")
    spark.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
