"""The compose file's order and stop settings, without an engine: `down` stops dependents
before what they depend on (the producer first, Kafka in the last group), every service
has a restart policy, and each stop_grace_period parses."""

from __future__ import annotations

import pytest
import yaml

from infra.compose import compose_cli

COMPOSE = compose_cli.workspace_file("infra/compose/compose.yaml")


def test_grace_periods_parse() -> None:
    assert compose_cli.grace_seconds({}) == compose_cli.STOP_GRACE_PERIOD
    assert compose_cli.grace_seconds({"stop_grace_period": "30s"}) == 30
    assert compose_cli.grace_seconds({"stop_grace_period": "1m30s"}) == 90
    assert compose_cli.grace_seconds({"stop_grace_period": "2m"}) == 120
    assert compose_cli.grace_seconds({"stop_grace_period": "1.5s"}) == 1.5
    assert compose_cli.grace_seconds({"stop_grace_period": 7}) == 7
    with pytest.raises(compose_cli.ComposeError, match="stop_grace_period"):
        compose_cli.grace_seconds({"stop_grace_period": "soon"})


def test_down_stops_clients_before_kafka_and_the_detector_before_the_worker() -> None:
    stop_order = [
        name for level in reversed(compose_cli.start_levels(COMPOSE, set())) for name in level
    ]
    position = {name: i for i, name in enumerate(stop_order)}
    assert stop_order[0] == "producer"
    for client in ("producer", "detector", "alert-sink", "quality", "notifier"):
        assert position[client] < position["kafka"]
    assert position["detector"] < position["spark-worker"] < position["spark-master"]
    assert position["alert-sink"] < position["postgres"]
    assert position["notifier"] < position["postgres"]


def test_every_service_has_a_restart_policy_and_a_grace_period_that_parses() -> None:
    services = compose_cli.active_services(COMPOSE, set())
    for name, spec in services.items():
        assert spec.get("restart") in ("unless-stopped", "on-failure", "always"), name
        assert 0 < compose_cli.grace_seconds(spec) <= 60, name
    assert services["producer"]["restart"] == "on-failure"  # a --duration run may end


def test_the_detector_and_the_worker_share_the_checkpoint_volume() -> None:
    services = compose_cli.active_services(COMPOSE, set())
    assert "checkpoints:/var/lib/fraud" in services["detector"]["volumes"]
    assert "checkpoints:/var/lib/fraud" in services["spark-worker"]["volumes"]


# --- exposure and least privilege (docs/security.md) ------------------------------------

LOCAL_ENV = compose_cli.workspace_file("infra/compose/local.env")


def _all_services() -> dict[str, dict]:
    return compose_cli.active_services(COMPOSE, {"grafana"})


def test_every_published_port_binds_the_bind_address_loopback_by_default() -> None:
    published = {name: spec["ports"] for name, spec in _all_services().items() if "ports" in spec}
    assert {"kafka", "postgres", "prometheus", "spark-master"} <= set(published)
    for name, ports in published.items():
        for port in ports:
            assert port.startswith("${FRAUD_BIND_ADDRESS:-127.0.0.1}:"), (name, port)
    assert "FRAUD_BIND_ADDRESS=127.0.0.1\n" in LOCAL_ENV.read_text()


def test_spark_uis_cannot_kill() -> None:
    services = _all_services()
    assert services["spark-master"]["environment"]["SPARK_MASTER_OPTS"] == (
        "-Dspark.ui.killEnabled=false"
    )
    assert services["spark-worker"]["environment"]["SPARK_WORKER_OPTS"] == (
        "-Dspark.ui.killEnabled=false"
    )


