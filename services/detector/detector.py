"""Fraud detector: Spark Structured Streaming from Kafka `transactions` to `fraud_alerts`.

One streaming query, `alerts`: every record is validated by libs/schemas (refused ones are
published to transactions.dlq with a reason on the way, event times more than
--max-future-skew ahead of the clock among them), valid ones are deduplicated by
transaction_id within the watermark, aggregated in 60 s event-time windows per user and
scored, and windows that qualify are published to fraud_alerts in update mode. It is
checkpointed, so a restart after a crash resumes exactly where the last committed
micro-batch ended. If the query stops or fails, fraud_detector_ready drops to 0 and the
process exits with status 1.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from datetime import timedelta
from pathlib import Path

from libs.cli.flags import flag, non_negative_int, switch
from libs.cli.service import Shutdown, serve_metrics
from libs.logging.structured import configure
from libs.schemas.codec import DEFAULT_MAX_BYTES
from libs.scoring.config import add_scoring_args, config_from_args

_UNITS = {"second": 1, "minute": 60, "hour": 3600}


def duration(text: str) -> timedelta:
    """'300 seconds', '5 minutes', '1 hour' (the spelling of --window) as a timedelta."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(second|minute|hour)s?\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration like '300 seconds', '5 minutes' or '1 hour'"
        )
    return timedelta(seconds=float(match[1]) * _UNITS[match[2]])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="detector",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    kafka = parser.add_argument_group("kafka")
    flag(
        kafka,
        "--bootstrap-servers",
        env="KAFKA_BOOTSTRAP_SERVERS",
        default="localhost:9092",
        help="Kafka bootstrap servers",
    )
    flag(
        kafka,
        "--input-topic",
        env="FRAUD_TRANSACTIONS_TOPIC",
        default="transactions",
        help="topic of transactions",
    )
    flag(
        kafka,
        "--alerts-topic",
        env="FRAUD_ALERTS_TOPIC",
        default="fraud_alerts",
        help="topic alerts are published to",
    )
    flag(
        kafka,
        "--dlq-topic",
        env="FRAUD_DLQ_TOPIC",
        default="transactions.dlq",
        help="topic bad transactions are sent to",
    )
    flag(
        kafka,
        "--starting-offsets",
        env="FRAUD_DETECTOR_STARTING_OFFSETS",
        default="earliest",
        choices=["earliest", "latest"],
        help="where a query with no checkpoint starts reading",
    )
    flag(
        kafka,
        "--max-offsets-per-trigger",
        env="FRAUD_DETECTOR_MAX_OFFSETS_PER_TRIGGER",
        default=0,
        type=non_negative_int,
        help="cap on records per micro-batch (0: no cap)",
    )
    flag(
        kafka,
        "--max-record-bytes",
        env="FRAUD_MAX_RECORD_BYTES",
        default=DEFAULT_MAX_BYTES,
        type=non_negative_int,
        help="larger transactions go to the DLQ as too_large",
    )

    spark = parser.add_argument_group("spark")
    flag(
        spark,
        "--master",
        env="SPARK_MASTER",
        default="local[*,4]",
        help="Spark master URL (local[N,F]: N cores, a failed task tried F times in all, "
        "e.g. after a DLQ flush timed out; plain local[N] never retries a task; "
        "spark://host:7077 retries per spark.task.maxFailures, 4)",
    )
    flag(
        spark,
        "--checkpoint-dir",
        env="FRAUD_DETECTOR_CHECKPOINT_DIR",
        default="/tmp/fraud-detector/checkpoints",
        type=Path,
        help="checkpoint root; queries resume from it after a restart",
    )
    flag(
        spark,
        "--trigger-interval",
        env="FRAUD_DETECTOR_TRIGGER_INTERVAL",
        default="0 seconds",
        help="micro-batch interval ('0 seconds': as soon as the last one ends)",
    )
    flag(
        spark,
        "--shuffle-partitions",
        env="FRAUD_DETECTOR_SHUFFLE_PARTITIONS",
        default=4,
        type=non_negative_int,
        help="partitions of the windowed state",
    )
    flag(
        spark,
        "--driver-memory",
        env="FRAUD_DETECTOR_DRIVER_MEMORY",
        default="2g",
        help="spark.driver.memory",
    )
    switch(spark, "--ui", env="FRAUD_DETECTOR_UI", help="serve the Spark UI (port 4040)")

    windows = parser.add_argument_group("windows")
    flag(
        windows,
        "--window",
        env="FRAUD_WINDOW",
        default="60 seconds",
        help="event-time tumbling window per user",
    )
    flag(
        windows,
        "--watermark",
        env="FRAUD_WATERMARK",
        default="30 seconds",
        help="how late an event may be before it is dropped (and counted); also how long "
        "a transaction_id is remembered to drop its duplicates",
    )
    flag(
        windows,
        "--max-future-skew",
        env="FRAUD_MAX_FUTURE_SKEW",
        default="5 minutes",
        type=duration,
        help="events stamped further ahead of the detector's clock go to the DLQ as "
        "future_event_time (and can never move the watermark)",
    )
    add_scoring_args(parser)

    ops = parser.add_argument_group("operations")
    flag(
        ops,
        "--metrics-port",
        env="FRAUD_DETECTOR_METRICS_PORT",
        default=8002,
        type=non_negative_int,
        help="Prometheus metrics port (0: none)",
    )
    flag(
        ops,
        "--log-level",
        env="FRAUD_LOG_LEVEL",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log level",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    log = configure("detector", args.log_level)
    logging.getLogger("py4j").setLevel(logging.WARNING)  # its DEBUG is every gateway call
    scoring = config_from_args(args)
    shutdown = Shutdown().install()
    serve_metrics(args.metrics_port)

    # Spark is imported late: --help and flag errors answer without starting a JVM.
    from libs.spark.kafka import kafka_session
    from services.detector import pipeline
    from services.detector.metrics import READY, MetricsListener
    from services.detector.validation import DeadLetters

    spark = kafka_session(
        "fraud-detector",
        master=args.master,
        ui=args.ui,
        conf={
            "spark.sql.shuffle.partitions": str(args.shuffle_partitions),
            "spark.driver.memory": args.driver_memory,
            # Arrow batches between the JVM and the validator.
            "spark.sql.execution.arrow.maxRecordsPerBatch": "20000",
        },
    )
    spark.sparkContext.setLogLevel("WARN")
    spark.streams.addListener(MetricsListener())
    window_cfg = pipeline.WindowConfig(
        window=args.window, watermark=args.watermark, max_future_skew=args.max_future_skew
    )

    raw = pipeline.read_kafka(
        spark,
        args.bootstrap_servers,
        args.input_topic,
        args.starting_offsets,
        args.max_offsets_per_trigger,
    )
    dead_letters = DeadLetters(args.bootstrap_servers, args.dlq_topic, args.input_topic)
    valid = pipeline.observe_dlq(
        pipeline.validated(
            raw,
            max_bytes=args.max_record_bytes,
            dead_letters=dead_letters,
            max_future_skew=args.max_future_skew,
        )
    )
    alerts = pipeline.observe_alerts(
        pipeline.scored_alerts(pipeline.window_aggregates(valid, window_cfg), scoring)
    )
    # Alerts go through Spark's Kafka sink (at-least-once; the sink's upsert makes a repeated
    # version harmless). Bad records were published by the validator on the way.
    query = (
        pipeline.alert_messages(alerts)
        .writeStream.format("kafka")
        .queryName("alerts")
        .outputMode("update")
        .option("kafka.bootstrap.servers", args.bootstrap_servers)
        .option("kafka.compression.type", "lz4")
        .option("kafka.linger.ms", "5")
        .option("topic", args.alerts_topic)
        .option("checkpointLocation", str(args.checkpoint_dir / "alerts"))
        .trigger(processingTime=args.trigger_interval)
        .start()
    )
    READY.set(1)
    log.info(
        "detector running",
        extra={
            "master": args.master,
            "max_future_skew_s": args.max_future_skew.total_seconds(),
            "input_topic": args.input_topic,
            "alerts_topic": args.alerts_topic,
            "checkpoint_dir": str(args.checkpoint_dir),
            "rule_version": scoring.rule_version,
        },
    )

    status = 0
    while not shutdown.requested:
        if not query.isActive:
            READY.set(0)  # the listener does too; this also covers a lost listener event
            log.error("query stopped", extra={"query": query.name, "error": str(query.exception())})
            status = 1
            break
        shutdown.wait(1.0)
    log.info("stopping", extra={"signal": shutdown.signal_name})
    READY.set(0)
    query.stop()
    spark.stop()
    log.info("stopped")
    return status


if __name__ == "__main__":
    sys.exit(main())
