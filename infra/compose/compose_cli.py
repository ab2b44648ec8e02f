"""`tools/bazel run //infra:up | //infra:down | //infra:logs`: the compose stack.

Why a wrapper and not just `docker compose up`: the images are Bazel's, so `up` first
loads the freshly built ones (skipping any the engine already has); and where there is
no Docker, podman-compose on podman 4 ignores `depends_on` health conditions and podman
runs no health checks without systemd. So with podman, `up` starts the services level
by level in dependency order and runs each container's health check itself until it
passes; with Docker, `docker compose up --wait` does the same. Either way `up` returns
only when everything is healthy, and says how long it took and where everything is.

`down` stops the services itself before compose removes them, in reverse dependency
order (the producer, then the detector, then Kafka's other clients (the notifier among
them) and the Spark worker, then Kafka, PostgreSQL, Prometheus, Alertmanager and the Spark
master), each with its
stop_grace_period: podman-compose stops every container at once, so Kafka went away
while the producer was flushing and the quality monitor was committing, both blocked
past the grace period and were killed. It says how long each one took, and names any
that had to be killed.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import yaml

from infra.components import podman
from libs.cli.flags import flag, switch
from libs.cli.settings import positive_float
from libs.runfiles.runfiles import runfiles_root

PROJECT = "fraud"
STOP_GRACE_PERIOD = 10.0  # s: compose's default stop_grace_period
EXIT_SIGKILL = 128 + 9
# The images the compose file names, and the tarballs Bazel builds them into.
IMAGES = {
    "localhost/fraud/kafka:latest": "infra/images/kafka_load/tarball.tar",
    "localhost/fraud/postgres:latest": "infra/images/postgres_load/tarball.tar",
    "localhost/fraud/prometheus:latest": "infra/images/prometheus_load/tarball.tar",
    "localhost/fraud/alertmanager:latest": "infra/images/alertmanager_load/tarball.tar",
    "localhost/fraud/detector:latest": "services/detector/load/tarball.tar",
    "localhost/fraud/alert-sink:latest": "services/alert_sink/load/tarball.tar",
    "localhost/fraud/quality:latest": "services/quality/load/tarball.tar",
    "localhost/fraud/producer:latest": "services/producer/load/tarball.tar",
    "localhost/fraud/notifier:latest": "services/notifier/load/tarball.tar",
}


class ComposeError(Exception):
    """Something the user can act on; printed without a traceback."""


@dataclass(frozen=True)
class Compose:
    """How to run compose here: the command, the file, the env file, the project."""

    command: list[str]
    engine: str
    file: Path
    env_file: Path
    project: str
    overrides: tuple[Path, ...] = ()  # files over `file`: the env profile's (secure)

    @property
    def is_docker(self) -> bool:
        return self.command[0].endswith("docker")

    def run(self, *args: str, check: bool = True, quiet: bool = False) -> int:
        argv = [*self.command, "--project-name", self.project, "--file", str(self.file)]
        for override in self.overrides:
            argv += ["--file", str(override)]
        argv += ["--env-file", str(self.env_file), *args]
        if not quiet:
            result = subprocess.run(argv, check=False)
        else:
            result = subprocess.run(argv, capture_output=True, text=True, check=False)
            noise = [line for line in result.stderr.splitlines() if not _is_noise(line)]
            if noise:
                print("\n".join(noise), file=sys.stderr, flush=True)
        if check and result.returncode != 0:
            raise ComposeError(f"`{' '.join(args)}` failed ({result.returncode}): {' '.join(argv)}")
        return result.returncode


# Podman without systemd says so for every container (`up` runs the health checks
# itself), and `down` of the grafana profile names a container that was never started.
_NOISE = ("unable to get systemd connection", "failed to connect to syslog", "no such container")


def _is_noise(line: str) -> bool:
    return any(marker in line for marker in _NOISE)


def find_compose(
    file: Path, env_file: Path, project: str, overrides: tuple[Path, ...] = ()
) -> Compose:
    """docker compose where a Docker engine answers, else podman-compose on podman."""
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run([docker, "info"], capture_output=True).returncode == 0
        and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0
    ):
        return Compose([docker, "compose"], docker, file, env_file, project, overrides)
    if shutil.which("podman"):
        command = [sys.executable, "-m", "podman_compose"]
        return Compose(command, podman.engine(), file, env_file, project, overrides)
    raise ComposeError("neither docker compose nor podman was found: install podman (and runc)")


def profile_files(env_file: Path) -> tuple[Path, ...]:
    """The override files the env file's FRAUD_COMPOSE_PROFILE names (`secure`:
    compose.secure.yaml); none without one."""
    profile = read_env_file(env_file).get("FRAUD_COMPOSE_PROFILE", "")
    if not profile:
        return ()
    path = workspace_file(f"infra/compose/compose.{profile}.yaml")
    if not re.fullmatch(r"[a-z][a-z0-9_-]*", profile) or not path.is_file():
        raise ComposeError(f"FRAUD_COMPOSE_PROFILE={profile!r} in {env_file}: no such profile")
    return (path,)


def compose_for(env_file: Path, project: str) -> Compose:
    """The stack's compose command for this env file (and its profile's files)."""
    return find_compose(
        workspace_file("infra/compose/compose.yaml"), env_file, project, profile_files(env_file)
    )


def workspace_file(relative: str) -> Path:
    """A file of this repository: the checkout's under `bazel run`, else the runfiles'."""
    workspace = os.environ.get("BUILD_WORKSPACE_DIRECTORY")
    if workspace:
        return Path(workspace) / relative
    return runfiles_root() / "_main" / relative


def active_services(compose_file: Path, profiles: set[str]) -> dict[str, dict]:
    """The compose file's services outside a profile or in one of `profiles`."""
    services = yaml.safe_load(compose_file.read_text())["services"]
    return {
        name: spec
        for name, spec in services.items()
        if not spec.get("profiles") or profiles & set(spec["profiles"])
    }


