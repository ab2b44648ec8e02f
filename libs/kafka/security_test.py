"""The Kafka security section: flags and variables, checks, the password kept out of
--help, repr and loggable(), and its translation for librdkafka and Spark."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from libs.cli.settings import build_parser, env_names, loggable, parse, section, setting
from libs.kafka.security import (
    GROUP,
    ClientErrors,
    KafkaSecurity,
    KafkaSecurityError,
    jaas_config,
    parse_properties,
    redacted,
)

SECRET = 'pa"ss\\w0rd-SECRET'


@dataclass(frozen=True)
class Svc:
    topic: str = setting("t", help="topic")
    kafka: KafkaSecurity = section(KafkaSecurity, GROUP)


def run(argv: list[str], env: dict[str, str] | None = None) -> Svc:
    return parse(Svc, "SVC", argv, env or {}, prog="svc", description="test")


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    paths = {
        "password": tmp_path / "password",
        "ca": tmp_path / "ca.pem",
        "cert": tmp_path / "client.pem",
        "key": tmp_path / "client.key",
        "props": tmp_path / "client.properties",
    }
    paths["password"].write_text(SECRET + "\n")
    paths["ca"].write_text("-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n")
    paths["cert"].write_text("-----BEGIN CERTIFICATE-----\nME\n-----END CERTIFICATE-----\n")
    paths["key"].write_text("-----BEGIN PRIVATE KEY-----\nK\n-----END PRIVATE KEY-----\n")
    paths["props"].write_text("# comment\n\n request.timeout.ms = 5000\nclient.rack=r1\n")
    return paths


def sasl_ssl_args(files: dict[str, Path]) -> list[str]:
    return [
        "--kafka-security-protocol=SASL_SSL",
        "--kafka-sasl-username=producer",
        f"--kafka-password-file={files['password']}",
        f"--kafka-ca-file={files['ca']}",
    ]


def test_every_setting_is_a_per_service_variable():
    assert env_names(Svc, "SVC") == {
        "topic": "FRAUD_SVC_TOPIC",
        "kafka_security_protocol": "FRAUD_SVC_KAFKA_SECURITY_PROTOCOL",
        "kafka_sasl_mechanism": "FRAUD_SVC_KAFKA_SASL_MECHANISM",
        "kafka_sasl_username": "FRAUD_SVC_KAFKA_SASL_USERNAME",
        "kafka_password_file": "FRAUD_SVC_KAFKA_PASSWORD_FILE",
        "kafka_ca_file": "FRAUD_SVC_KAFKA_CA_FILE",
        "kafka_cert_file": "FRAUD_SVC_KAFKA_CERT_FILE",
        "kafka_key_file": "FRAUD_SVC_KAFKA_KEY_FILE",
        "kafka_client_properties": "FRAUD_SVC_KAFKA_CLIENT_PROPERTIES",
    }


def test_the_default_is_plaintext_with_nothing_added():
    svc = run([])
    assert svc.kafka == KafkaSecurity()
    assert svc.kafka.librdkafka_config() == {"security.protocol": "PLAINTEXT"}
    assert svc.kafka.spark_options() == {"kafka.security.protocol": "PLAINTEXT"}


def test_sasl_ssl_for_librdkafka(files):
    svc = run(sasl_ssl_args(files))
    assert svc.kafka.librdkafka_config() == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "producer",
        "sasl.password": SECRET,
        "ssl.ca.location": str(files["ca"]),
    }


def test_sasl_ssl_for_spark_inlines_the_ca_and_escapes_the_jaas_line(files):
    options = run(sasl_ssl_args(files)).kafka.spark_options()
    assert options == {
        "kafka.security.protocol": "SASL_SSL",
        "kafka.sasl.mechanism": "SCRAM-SHA-512",
        "kafka.sasl.jaas.config": "org.apache.kafka.common.security.scram.ScramLoginModule "
        'required username="producer" password="pa\\"ss\\\\w0rd-SECRET";',
        "kafka.ssl.truststore.type": "PEM",
        "kafka.ssl.truststore.certificates": files["ca"].read_text(),
    }


def test_mutual_tls_from_the_environment(files):
    env = {
        "FRAUD_SVC_KAFKA_SECURITY_PROTOCOL": "SSL",
        "FRAUD_SVC_KAFKA_CA_FILE": str(files["ca"]),
        "FRAUD_SVC_KAFKA_CERT_FILE": str(files["cert"]),
        "FRAUD_SVC_KAFKA_KEY_FILE": str(files["key"]),
    }
    kafka = run([], env).kafka
    assert kafka.librdkafka_config() == {
        "security.protocol": "SSL",
        "ssl.ca.location": str(files["ca"]),
        "ssl.certificate.location": str(files["cert"]),
        "ssl.key.location": str(files["key"]),
    }
    spark = kafka.spark_options()
    assert spark["kafka.ssl.keystore.type"] == "PEM"
    assert spark["kafka.ssl.keystore.certificate.chain"] == files["cert"].read_text()
    assert spark["kafka.ssl.keystore.key"] == files["key"].read_text()
    assert "kafka.sasl.jaas.config" not in spark


def test_the_properties_file_passes_through_and_wins(files):
    files["props"].write_text(
        "request.timeout.ms = 5000\nssl.endpoint.identification.algorithm=\n"
        "security.protocol=SASL_SSL\n"
    )
    kafka = run([*sasl_ssl_args(files), f"--kafka-client-properties={files['props']}"]).kafka
    config = kafka.librdkafka_config()
    assert config["request.timeout.ms"] == "5000"
    assert config["ssl.endpoint.identification.algorithm"] == ""
    assert kafka.spark_options()["kafka.request.timeout.ms"] == "5000"


def test_a_bad_properties_line_is_named_by_number_not_content(tmp_path):
    with pytest.raises(KafkaSecurityError, match="line 2: expected key=value") as info:
        parse_properties("a=1\nhunter2\n", "client.properties")
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--kafka-security-protocol=SASL_SSL"], "needs --kafka-sasl-username"),
        (["--kafka-sasl-username=u"], "need --kafka-security-protocol SASL_SSL"),
        (["--kafka-security-protocol=SSL", "--kafka-cert-file=/c"], "go together"),
        (["--kafka-ca-file=/ca"], "need --kafka-security-protocol SSL"),
        (["--kafka-security-protocol=TLS"], "invalid choice"),
    ],
)
def test_inconsistent_settings_are_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        run(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_the_password_stays_out_of_repr_help_and_logs(files, capsys):
    svc = run(sasl_ssl_args(files))
    assert SECRET not in repr(svc)
    assert SECRET not in str(loggable(svc))
    assert loggable(svc)["kafka_password_file"] == str(files["password"])
    assert SECRET not in str(redacted(svc.kafka.librdkafka_config()))
    assert SECRET not in str(redacted(svc.kafka.spark_options()))
    env = {"FRAUD_SVC_KAFKA_PASSWORD_FILE": str(files["password"])}
    text = build_parser(Svc, "SVC", env, prog="svc", description="d").format_help()
    assert "--kafka-password-file" in text and "FRAUD_SVC_KAFKA_PASSWORD_FILE" in text
    assert SECRET not in text


def test_a_missing_or_empty_password_file_is_named_without_contents(tmp_path):
    def sasl(path: Path) -> KafkaSecurity:
        return KafkaSecurity("SASL_SSL", kafka_sasl_username="u", kafka_password_file=path)

    with pytest.raises(KafkaSecurityError, match="nope cannot be read"):
        sasl(tmp_path / "nope")
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(KafkaSecurityError, match="one non-empty line"):
        sasl(tmp_path / "empty")
    (tmp_path / "two").write_text("a\nb\n")
    with pytest.raises(KafkaSecurityError) as info:
        sasl(tmp_path / "two")
    assert "a\nb" not in str(info.value)


def test_missing_files_are_usage_errors_at_start(files, tmp_path, capsys):
    with pytest.raises(SystemExit):
        run(["--kafka-security-protocol=SSL", f"--kafka-ca-file={tmp_path / 'no-ca.pem'}"])
    assert "--kafka-ca-file" in capsys.readouterr().err
    argv = [*sasl_ssl_args(files), f"--kafka-password-file={tmp_path / 'gone'}"]
    with pytest.raises(SystemExit):
        run(argv)
    assert "gone cannot be read" in capsys.readouterr().err


def test_jaas_config_quotes():
    assert jaas_config('u"', "p\\") == (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        'username="u\\"" password="p\\\\";'
    )


def test_client_errors_keep_the_cause_not_the_all_brokers_down_that_follows():
    class Err:
        def __init__(self, text: str) -> None:
            self.text = text

        def str(self) -> str:
            return self.text

    class Client:
        polled = 0

        def poll(self, _timeout: float) -> None:
            self.polled += 1

    errors, client = ClientErrors(), Client()
    assert errors.why(client) == "" and client.polled == 1
    errors(Err("1/1 brokers are down"))
    assert errors.why(client) == "1/1 brokers are down"
    errors(Err("SASL authentication error: Authentication failed"))
    errors(Err("1/1 brokers are down"))
    assert errors.why(client) == "SASL authentication error: Authentication failed"
