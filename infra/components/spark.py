"""A SparkSession with the pinned Kafka connector on its classpath.

Why: pyspark ships Spark itself but not the Kafka source/sink; the connector jars come
from tools/pins. One place builds the session so tests, the detector and the local stack
agree on its settings.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from infra.components import locate


def spark_session(
    app_name: str,
    master: str = "local[2]",
    conf: Mapping[str, str] | None = None,
    ui: bool = False,
):
    """Get or create a SparkSession wired for Kafka. Java comes from JAVA_HOME or PATH."""
    os.environ.setdefault("JAVA_HOME", str(locate.java_home()))
    from pyspark.sql import SparkSession

    jars = ",".join(str(p) for p in locate.spark_kafka_jars())
    builder = (
        SparkSession.builder.appName(app_name)
        .master(master)
        .config("spark.jars", jars)
        .config("spark.ui.enabled", "true" if ui else "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.memory", "1g")
        .config("spark.sql.streaming.forceDeleteTempCheckpointLocation", "true")
    )
    for key, value in (conf or {}).items():
        builder = builder.config(key, value)
    return builder.getOrCreate()
