"""The engines of the peers benchmark and how each is started against a given pair of
topics. Adding one (e.g. the detector with a real-time trigger) is one more `Engine` in
`ENGINES`: everything else (stream, probes, measurements) is engine-agnostic.

Every engine reads Transaction JSON from `topics.input` and writes alert versions
(contract.py) to `topics.output`; `Engine.start` returns the process whose tree is
measured.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from infra.components.process import ManagedProcess
from infra.stack import Stack
from libs.runfiles.runfiles import external_repo, java_home, runfiles_root


@dataclass(frozen=True)
class Topics:
    input: str
    output: str
    dlq: str

    @classmethod
    def for_engine(cls, engine: str) -> Topics:
        return cls(f"peers.{engine}.in", f"peers.{engine}.out", f"peers.{engine}.dlq")


@dataclass(frozen=True)
class Engine:
    name: str
    description: str
    start: Callable[[Stack, Topics, Path], ManagedProcess]
    computes_alerts: bool = True  # False: the transport limit (no latency row)
    extra_env: dict[str, str] = field(default_factory=dict)


def _binary(path: str) -> str:
    binary = runfiles_root() / "_main" / path
    if not binary.exists():
        raise FileNotFoundError(f"{binary} is not in the runfiles (a data dep of :engines?)")
    return str(binary)


def _peer(name: str, argv: list[str], workdir: Path, env: dict[str, str] | None = None):
    proc = ManagedProcess(
        name, argv, workdir / f"{name}.log", env={**os.environ, **(env or {})}, cwd=workdir
    )
    proc.start()
    return proc


def start_detector(stack: Stack, topics: Topics, workdir: Path) -> ManagedProcess:
    """services/detector as the local stack runs it (DetectorSettings), on these topics."""
    return stack.start_service(
        "detector",
        env={
            "FRAUD_TRANSACTIONS_TOPIC": topics.input,
            "FRAUD_ALERTS_TOPIC": topics.output,
            "FRAUD_DLQ_TOPIC": topics.dlq,
            "FRAUD_DETECTOR_CHECKPOINT_DIR": str(workdir / "checkpoints"),
            "FRAUD_DETECTOR_STARTING_OFFSETS": "earliest",
        },
    )


def start_flink(stack: Stack, topics: Topics, workdir: Path) -> ManagedProcess:
    jars = sorted((external_repo("flink_kafka_connector") / "jars").glob("*.jar"))
    argv = [
        _binary("infra/bench/peers/flink/flink_job"),
        "--bootstrap-servers",
        stack.bootstrap,
        "--input-topic",
        topics.input,
        "--output-topic",
        topics.output,
        *[a for jar in jars for a in ("--connector-jar", str(jar))],
    ]
    # PyFlink starts its JVM from JAVA_HOME; its logs go under the work dir.
    env = {"JAVA_HOME": str(java_home()), "FLINK_LOG_DIR": str(workdir / "flink-logs")}
    return _peer("flink", argv, workdir, env)


def start_quix(stack: Stack, topics: Topics, workdir: Path) -> ManagedProcess:
    argv = [
        _binary("infra/bench/peers/quix/quix_app"),
        "--bootstrap-servers",
        stack.bootstrap,
        "--input-topic",
        topics.input,
        "--output-topic",
        topics.output,
        "--state-dir",
        str(workdir / "quix-state"),
    ]
    return _peer("quix", argv, workdir)


def start_raw(stack: Stack, topics: Topics, workdir: Path) -> ManagedProcess:
    argv = [
        _binary("infra/bench/peers/raw_consumer"),
        "--bootstrap-servers",
        stack.bootstrap,
        "--input-topic",
        topics.input,
        "--output-topic",
        topics.output,
    ]
    return _peer("raw", argv, workdir)


ENGINES: dict[str, Engine] = {
    e.name: e
    for e in (
        Engine("detector", "ours: Spark Structured Streaming, micro-batch", start_detector),
        Engine("flink", "Apache Flink 2.3 (PyFlink SQL, parallelism 1)", start_flink),
        Engine("quix", "Quix Streams 3.28 (tumbling window .current())", start_quix),
        Engine("raw", "transport limit: confluent-kafka + orjson, no state", start_raw, False),
    )
}


def stop(stack: Stack, engine: Engine, proc: ManagedProcess) -> None:
    if engine.name == "detector":
        stack.stop_service("detector")
    else:
        proc.stop(30)
