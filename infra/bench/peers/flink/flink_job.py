"""Apache Flink peer: the detector's rules as one PyFlink SQL job (no Python UDF, so the
whole job runs in Flink's JVM; Python only plans it).

Source: the Kafka `transactions` JSON with a 30 s bounded-out-of-orderness watermark on
event_time. Late rows are dropped as the detector drops them: when their 60 s window
ended at or before the current watermark (CURRENT_WATERMARK). A transaction_id seen again
counts once (Flink's keep-first-row deduplication; state kept 120 s). The windows are
epoch-aligned minutes per user, aggregated with a continuous GROUP BY so that every change
of a window's aggregates is emitted at once, which is the detector's update mode (a
windowing TVF would emit only when the window closes, 30 s after its end). Alerts go to
an upsert-kafka sink keyed by (user_id, window_start) (the query's own upsert key, so
window_start stays a TIMESTAMP: ISO-8601 in UTC without a zone); the score is generated from
libs/scoring's rules.

    flink_job --bootstrap-servers H:P --input-topic T --output-topic O --connector-jar J
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from infra.bench.peers.contract import WATERMARK_MS, WINDOW_MS, scoring, sql_score

ISO = "yyyy-MM-dd''T''HH:mm:ss.SSS''Z''"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="flink_job", description=__doc__)
    parser.add_argument("--bootstrap-servers", required=True)
    parser.add_argument("--input-topic", required=True)
    parser.add_argument("--output-topic", required=True)
    parser.add_argument("--connector-jar", type=Path, action="append", required=True)
    parser.add_argument("--group", default="peers-flink")
    parser.add_argument("--parallelism", type=int, default=1)
    return parser.parse_args(argv)


def statements(args: argparse.Namespace) -> list[str]:
    config = scoring()
    score = sql_score(config)
    return [
        f"""
        CREATE TABLE transactions (
            transaction_id STRING,
            user_id STRING,
            amount DECIMAL(18, 2),
            country STRING,
            event_time STRING,
            ts AS CAST(REPLACE(REPLACE(event_time, 'T', ' '), 'Z', '') AS TIMESTAMP(3)),
            proc AS PROCTIME(),
            WATERMARK FOR ts AS ts - INTERVAL '{WATERMARK_MS // 1000}' SECOND
        ) WITH (
            'connector' = 'kafka',
            'topic' = '{args.input_topic}',
            'properties.bootstrap.servers' = '{args.bootstrap_servers}',
            'properties.group.id' = '{args.group}',
            'scan.startup.mode' = 'earliest-offset',
            'format' = 'json',
            'json.ignore-parse-errors' = 'true',
            'json.fail-on-missing-field' = 'false'
        )""",
        f"""
        CREATE TABLE alerts (
            user_id STRING,
            window_start TIMESTAMP(3),
            window_end STRING,
            txn_count BIGINT,
            distinct_countries BIGINT,
            max_amount DECIMAL(18, 2),
            total_amount DECIMAL(38, 2),
            fraud_score INT,
            last_event_time STRING,
            PRIMARY KEY (user_id, window_start) NOT ENFORCED
        ) WITH (
            'connector' = 'upsert-kafka',
            'topic' = '{args.output_topic}',
            'properties.bootstrap.servers' = '{args.bootstrap_servers}',
            'key.format' = 'json',
            'key.json.timestamp-format.standard' = 'ISO-8601',
            'value.format' = 'json',
            'value.json.timestamp-format.standard' = 'ISO-8601'
        )""",
        f"""
        CREATE TEMPORARY VIEW accepted AS
        SELECT transaction_id, user_id, amount, country, ts, proc,
               FLOOR(ts TO MINUTE) AS window_start
        FROM transactions
        WHERE ts IS NOT NULL AND user_id IS NOT NULL AND (
            CURRENT_WATERMARK(ts) IS NULL
            OR FLOOR(ts TO MINUTE) + INTERVAL '{WINDOW_MS // 1000}' SECOND > CURRENT_WATERMARK(ts)
        )""",
        """
        CREATE TEMPORARY VIEW deduplicated AS
        SELECT * FROM (
            SELECT *, ROW_NUMBER() OVER (PARTITION BY transaction_id ORDER BY proc ASC) AS rn
            FROM accepted
        ) WHERE rn = 1""",
        """
        CREATE TEMPORARY VIEW aggregates AS
        SELECT user_id, window_start,
               COUNT(*) AS txn_count,
               COUNT(DISTINCT country) AS distinct_countries,
               MAX(amount) AS max_amount,
               SUM(amount) AS total_amount,
               MAX(ts) AS last_event_time
        FROM deduplicated
        GROUP BY user_id, window_start""",
        f"""
        INSERT INTO alerts
        SELECT user_id,
               window_start,
               DATE_FORMAT(window_start + INTERVAL '{WINDOW_MS // 1000}' SECOND, '{ISO}'),
               txn_count, distinct_countries, max_amount, total_amount,
               {score},
               DATE_FORMAT(last_event_time, '{ISO}')
        FROM aggregates
        WHERE {score} >= {config.alert_threshold}""",
    ]


def _real_pyflink_first() -> None:
    """Both PyFlink wheels ship pyflink/__init__.py and rules_python gives each wheel its
    own sys.path entry: apache-flink's (the real package) must come before
    apache-flink-libraries' (jars and a stub), or `import pyflink` finds the stub."""
    real = [p for p in sys.path if p.rstrip("/").endswith("pip_flink_apache_flink/site-packages")]
    for path in real:
        sys.path.remove(path)
        sys.path.insert(0, path)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    _real_pyflink_first()
    from pyflink.table import EnvironmentSettings, TableEnvironment

    env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    conf = env.get_config()
    conf.set("pipeline.jars", ";".join(p.resolve().as_uri() for p in args.connector_jar))
    conf.set("parallelism.default", str(args.parallelism))
    conf.set("table.local-time-zone", "UTC")
    conf.set("table.exec.state.ttl", f"{(WINDOW_MS + WATERMARK_MS) // 1000 + 30} s")
    conf.set("table.exec.source.idle-timeout", "5 s")
    *ddl, insert = statements(args)
    for statement in ddl:
        env.execute_sql(statement)
    print("flink_job: submitting", flush=True)
    env.execute_sql(insert).wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
