"""A SparkSession with the pinned Kafka connector on its classpath.

Why: pyspark ships Spark itself but not the Kafka source/sink; the connector jars come
from tools/pins (or FRAUD_SPARK_KAFKA_JARS in an image). One place builds the session so
the detector, tests and the local stack agree on its settings.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pyspark.sql import SparkSession

from libs.runfiles.runfiles import jars, java_home
from libs.spark.session import session


def spark_kafka_jars() -> list[Path]:
    """Spark's Kafka connector and its own deps (override: FRAUD_SPARK_KAFKA_JARS=folder)."""
    return jars("FRAUD_SPARK_KAFKA_JARS", "spark_kafka_connector")


def kafka_session(
    app_name: str,
    master: str = "local[2]",
    conf: Mapping[str, str] | None = None,
    ui: bool = False,
) -> SparkSession:
    """Get or create a SparkSession wired for Kafka. Java comes from JAVA_HOME or PATH."""
    os.environ.setdefault("JAVA_HOME", str(java_home()))
    settings = {
        "spark.jars": ",".join(str(p) for p in spark_kafka_jars()),
        "spark.driver.memory": "1g",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.streaming.forceDeleteTempCheckpointLocation": "true",
    }
    return session(app_name, master=master, conf=settings | dict(conf or {}), ui=ui)