def start_levels(compose_file: Path, profiles: set[str]) -> list[list[str]]:
    """Services grouped so each group depends only on earlier ones (compose order)."""
    active = active_services(compose_file, profiles)
    levels: list[list[str]] = []
    placed: set[str] = set()
    while len(placed) < len(active):
        ready = sorted(
            name
            for name, spec in active.items()
            if name not in placed and set(spec.get("depends_on") or {}) <= placed
        )
        if not ready:
            raise ComposeError(f"depends_on has a cycle among {sorted(set(active) - placed)}")
        levels.append(ready)
        placed.update(ready)
    return levels


def load_images(engine: str) -> None:
    """Loads every image Bazel built, unless the engine already has that exact image."""
    for name, tarball_path in IMAGES.items():
        tarball = runfiles_root() / "_main" / tarball_path
        image_id = podman.image_id(tarball)
        present = subprocess.run(
            [engine, "image", "inspect", "--format", "{{.Id}}", name],
            capture_output=True,
            text=True,
        )
        if present.returncode == 0 and image_id in present.stdout:
            print(f"up: {name} is current ({image_id[:12]})", flush=True)
            continue
        started = time.monotonic()
        podman.load(tarball)
        print(
            f"up: loaded {name} ({image_id[:12]}) in {time.monotonic() - started:.0f} s", flush=True
        )


