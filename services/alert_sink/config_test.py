"""Flags: defaults from the issue, environment fallbacks, validation, no password default."""

from __future__ import annotations

import pytest

from services.alert_sink.config import DEFAULT_DSN, build_parser, parse_config


def test_defaults():
    config = parse_config([], environ={})
    assert config.bootstrap_servers == "localhost:9092"
    assert config.topic == "fraud_alerts"
    assert config.group_id == "fraud-alert-sink"
    assert config.dlq_topic == "fraud_alerts.dlq"
    assert config.postgres_dsn == "host=localhost port=5432 dbname=fraud user=fraud_sink"
    assert config.table == "alerts"
    assert (config.batch_size, config.batch_timeout_ms) == (500, 200)
    assert (config.retry.initial, config.retry.maximum) == (0.5, 10.0)
    assert config.metrics_port == 8001
    assert (config.session_timeout_ms, config.max_poll_interval_ms) == (10_000, 300_000)
    assert (config.dlq_timeout_ms, config.dlq_max_bytes) == (10_000, 900_000)


def test_environment_then_flags():
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": "kafka:29092",
        "FRAUD_POSTGRES_DSN": "host=db dbname=fraud user=sink",
        "FRAUD_SINK_METRICS_PORT": "9101",
        "FRAUD_SINK_DLQ_TOPIC": "alerts.dead",
        "FRAUD_SINK_BATCH_SIZE": "50",
        "FRAUD_SINK_DLQ_MAX_BYTES": "500000",
    }
    config = parse_config([], environ=env)
    assert config.bootstrap_servers == "kafka:29092"
    assert config.postgres_dsn == "host=db dbname=fraud user=sink"
    assert (config.metrics_port, config.dlq_topic, config.batch_size) == (9101, "alerts.dead", 50)
    assert parse_config(["--batch-size", "7"], environ=env).batch_size == 7
    assert config.dlq_max_bytes == 500_000


def test_no_password_anywhere_in_defaults_or_help():
    assert "password" not in DEFAULT_DSN
    text = " ".join(build_parser({}).format_help().split())  # undo line wrapping
    assert "PGPASSWORD" in text and "password=" not in text
    for env in ("KAFKA_BOOTSTRAP_SERVERS", "FRAUD_POSTGRES_DSN", "FRAUD_SINK_METRICS_PORT"):
        assert f"[env {env};" in text


@pytest.mark.parametrize(
    "argv",
    [
        ["--batch-size", "0"],
        ["--batch-timeout-ms", "-1"],
        ["--table", "alerts; drop table x"],
        ["--retry-initial-ms", "20000", "--retry-max-ms", "1000"],
        ["--metrics-port", "-5"],
        ["--session-timeout-ms", "20000", "--max-poll-interval-ms", "10000"],
        ["--dlq-max-bytes", "1000000"],  # no room left for key and headers
        ["--dlq-timeout-ms", "0"],
        ["--postgres-sslmode", "verify-full"],  # which CA? not ~/.postgresql by accident
        ["--postgres-sslmode", "maybe"],
    ],
)
def test_bad_values_are_refused(argv, capsys):
    with pytest.raises(SystemExit):
        parse_config(argv, environ={})
    assert "error" in capsys.readouterr().err


def test_tls_and_password_file_settings():
    env = {
        "FRAUD_SINK_POSTGRES_SSLMODE": "verify-full",
        "FRAUD_SINK_POSTGRES_CA_FILE": "/run/secrets/pg-ca.crt",
        "FRAUD_SINK_POSTGRES_PASSWORD_FILE": "/run/secrets/pg-sink-password",
    }
    config = parse_config([], environ=env)
    assert config.postgres_params == {
        "sslmode": "verify-full",
        "sslrootcert": "/run/secrets/pg-ca.crt",
    }
    assert config.postgres_password_file == "/run/secrets/pg-sink-password"
    assert parse_config([], environ={}).postgres_params == {}  # the DSN's or libpq's
    text = " ".join(build_parser({}).format_help().split())
    for flag in ("--postgres-sslmode", "--postgres-ca-file", "--postgres-password-file"):
        assert flag in text
