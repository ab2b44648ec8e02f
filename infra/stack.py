"""The whole pipeline on one machine, without containers: Kafka, PostgreSQL, Prometheus
(optionally with Alertmanager) and the services (detector, alert sink, quality monitor,
producer, optionally the notifier) as child processes.

Why one module: the local stack (`//infra:local`), the end-to-end tests and the benchmark
must start the same thing the same way; they differ only in ports, rates and what they
check. Services are the real py_binaries from the runfiles tree, configured through their
documented environment variables. `supervise()` adds what an orchestrator would do (restart
a crashed child with backoff, give up on a crash loop); tests that kill and restart
components themselves leave it off. Each child's pid is in `run/NAME.pid` under the base dir.
"""

from __future__ import annotations

import argparse
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

from infra.components import podman
from infra.components.alertmanager import AlertmanagerServer
from infra.components.kafka import KafkaBroker
from infra.components.kafka_certs import KafkaPki
from infra.components.kafka_setup import PIPELINE_ACCESS
from infra.components.kafka_setup import setup as kafka_setup
from infra.components.metrics_scrape import scrape, total
from infra.components.postgres import PostgresServer
from infra.components.process import (
    ComponentError,
    ManagedProcess,
    RestartPolicy,
    Supervised,
    Supervisor,
    free_port,
    port_open,
)
from infra.components.prometheus import PrometheusServer, scrape_config
from libs.cli.flags import flag, switch
from libs.cli.settings import non_negative_int
from libs.runfiles.runfiles import runfiles_root
from libs.schemas.topics import TOPICS

# Each service's metrics-port variable (the port itself comes from `Ports`).
METRICS_PORT_ENV = {
    "producer": "FRAUD_PRODUCER_METRICS_PORT",
    "detector": "FRAUD_DETECTOR_METRICS_PORT",
    "alert_sink": "FRAUD_SINK_METRICS_PORT",
    "quality": "FRAUD_QUALITY_METRICS_PORT",
    "notifier": "FRAUD_NOTIFIER_METRICS_PORT",
}
SERVICES = {
    "producer": "services/producer/producer",
    "detector": "services/detector/detector",
    "alert_sink": "services/alert_sink/alert_sink",
    "quality": "services/quality/quality",
}
# Each service's Kafka principal (infra/components/kafka_setup.py) and the prefix of its
# variables, for a secure stack: every service gets its own user and password file.
KAFKA_PRINCIPALS = {
    "producer": ("producer", "FRAUD_PRODUCER"),
    "detector": ("detector", "FRAUD_DETECTOR"),
    "alert_sink": ("sink", "FRAUD_SINK"),
    "quality": ("quality", "FRAUD_QUALITY"),
    "notifier": ("notifier", "FRAUD_NOTIFIER"),
}
# Started only when asked (they need configuration the pipeline itself does not): the
# fraud-alert notifier needs a destinations file (services/notifier).
OPTIONAL_SERVICES = {"notifier": "services/notifier/notifier"}


@dataclass
class Ports:
    """docs/design.md's defaults; `Ports.free()` picks unused ones (tests, benchmarks)."""

    kafka: int = 9092
    postgres: int = 5432
    prometheus: int = 9090
    producer: int = 8000
    sink: int = 8001
    detector: int = 8002
    quality: int = 8003
    alertmanager: int = 9093
    notifier: int = 8004

    @classmethod
    def free(cls) -> Ports:
        return cls(*(free_port() for _ in fields(cls)))


