"""Finds files Bazel ships beside a binary or test (runfiles, external repositories, jars)
and the Java runtime, at run time, inside `bazel test` / `bazel run` or from a plain
checkout, image or virtualenv.

Why in libs: services need it at run time (the detector finds Spark's Kafka connector
jars), and so do the components in infra/; services may import only libs. Bazel places
external repositories in the runfiles tree under canonical names
(`_main~components~kafka_broker`), which differ between Bazel versions; we look them up by
their apparent name. Each lookup has an environment override for running without Bazel.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path


class ComponentError(RuntimeError):
    """A component could not be found, started or used; the message says why and what to do."""


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


def jars(env_var: str, repo: str) -> list[Path]:
    folder = Path(os.environ[env_var]) if os.environ.get(env_var) else external_repo(repo) / "jars"
    jars = sorted(folder.glob("*.jar"))
    if not jars:
        raise ComponentError(f"no jars in {folder} (set {env_var} to a folder of jars)")
    return jars


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