def container_of(engine: str, project: str, service: str) -> str | None:
    result = subprocess.run(
        [
            engine, "ps", "--all", "--quiet",
            "--filter", f"label=com.docker.compose.project={project}",
            "--filter", f"label=com.docker.compose.service={service}",
        ],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    ids = result.stdout.split()
    return ids[0] if ids else None


def wait_healthy(compose: Compose, services: list[str], deadline: float) -> None:
    """Runs each container's health check until it passes (podman has no scheduler)."""
    pending = set(services)
    while pending:
        for service in sorted(pending):
            container = container_of(compose.engine, compose.project, service)
            if container is None:
                continue
            state = _inspect(compose, container, "{{.State.Status}}")
            if state in ("exited", "dead"):
                raise ComposeError(f"{service} exited; its log:\n{logs_tail(compose, container)}")
            check = subprocess.run(
                [compose.engine, "healthcheck", "run", container], capture_output=True, check=False
            )
            if check.returncode == 0:
                pending.discard(service)
                print(f"up: {service} healthy", flush=True)
        if pending and time.monotonic() > deadline:
            tails = "\n".join(
                f"--- {s}:\n{logs_tail(compose, container_of(compose.engine, compose.project, s))}"
                for s in sorted(pending)
            )
            raise ComposeError(f"not healthy in time: {sorted(pending)}\n{tails}")
        if pending:
            time.sleep(2)


def grace_seconds(spec: dict) -> float:
    """A service's stop_grace_period in seconds ("30s", "1m30s", "1.5s" or a number)."""
    value = spec.get("stop_grace_period", STOP_GRACE_PERIOD)
    if isinstance(value, int | float):
        return float(value)
    parts = re.fullmatch(r"(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?", str(value).strip())
    if not parts or not any(parts.groups()):
        raise ComposeError(f"stop_grace_period {value!r}: expected a duration like 30s or 1m30s")
    minutes, seconds = parts.groups()
    return 60 * int(minutes or 0) + float(seconds or 0)


@dataclass(frozen=True)
class Stopped:
    """How one running service stopped: SIGTERM, then SIGKILL after `grace` seconds."""

    service: str
    seconds: float
    grace: float
    exit_code: int

    @property
    def killed(self) -> bool:
        return self.exit_code == EXIT_SIGKILL


def stop_service(compose: Compose, service: str, grace: float) -> Stopped | None:
    """Stops the service's container if it runs; None if it does not."""
    container = container_of(compose.engine, compose.project, service)
    if container is None or _inspect(compose, container, "{{.State.Status}}") != "running":
        return None
    started = time.monotonic()
    subprocess.run(
        [compose.engine, "stop", "--time", str(round(grace)), container],
        capture_output=True, check=False,
    )  # fmt: skip
    seconds = time.monotonic() - started
    code = _inspect(compose, container, "{{.State.ExitCode}}")
    return Stopped(service, seconds, grace, int(code) if code.lstrip("-").isdigit() else -1)


def stop_in_order(compose: Compose, profiles: set[str]) -> list[Stopped]:
    """Stops every running service, dependents first; a level's services in parallel."""
    specs = active_services(compose.file, profiles)
    stopped: list[Stopped] = []
    for level in reversed(start_levels(compose.file, profiles)):
        with ThreadPoolExecutor(max_workers=len(level)) as pool:
            results = pool.map(lambda s: stop_service(compose, s, grace_seconds(specs[s])), level)
            stopped += [result for result in results if result is not None]
    return stopped


def down(compose: Compose, volumes: bool) -> list[Stopped]:
    """`//infra:down`: stop in order (reporting each), then let compose remove it all."""
    stopped = stop_in_order(compose, {"grafana"})
    for s in stopped:
        if s.killed:
            print(
                f"down: {s.service} did not stop within its {s.grace:.0f} s grace period "
                "and was killed",
                file=sys.stderr,
                flush=True,
            )
        else:
            print(f"down: {s.service} stopped in {s.seconds:.1f} s", flush=True)
    compose.run("--profile", "grafana", "down", *(["--volumes"] if volumes else []), quiet=True)
    print(f"down: stopped {compose.project}" + (" and removed its volumes" if volumes else ""))
    return stopped


def _inspect(compose: Compose, container: str, template: str) -> str:
    result = subprocess.run(
        [compose.engine, "inspect", "--format", template, container],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return result.stdout.strip()


def logs_tail(compose: Compose, container: str | None, lines: int = 30) -> str:
    if container is None:
        return "(no container)"
    result = subprocess.run(
        [compose.engine, "logs", "--tail", str(lines), container],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return (result.stdout + result.stderr).strip()


def print_urls(env: dict[str, str], grafana: bool) -> None:
    port = lambda name, default: env.get(name, default)  # noqa: E731
    lines = [
        f"Kafka        localhost:{port('KAFKA_PORT', '9092')}",
        f"PostgreSQL   psql 'host=localhost port={port('POSTGRES_PORT', '5432')} "
        f"dbname={port('POSTGRES_DB', 'fraud')} user=fraud_owner'"
        "  (password: the env file's POSTGRES_OWNER_PASSWORD)",
        f"Prometheus   http://localhost:{port('PROMETHEUS_PORT', '9090')}",
        f"Alertmanager http://localhost:{port('ALERTMANAGER_PORT', '9093')}",
        f"Spark master http://localhost:{port('SPARK_MASTER_UI_PORT', '8080')}",
        f"Metrics      producer :{port('PRODUCER_METRICS_PORT', '8000')}, "
        f"sink :{port('SINK_METRICS_PORT', '8001')}, "
        f"detector :{port('DETECTOR_METRICS_PORT', '8002')}, "
        f"quality :{port('QUALITY_METRICS_PORT', '8003')}, "
        f"notifier :{port('NOTIFIER_METRICS_PORT', '8004')}",
    ]
    if grafana:
        lines.append(f"Grafana      http://localhost:{port('GRAFANA_PORT', '3000')}")
    print("\n".join("up:   " + line for line in lines), flush=True)


def read_env_file(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            env[key.strip()] = value.strip()
    return env


def up(compose: Compose, grafana: bool, timeout: float) -> None:
    started = time.monotonic()
    load_images(compose.engine)
    loaded = time.monotonic()
    profiles = {"grafana"} if grafana else set()
    profile_args = ["--profile", "grafana"] if grafana else []
    if compose.is_docker:
        compose.run(*profile_args, "up", "--detach", "--wait", "--wait-timeout", str(int(timeout)))
    else:
        deadline = time.monotonic() + timeout
        for level in start_levels(compose.file, profiles):
            print(f"up: starting {', '.join(level)}", flush=True)
            compose.run(*profile_args, "up", "--detach", "--no-deps", *level, quiet=True)
            wait_healthy(compose, level, deadline)
    healthy = time.monotonic()
    print(
        f"up: healthy in {healthy - started:.0f} s ({loaded - started:.0f} s loading images, "
        f"{healthy - loaded:.0f} s starting); `tools/bazel run //infra:logs` follows the logs,"
        " `//infra:down` stops it",
        flush=True,
    )
    print_urls(read_env_file(compose.env_file), grafana)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["up", "down", "logs"])
    flag(
        parser,
        "--env-file",
        env="FRAUD_COMPOSE_ENV_FILE",
        default="",
        type=str,
        help="settings and passwords (default: infra/compose/local.env, the local profile)",
    )
    flag(
        parser,
        "--project-name",
        env="FRAUD_COMPOSE_PROJECT",
        default=PROJECT,
        help="compose project name (containers, network and volumes are prefixed by it)",
    )
    switch(
        parser,
        "--grafana",
        env="FRAUD_COMPOSE_GRAFANA",
        help="up: also start Grafana (the `grafana` profile; its image is pulled)",
    )
    flag(
        parser,
        "--timeout",
        env="FRAUD_COMPOSE_TIMEOUT",
        default=420.0,
        type=positive_float,
        help="up: seconds to wait for everything to be healthy",
    )
    switch(
        parser,
        "--volumes",
        env="FRAUD_COMPOSE_DOWN_VOLUMES",
        help="down: also remove the named volumes (all data)",
    )
    parser.add_argument("services", nargs="*", help="logs: only these services")
    return parser.parse_args(argv)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    env_file = Path(args.env_file) if args.env_file else workspace_file("infra/compose/local.env")
    if not env_file.is_absolute() and os.environ.get("BUILD_WORKING_DIRECTORY"):
        env_file = Path(os.environ["BUILD_WORKING_DIRECTORY"]) / env_file
    try:
        if not env_file.is_file():
            raise ComposeError(f"env file {env_file} not found")
        compose = compose_for(env_file, args.project_name)
        if args.action == "up":
            up(compose, args.grafana, args.timeout)
        elif args.action == "down":
            down(compose, args.volumes)
        else:
            return compose.run("logs", "--follow", *args.services, check=False)
    except ComposeError as err:
        print(f"{args.action}: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