def test_services_use_their_own_database_roles_and_passwords() -> None:
    services = _all_services()
    for service, role, password in (
        ("alert-sink", "fraud_sink", "POSTGRES_SINK_PASSWORD"),
        ("notifier", "fraud_notifier", "POSTGRES_NOTIFIER_PASSWORD"),
    ):
        env = services[service]["environment"]
        assert env["FRAUD_POSTGRES_DSN"].endswith(f" user={role}"), service
        assert "password" not in env["FRAUD_POSTGRES_DSN"]
        assert env["PGPASSWORD"] == f"${{{password}}}", service
    postgres = services["postgres"]["environment"]
    assert "POSTGRES_PASSWORD" not in postgres and "POSTGRES_USER" not in postgres
    text = COMPOSE.read_text()
    assert "local-only" not in text  # defaults live in the local env file only
    env_file = dict(
        line.split("=", 1) for line in LOCAL_ENV.read_text().splitlines()
        if line and not line.startswith("#")
    )  # fmt: skip
    for name in ("POSTGRES_OWNER_PASSWORD", "POSTGRES_SINK_PASSWORD", "POSTGRES_NOTIFIER_PASSWORD"):
        # Empty (the image refuses to start) unless the env file or the profile's file sets it.
        assert f"${{{name}:-}}" in text and env_file[name], name
    assert len({env_file[n] for n in env_file if n.endswith("_PASSWORD")}) == 4  # all differ


SECURE = compose_cli.workspace_file("infra/compose/compose.secure.yaml")
# Each Kafka client service of the secure profile, its principal and variable prefix.
SECURE_CLIENTS = {
    "producer": ("producer", "FRAUD_PRODUCER"),
    "detector": ("detector", "FRAUD_DETECTOR"),
    "alert-sink": ("sink", "FRAUD_SINK"),
    "quality": ("quality", "FRAUD_QUALITY"),
    "notifier": ("notifier", "FRAUD_NOTIFIER"),
}


def test_the_env_files_profile_selects_its_compose_file(tmp_path) -> None:
    local = compose_cli.workspace_file("infra/compose/local.env")
    assert compose_cli.profile_files(local) == ()
    secure = tmp_path / "secure.env"
    secure.write_text("FRAUD_COMPOSE_PROFILE=secure\n")
    assert compose_cli.profile_files(secure) == (SECURE,)
    secure.write_text("FRAUD_COMPOSE_PROFILE=../../etc\n")
    with pytest.raises(compose_cli.ComposeError, match="no such profile"):
        compose_cli.profile_files(secure)


def test_the_secure_profile_gives_every_client_its_principal_and_secrets_as_files() -> None:
    services = yaml.safe_load(SECURE.read_text())["services"]
    for service, (principal, prefix) in SECURE_CLIENTS.items():
        env, mounts = services[service]["environment"], services[service]["volumes"]
        assert env[f"{prefix}_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL", service
        assert env[f"{prefix}_KAFKA_SASL_USERNAME"] == principal, service
        password = env[f"{prefix}_KAFKA_PASSWORD_FILE"]
        assert f"/pki/{principal}.password:{password}:ro" in " ".join(mounts), service
        assert f"/pki/ca.pem:{env[f'{prefix}_KAFKA_CA_FILE']}:ro" in mounts[1], service
        assert all(m.endswith(":ro") for m in mounts), service
    sink = services["alert-sink"]["environment"]
    assert sink["FRAUD_SINK_POSTGRES_SSLMODE"] == "verify-full"
    assert "sslmode=verify-full" in services["notifier"]["environment"]["FRAUD_POSTGRES_DSN"]
    assert services["kafka"]["environment"]["KAFKA_SECRETS_DIR"] == "/run/secrets/kafka"
    postgres = services["postgres"]["environment"]
    assert {"POSTGRES_SSL_CERT_FILE", "POSTGRES_SSL_KEY_FILE"} <= set(postgres)
    for role in ("OWNER", "SINK", "NOTIFIER"):
        assert f"POSTGRES_{role}_PASSWORD_FILE" in postgres
    # No secret value: every setting is a name, a mode or a path.
    assert "PASSWORD:" not in SECURE.read_text().replace("PASSWORD_FILE:", "")
    # The override only adds settings to the base file's services (same order, same deps).
    assert set(services) <= set(compose_cli.active_services(COMPOSE, set()))
    assert not any("depends_on" in spec or "ports" in spec for spec in services.values())
