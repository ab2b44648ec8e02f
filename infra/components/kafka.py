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
from infra.components.kafka_certs import ADMIN, BROKER, KafkaPki
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
    # Secure mode (see `_secure_props`): `port` is a SASL_SSL listener (SCRAM-SHA-512),
    # `ssl_port` a mutual-TLS one, the controller listener mutual TLS too, and the
    # StandardAuthorizer refuses whatever no ACL allows. Users and ACLs: kafka_setup.py.
    pki: KafkaPki | None = None
    ssl_port: int = 0  # 0: any free port (secure mode only)
    process: ManagedProcess | None = field(default=None, repr=False)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def ssl_bootstrap(self) -> str:
        """The mutual-TLS listener (secure mode)."""
        return f"127.0.0.1:{self.ssl_port}"

    @property
    def _admin_bootstrap(self) -> str:
        """Where the broker's own admin calls go: the metadata must name an address that
        works from here, which the advertised one of a published port does not."""
        if self.pki is not None:
            return self.ssl_bootstrap
        if self.internal is not None:
            return "{}:{}".format(*self.internal)
        return self.bootstrap

    def admin_config(self) -> dict[str, str]:
        """librdkafka settings of a super user on this broker (mutual TLS as `admin` in
        secure mode; plain bootstrap otherwise)."""
        config = {"bootstrap.servers": self._admin_bootstrap}
        if self.pki is not None:
            config |= self.pki.mtls(ADMIN).librdkafka_config()
        return config

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
        if self.pki is not None:
            if self.ssl_port:
                ensure_port_free(self.ssl_port, "Kafka SSL")
            else:
                self.ssl_port = free_port()
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
        admin = AdminClient({**self.admin_config(), "log_level": 3})
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
        if self.pki is not None:
            props |= self._secure_props()
        path = self.data_dir / "server.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        return path

    def create_topics(self, topics: dict[str, int], timeout: float = 30.0) -> None:
        """Create topics (name -> partitions); existing ones are left as they are."""
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient(self.admin_config())
        existing = set(admin.list_topics(timeout=timeout).topics)
        wanted = [NewTopic(t, num_partitions=n) for t, n in topics.items() if t not in existing]
        if not wanted:
            return
        for topic, future in admin.create_topics(wanted, operation_timeout=timeout).items():
            try:
                future.result(timeout)
            except KafkaException as err:
                raise ComponentError(f"creating topic {topic!r} failed: {err}") from None

    def _secure_props(self) -> dict[str, str]:
        """SASL_SSL (SCRAM) on `port` for the services, mutual TLS on `ssl_port` for the
        admin and inter-broker traffic, mutual TLS on the controller listener (the broker
        is its client, principal `broker`); a certificate's principal is its CN."""
        assert self.pki is not None
        adv = self.advertised_host
        return {
            "listeners": f"SASL_SSL://{self.bind_host}:{self.port},"
            f"SSL://{self.bind_host}:{self.ssl_port},"
            f"CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"SASL_SSL://{adv}:{self.advertised_port or self.port},"
            f"SSL://{adv}:{self.ssl_port}",
            "listener.security.protocol.map": "CONTROLLER:SSL,SASL_SSL:SASL_SSL,SSL:SSL",
            "inter.broker.listener.name": "SSL",
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(self.pki.keystore_file),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(self.pki.ca_file),
            "listener.name.ssl.ssl.client.auth": "required",
            "listener.name.controller.ssl.client.auth": "required",
            "ssl.principal.mapping.rules": "RULE:^CN=([A-Za-z0-9._-]+)$/$1/,DEFAULT",
            "sasl.enabled.mechanisms": "SCRAM-SHA-512",
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": "org.apache.kafka.common"
            ".security.scram.ScramLoginModule required;",
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found": "false",
            "super.users": f"User:{ADMIN};User:{BROKER}",
        } | self._secure_internal_props()

    def _secure_internal_props(self) -> dict[str, str]:
        """A container's `internal` listener in secure mode: SASL_SSL (SCRAM) too, advertised
        as the internal host (the broker certificate names it); the SSL listener stays
        the admin's, advertised as `advertised_host` (reached from inside the broker)."""
        if self.internal is None:
            return {}
        host, port = self.internal
        adv = self.advertised_host
        return {
            "listeners": f"SASL_SSL://{self.bind_host}:{self.port},"
            f"INTERNAL://{self.bind_host}:{port},"
            f"SSL://{self.bind_host}:{self.ssl_port},"
            f"CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"SASL_SSL://{adv}:{self.advertised_port or self.port},"
            f"INTERNAL://{host}:{port},SSL://{adv}:{self.ssl_port}",
            "listener.security.protocol.map": "CONTROLLER:SSL,SASL_SSL:SASL_SSL,"
            "INTERNAL:SASL_SSL,SSL:SSL",
            "listener.name.internal.sasl.enabled.mechanisms": "SCRAM-SHA-512",
            "listener.name.internal.scram-sha-512.sasl.jaas.config": "org.apache.kafka.common"
            ".security.scram.ScramLoginModule required;",
        }

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()


def _cluster_id() -> str:
    """A random KRaft cluster id: 16 bytes, URL-safe base64 without padding."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
