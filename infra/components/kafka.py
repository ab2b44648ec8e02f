"""A single-node Apache Kafka broker in KRaft mode, run from the pinned jars.

Why: no broker is packaged for these machines and containers cannot be pulled, so tests
and the local stack run the real broker JVM from Maven Central jars (see tools/pins).
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from infra.components import locate
from infra.components.process import (
    ComponentError,
    ManagedProcess,
    ensure_port_free,
    free_port,
    port_open,
)
from libs.runfiles.runfiles import java_home

_LOG4J2 = """\
rootLogger.level = {level}
rootLogger.appenderRef.stdout.ref = STDOUT
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
logger.kafka.name = kafka
logger.kafka.level = {level}
logger.apache.name = org.apache.kafka
logger.apache.level = {level}
"""


@dataclass
class KafkaBroker:
    """Start with `start()`, stop with `stop()`; `bootstrap` is host:port for clients."""

    data_dir: Path
    port: int = 0  # 0: any free port
    controller_port: int = 0
    partitions: int = 1
    heap: str = "512m"
    log_level: str = "WARN"
    # Where clients connect: tests bind and advertise loopback. A container binds every
    # interface, advertises the host's name for `port`, and adds an `internal` listener
    # (host, port) that other containers reach it by.
    bind_host: str = "127.0.0.1"
    advertised_host: str = "127.0.0.1"
    advertised_port: int = 0  # 0: `port` (a container's published port may differ)
    internal: tuple[str, int] | None = None
    log_path: Path | None = None  # the broker's output (default: data_dir/logs/broker.log)
    process: ManagedProcess | None = field(default=None, repr=False)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def _admin_bootstrap(self) -> str:
        """Where the broker's own admin calls go: the metadata must name an address that
        works from here, which the advertised one of a published port does not."""
        if self.internal is not None:
            return "{}:{}".format(*self.internal)
        return self.bootstrap

    def start(self, timeout: float = 90.0) -> float:
        """Format storage on first start, start the broker, wait until it serves metadata.
        Returns the seconds it took to become ready."""
        if self.port:
            ensure_port_free(self.port, "Kafka")
        else:
            self.port = free_port()
        if self.controller_port:
            ensure_port_free(self.controller_port, "Kafka controller")
        else:
            self.controller_port = free_port()
        java = java_home() / "bin" / "java"
        classpath = ":".join(str(p) for p in locate.kafka_jars())
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self._write_config()
        jvm = [
            str(java),
            f"-Xms{self.heap}",
            f"-Xmx{self.heap}",
            "-XX:+UseG1GC",
            f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.properties'}",
            "-cp",
            classpath,
        ]
        logs = self.data_dir / "logs"
        if not (self.data_dir / "kraft" / "meta.properties").exists():
            fmt = ManagedProcess(
                "kafka-storage format",
                [
                    *jvm,
                    "kafka.tools.StorageTool",
                    "format",
                    "--config",
                    str(config),
                    # One argument: a random id may start with "-", which would read as a flag.
                    f"--cluster-id={_cluster_id()}",
                    "--ignore-formatted",
                ],
                logs / "format.log",
            )
            fmt.start()
            assert fmt.popen is not None
            if fmt.popen.wait(timeout) != 0:
                raise ComponentError(
                    f"formatting Kafka storage failed; see {fmt.log_path}:\n"
                    + (fmt.log_path.read_text(errors="replace")[-3000:])
                )
        self.process = ManagedProcess(
            "Kafka broker", [*jvm, "kafka.Kafka", str(config)], self.log_path or logs / "broker.log"
        )
        self.process.start()
        return self.process.wait_until(self._serves_metadata, timeout, "serving metadata")

    def _serves_metadata(self) -> bool:
        if not port_open(self.port):
            return False
        from confluent_kafka.admin import AdminClient

        # log_level 3: errors only; librdkafka's notices while the broker starts are noise.
        admin = AdminClient({"bootstrap.servers": self._admin_bootstrap, "log_level": 3})
        return admin.list_topics(timeout=2).brokers != {}

    def _write_config(self) -> Path:
        (self.data_dir / "log4j2.properties").write_text(_LOG4J2.format(level=self.log_level))
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://{self.bind_host}:{self.port},"
            f"CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": "PLAINTEXT://"
            f"{self.advertised_host}:{self.advertised_port or self.port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.data_dir / "kraft"),
            "num.partitions": str(self.partitions),
            "auto.create.topics.enable": "false",  # topics are created on purpose
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
        }
        if self.internal is not None:
            host, port = self.internal
            props["listeners"] += f",INTERNAL://{self.bind_host}:{port}"
            props["advertised.listeners"] += f",INTERNAL://{host}:{port}"
            props["listener.security.protocol.map"] += ",INTERNAL:PLAINTEXT"
        path = self.data_dir / "server.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        return path

    def create_topics(self, topics: dict[str, int], timeout: float = 30.0) -> None:
        """Create topics (name -> partitions); existing ones are left as they are."""
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient({"bootstrap.servers": self._admin_bootstrap})
        existing = set(admin.list_topics(timeout=timeout).topics)
        wanted = [NewTopic(t, num_partitions=n) for t, n in topics.items() if t not in existing]
        if not wanted:
            return
        for topic, future in admin.create_topics(wanted, operation_timeout=timeout).items():
            try:
                future.result(timeout)
            except KafkaException as err:
                raise ComponentError(f"creating topic {topic!r} failed: {err}") from None

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()


def _cluster_id() -> str:
    """A random KRaft cluster id: 16 bytes, URL-safe base64 without padding."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
