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

import logging
import sys

from libs.cli.service import Shutdown, serve_metrics
from libs.logging.structured import configure
from services.detector.config import parse_settings


def main(argv: list[str] | None = None) -> int:
    args = parse_settings(argv)
    log = configure("detector", args.log_level)
    logging.getLogger("py4j").setLevel(logging.WARNING)  # its DEBUG is every gateway call
    scoring = args.scoring
    shutdown = Shutdown().install()
    serve_metrics(args.metrics_port)

    # Spark is imported late: --help and flag errors answer without starting a JVM.
    from libs.spark.kafka import kafka_session
    from services.detector import pipeline
    from services.detector.metrics import READY, MetricsListener
    from services.detector.validation import DeadLetters

    spark = kafka_session(
        "fraud-detector",
        master=args.spark_master,
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
        options=args.kafka.spark_options(),
    )
    dead_letters = DeadLetters(
        args.bootstrap_servers,
        args.dlq_topic,
        args.input_topic,
        client_options=tuple(sorted(args.kafka.librdkafka_config().items())),
    )
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
        .options(**args.kafka.spark_options())  # TLS/SASL (libs/kafka/security)
        .option("checkpointLocation", str(args.checkpoint_dir / "alerts"))
        .trigger(processingTime=args.trigger_interval)
        .start()
    )
    READY.set(1)
    log.info(
        "detector running",
        extra={
            "master": args.spark_master,
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