@dataclass(frozen=True)
class DetectorSettings:
    """How the stack runs the detector; the same flags for the local stack and the bench."""

    master: str = "local[2,4]"  # local[N,F]: a failed task is tried F times
    shuffle_partitions: int = 4
    driver_memory: str = "2g"
    max_offsets_per_trigger: int = 0
    ui: bool = False

    @staticmethod
    def add_flags(parser: argparse.ArgumentParser) -> None:
        flag(
            parser,
            "--spark-master",
            env="SPARK_MASTER",
            default="local[2,4]",
            help="Spark master for the detector (local[N,F] retries a failed task F-1 times)",
        )
        flag(
            parser,
            "--shuffle-partitions",
            env="FRAUD_DETECTOR_SHUFFLE_PARTITIONS",
            default=4,
            type=non_negative_int,
            help="detector state partitions",
        )
        flag(
            parser,
            "--max-offsets-per-trigger",
            env="FRAUD_DETECTOR_MAX_OFFSETS_PER_TRIGGER",
            default=0,
            type=non_negative_int,
            help="detector micro-batch cap (0: none)",
        )
        switch(parser, "--spark-ui", env="FRAUD_DETECTOR_UI", help="serve the Spark UI on :4040")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> DetectorSettings:
        return cls(
            master=args.spark_master,
            shuffle_partitions=args.shuffle_partitions,
            max_offsets_per_trigger=args.max_offsets_per_trigger,
            ui=args.spark_ui,
        )

    def env(self) -> dict[str, str]:
        """The detector's own environment variables for these settings."""
        return {
            "SPARK_MASTER": self.master,
            "FRAUD_DETECTOR_SHUFFLE_PARTITIONS": str(self.shuffle_partitions),
            "FRAUD_DETECTOR_DRIVER_MEMORY": self.driver_memory,
            "FRAUD_DETECTOR_MAX_OFFSETS_PER_TRIGGER": str(self.max_offsets_per_trigger),
            "FRAUD_DETECTOR_UI": "1" if self.ui else "",
        }


