"""One way to build a SparkSession, shared by the detector, the local stack and tests.

Why: a few settings must always agree: UTC session time (window boundaries are UTC), the
Python workers running the driver's interpreter (PySpark refuses a different minor version,
and `python3` on PATH is often another one), loopback binding for local masters, and a UI
that cannot kill jobs or stages (`spark.ui.killEnabled=false`: anyone who reaches the UI
could otherwise stop the detector's query).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from pyspark.sql import SparkSession


def session(
    app_name: str,
    master: str = "local[1]",
    conf: Mapping[str, str] | None = None,
    ui: bool = False,
) -> SparkSession:
    """Get or create a SparkSession with our defaults, then `conf` on top."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    settings = {
        "spark.ui.enabled": "true" if ui else "false",
        "spark.ui.killEnabled": "false",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": "4",
        "spark.pyspark.python": sys.executable,
    }
    if master.startswith("local"):
        settings |= {"spark.driver.bindAddress": "127.0.0.1", "spark.driver.host": "127.0.0.1"}
    settings |= dict(conf or {})
    builder = SparkSession.builder.appName(app_name).master(master)
    for key, value in settings.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()
