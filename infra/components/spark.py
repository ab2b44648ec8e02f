"""A SparkSession with the pinned Kafka connector on its classpath.

Why: pyspark ships Spark itself but not the Kafka source/sink; the connector jars come
from tools/pins. One place builds the session so tests, the detector and the local stack
agree on its settings.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from infra.components import locate
from libs.spark.session import session


def spark_session(
    app_name: str,
    master: str = "local[2]",
    conf: Mapping[str, str] | None = None,
    ui: bool = False,
):
    """Get or create a SparkSession wired for Kafka. Java comes from JAVA_HOME or PATH."""
    os.environ.setdefault("JAVA_HOME", str(locate.java_home()))
    settings = {
        "spark.jars": ",".join(str(p) for p in locate.spark_kafka_jars()),
        "spark.driver.memory": "1g",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.streaming.forceDeleteTempCheckpointLocation": "true",
    }
    return session(app_name, master=master, conf=settings | dict(conf or {}), ui=ui)