@dataclass
class Stack:
    base_dir: Path
    ports: Ports = field(default_factory=Ports)
    partitions: int = 3
    scrape_interval: str = "2s"
    detector: DetectorSettings = field(default_factory=DetectorSettings)
    service_env: dict[str, str] = field(default_factory=dict)  # every service, e.g. log level
    rule_files: tuple[Path, ...] = ()  # Prometheus recording/alerting rules (infra/prometheus)
    # alertmanager.yml text (infra/components/alertmanager.render_config): when set, an
    # Alertmanager runs and Prometheus sends it its alerts
    alertmanager_config: str = ""
    notifier: bool = False  # Prometheus scrapes the notifier (start it with start_service)
    alertmanager: AlertmanagerServer | None = None
    kafka: KafkaBroker | None = None
    postgres: PostgresServer | None = None
    prometheus: PrometheusServer | None = None
    services: dict[str, ManagedProcess] = field(default_factory=dict)
    # Services run from their images under podman instead (service -> image ID).
    containers: dict[str, str] = field(default_factory=dict)
    supervisor: Supervisor | None = None
    # Secure Kafka: SASL_SSL + SCRAM-SHA-512 and ACLs, one principal per service, a CA and
    # passwords generated under base_dir/kafka-secrets (kept across restarts of the stack).
    secure: bool = False
    pki: KafkaPki | None = None
    # How each service was started (args, env), so a restart starts it the same way.
    _launches: dict[str, tuple[list[str], dict[str, str]]] = field(default_factory=dict)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.ports.kafka}"

    @property
    def dsn(self) -> str:
        """The superuser's DSN (tests and the local profile read and check tables with it)."""
        assert self.postgres is not None
        return self.postgres.dsn

    def _database_env(self, name: str) -> dict[str, str]:
        """The sink and the notifier connect as their own roles (postgres_setup.py)."""
        assert self.postgres is not None
        roles = {"alert_sink": self.postgres.roles.sink, "notifier": self.postgres.roles.notifier}
        if name not in roles:
            return {}
        role = roles[name]
        return {"FRAUD_POSTGRES_DSN": self.postgres.role_dsn(role), "PGPASSWORD": role.password}

    def metrics_port(self, service: str) -> int:
        return {
            "producer": self.ports.producer,
            "alert_sink": self.ports.sink,
            "detector": self.ports.detector,
            "quality": self.ports.quality,
            "notifier": self.ports.notifier,
        }[service]

    def metrics_url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.metrics_port(service)}/metrics"

    # --- infrastructure -------------------------------------------------------------

    def start_infrastructure(self, prometheus: bool = True) -> dict[str, float]:
        """Kafka (topics created), PostgreSQL, Prometheus; returns start-up seconds each."""
        self.base_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.base_dir, 0o755)  # PostgreSQL may run as `nobody` beneath it
        took = {}
        if self.secure:
            self.pki = KafkaPki.create(self.base_dir / "kafka-secrets", PIPELINE_ACCESS)
        self.kafka = KafkaBroker(
            data_dir=self.base_dir / "kafka", port=self.ports.kafka, pki=self.pki
        )
        took["kafka"] = self.kafka.start()
        self._write_pid("kafka", self.kafka.process)
        topics = {t: (self.partitions if n > 1 else 1) for t, n in TOPICS.items()}
        if self.pki is not None:  # users, topics and ACLs in one idempotent step
            kafka_setup(self.kafka.admin_config(), self.pki.passwords(), topics)
        else:
            self.kafka.create_topics(topics)
        self.postgres = PostgresServer(
            data_dir=self.base_dir / "postgres", port=self.ports.postgres
        )
        took["postgres"] = self.postgres.start()
        self._write_pid("postgres", self.postgres.process)
        alertmanagers = []
        if prometheus and self.alertmanager_config:
            self.alertmanager = AlertmanagerServer(
                self.base_dir / "alertmanager", self.alertmanager_config, self.ports.alertmanager
            )
            took["alertmanager"] = self.alertmanager.start()
            self._write_pid("alertmanager", self.alertmanager.process)
            alertmanagers = [self.alertmanager.address]
        if prometheus:
            scraped = [*SERVICES, *(["notifier"] if self.notifier else [])]
            jobs = {name: [f"127.0.0.1:{self.metrics_port(name)}"] for name in scraped}
            self.prometheus = PrometheusServer(
                data_dir=self.base_dir / "prometheus",
                config_text=scrape_config(
                    jobs,
                    interval=self.scrape_interval,
                    rule_files=self.rule_files,
                    alertmanagers=alertmanagers,
                ),
                port=self.ports.prometheus,
            )
            took["prometheus"] = self.prometheus.start()
            self._write_pid("prometheus", self.prometheus.process)
        return took

    def pid_file(self, name: str) -> Path:
        """Where the pid of child `name` (a service, kafka, postgres, prometheus) is kept."""
        return self.base_dir / "run" / f"{name}.pid"

    def _write_pid(self, name: str, proc: ManagedProcess | None) -> None:
        if proc is not None and proc.popen is not None:
            self.pid_file(name).parent.mkdir(parents=True, exist_ok=True)
            self.pid_file(name).write_text(f"{proc.popen.pid}\n")

    # --- supervision ------------------------------------------------------------------

    def supervise(
        self,
        policy: RestartPolicy,
        log: Callable[[str], None],
        on_failure: Callable[[str], None] | None = None,
    ) -> Supervisor:
        """Restart crashed children from now on: the infrastructure already started, every
        service started so far and later. The producer's exit code 0 means it is done."""
        self.supervisor = Supervisor(policy, log, on_failure)
        infrastructure = {"kafka": self.kafka, "postgres": self.postgres}
        infrastructure["prometheus"] = self.prometheus
        infrastructure["alertmanager"] = self.alertmanager
        for name, component in infrastructure.items():
            if component is not None:
                self.supervisor.watch(
                    Supervised(
                        name,
                        current=lambda c=component: c.process,
                        restart=lambda n=name, c=component: self._restart_component(n, c),
                    )
                )
        for name in self.services:
            self._supervise_service(name)
        return self.supervisor.start()

    def _restart_component(self, name: str, component) -> None:
        component.start()  # same data directory and ports
        self._write_pid(name, component.process)

    def _supervise_service(self, name: str) -> None:
        if self.supervisor is None:
            return
        args, env = self._launches[name]
        self.supervisor.watch(
            Supervised(
                name,
                current=lambda: self.services.get(name),
                restart=lambda: self.start_service(name, args, env),
                restart_clean_exit=name != "producer",  # --duration or --count reached
            )
        )

    def restarts(self) -> dict[str, int]:
        """Restarts so far per supervised child (empty when not supervised)."""
        return self.supervisor.restarts if self.supervisor is not None else {}

    # --- services ---------------------------------------------------------------------

    @property
    def kafka_client(self) -> dict[str, str]:
        """librdkafka settings for the tests' and tools' own clients (kafka_io's `client`):
        a super user's on a secure stack, nothing otherwise."""
        if self.kafka is None or self.pki is None:
            return {}
        return self.kafka.admin_config()

    def kafka_security_env(self, name: str) -> dict[str, str]:
        """Service `name`'s own principal on a secure stack (its FRAUD_<SERVICE>_KAFKA_*
        variables; the password as a file, never a value)."""
        if self.pki is None or name not in KAFKA_PRINCIPALS:
            return {}
        principal, prefix = KAFKA_PRINCIPALS[name]
        return {
            f"{prefix}_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            f"{prefix}_KAFKA_SASL_USERNAME": principal,
            f"{prefix}_KAFKA_PASSWORD_FILE": str(self.pki.password_file(principal)),
            f"{prefix}_KAFKA_CA_FILE": str(self.pki.ca_file),
        }

    def _service_env(self, extra: Mapping[str, str]) -> dict[str, str]:
        env = dict(os.environ)
        env |= {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "FRAUD_POSTGRES_DSN": self.dsn,
            **{var: str(self.metrics_port(name)) for name, var in METRICS_PORT_ENV.items()},
            "FRAUD_DETECTOR_CHECKPOINT_DIR": str(self.base_dir / "detector-checkpoints"),
        }
        env |= self.service_env
        env |= extra
        return env

    def start_service(
        self, name: str, args: list[str] | None = None, env: Mapping[str, str] | None = None
    ) -> ManagedProcess:
        """Start one service binary (a restart reuses its checkpoint/offsets)."""
        defaults = self.detector.env() if name == "detector" else self._database_env(name)
        defaults |= self.kafka_security_env(name)
        service_env = self._service_env({**defaults, **(env or {})})
        if name in self.containers:
            argv = self._container_argv(name, service_env, args or [])
        else:
            binary = runfiles_root() / "_main" / {**SERVICES, **OPTIONAL_SERVICES}[name]
            if not binary.exists():
                raise ComponentError(f"{name}: binary {binary} is not in the runfiles (data dep?)")
            argv = [str(binary), *(args or [])]
        proc = ManagedProcess(name, argv, self.base_dir / "logs" / f"{name}.log", env=service_env)
        proc.start()
        self.services[name] = proc
        self._write_pid(name, proc)
        self._launches[name] = (list(args or []), dict(env or {}))
        self._supervise_service(name)
        return proc

    def _container_argv(self, name: str, env: dict[str, str], args: list[str]) -> list[str]:
        """`podman run` of the service's image; the detector's checkpoints on the host."""
        container = f"fraud-{name.replace('_', '-')}-{os.getpid()}"
        podman.remove(container)  # left over from a killed run
        volumes = {}
        if name == "detector":
            checkpoints = self.base_dir / "detector-checkpoints"
            checkpoints.mkdir(parents=True, exist_ok=True)
            os.chmod(checkpoints, 0o777)  # the image runs as its own non-root user
            volumes[checkpoints] = "/var/lib/fraud/checkpoints"
            env["FRAUD_DETECTOR_CHECKPOINT_DIR"] = "/var/lib/fraud/checkpoints"
        return podman.run_argv(container, self.containers[name], env, args, volumes)

    def wait_metrics(self, name: str, timeout: float = 120.0) -> float:
        """Wait until a service serves /metrics; the detector until its queries run."""
        url = self.metrics_url(name)
        if name == "detector":
            return self.services[name].wait_until(
                lambda: total(scrape(url, timeout=2), "fraud_detector_ready") == 1,
                timeout,
                "running its streaming queries",
            )
        port = self.metrics_port(name)
        return self.services[name].wait_until(lambda: port_open(port), timeout, "serving metrics")

    def stop_service(self, name: str, timeout: float = 60.0) -> int | None:
        if self.supervisor is not None:
            self.supervisor.release(name)  # stopped on purpose: not to be restarted
        proc = self.services.get(name)
        if proc is None:
            return None
        proc.stop(timeout)
        if name in self.containers:
            podman.remove(proc.args[list(proc.args).index("--name") + 1])  # if `run` was killed
        return proc.popen.returncode if proc.popen else None

    def stop(self) -> None:
        """Stop everything, services first (producer → detector → sink → quality →
        notifier)."""
        if self.supervisor is not None:
            self.supervisor.stop()
        for name in ("producer", "detector", "alert_sink", "quality", "notifier"):
            self.stop_service(name)
        for component in (self.prometheus, self.alertmanager, self.postgres, self.kafka):
            if component is not None:
                component.stop()

    def wipe(self) -> None:
        shutil.rmtree(self.base_dir, ignore_errors=True)
