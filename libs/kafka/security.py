"""How every Kafka client of the pipeline authenticates and encrypts: one settings section.

Why: the producer, the detector (Spark's Kafka source and sink, and its DLQ producer), the
alert sink, the quality monitor, the notifier, the benchmark and the local stack all talk
to the same brokers. Declaring the security settings once, as a section of each service's
settings (libs/cli/settings.py), gives them the same flags and the same variables
(`--kafka-security-protocol`, `FRAUD_<SERVICE>_KAFKA_SECURITY_PROTOCOL`, ...) and one
translation to librdkafka's config and to Spark's `kafka.*` options.

Each service has its own principal, so every variable is per service (none is in
SHARED_ENV). Secrets never ride on a flag or a variable: the SASL password is read from
`--kafka-password-file` when a client is built, and neither the password nor the key
appears in `repr()`, `--help` or `loggable()` (only the paths do). The optional client
properties file (`key=value` lines) passes anything else librdkafka or the Java client
accepts; its entries win over the flags'. Names common to both (security.protocol,
sasl.mechanism, ssl.endpoint.identification.algorithm, ...) work for every client; for
Spark each entry becomes a `kafka.<key>` option.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from libs.cli.settings import setting

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256")
GROUP = "Kafka security"
SCRAM_LOGIN_MODULE = "org.apache.kafka.common.security.scram.ScramLoginModule"

# Keys of a client config that hold secrets (never log a config that has them).
SECRET_KEYS = frozenset(
    {
        "sasl.password",
        "sasl.jaas.config",
        "ssl.key.password",
        "ssl.keystore.password",
        "ssl.keystore.key",
        "ssl.truststore.password",
        "ssl.key.pem",
    }
)


class KafkaSecurityError(ValueError):
    """A security file is missing or malformed; the message names the file, never its
    contents."""


@dataclass(frozen=True)
class KafkaSecurity:
    """A section of a service's settings (`section(KafkaSecurity, GROUP)`)."""

    kafka_security_protocol: str = setting(
        "PLAINTEXT",
        choices=PROTOCOLS,
        group=GROUP,
        help="Kafka security protocol: PLAINTEXT (local only), SSL (TLS, optionally mutual), "
        "SASL_PLAINTEXT or SASL_SSL (SCRAM over TLS: the secure profile)",
    )
    kafka_sasl_mechanism: str = setting(
        "SCRAM-SHA-512", choices=MECHANISMS, group=GROUP, help="SASL mechanism"
    )
    kafka_sasl_username: str = setting(
        "", group=GROUP, help="SASL username: this service's principal (SASL_* only)"
    )
    kafka_password_file: Path | None = setting(
        None,
        group=GROUP,
        help="file holding the SASL password (one line; read at start, never logged)",
    )
    kafka_ca_file: Path | None = setting(
        None,
        group=GROUP,
        help="PEM file of the CA(s) that signed the brokers' certificates (SSL, SASL_SSL; "
        "unset: the system's)",
    )
    kafka_cert_file: Path | None = setting(
        None,
        group=GROUP,
        help="PEM client certificate for mutual TLS (with --kafka-key-file)",
    )
    kafka_key_file: Path | None = setting(
        None,
        group=GROUP,
        help="PEM private key (unencrypted PKCS#8) of --kafka-cert-file",
    )
    kafka_client_properties: Path | None = setting(
        None,
        group=GROUP,
        help="file of key=value client properties passed to the Kafka clients as they are "
        "(Spark: as kafka.<key>); they win over the flags above",
    )

    def __post_init__(self) -> None:
        sasl = self.kafka_security_protocol.startswith("SASL_")
        tls = self.kafka_security_protocol.endswith("SSL")
        if sasl and not (self.kafka_sasl_username and self.kafka_password_file):
            raise ValueError(
                f"--kafka-security-protocol={self.kafka_security_protocol} needs "
                "--kafka-sasl-username and --kafka-password-file"
            )
        if not sasl and (self.kafka_sasl_username or self.kafka_password_file):
            raise ValueError(
                "--kafka-sasl-username/--kafka-password-file need --kafka-security-protocol "
                f"SASL_SSL or SASL_PLAINTEXT, not {self.kafka_security_protocol}"
            )
        if (self.kafka_cert_file is None) != (self.kafka_key_file is None):
            raise ValueError("--kafka-cert-file and --kafka-key-file go together")
        if not tls and (self.kafka_ca_file or self.kafka_cert_file):
            raise ValueError(
                "--kafka-ca-file/--kafka-cert-file need --kafka-security-protocol SSL or "
                f"SASL_SSL, not {self.kafka_security_protocol}"
            )
        # Files are checked now, so a typo is a usage error at start, not a crash later.
        if sasl:
            self.password()
        for path, flag in ((self.kafka_ca_file, "--kafka-ca-file"),
                           (self.kafka_cert_file, "--kafka-cert-file"),
                           (self.kafka_key_file, "--kafka-key-file")):  # fmt: skip
            if path is not None:
                _exists(path, flag)
        self.client_properties()

    @property
    def sasl(self) -> bool:
        return self.kafka_security_protocol.startswith("SASL_")

    @property
    def tls(self) -> bool:
        return self.kafka_security_protocol.endswith("SSL")

    def password(self) -> str:
        """The SASL password from --kafka-password-file (its trailing newline dropped)."""
        if self.kafka_password_file is None:
            raise KafkaSecurityError("no --kafka-password-file given")
        text = _read(self.kafka_password_file, "--kafka-password-file").rstrip("\r\n")
        if not text or "\n" in text:
            raise KafkaSecurityError(
                f"--kafka-password-file {self.kafka_password_file} must hold one non-empty line"
            )
        return text

    def client_properties(self) -> dict[str, str]:
        """The entries of --kafka-client-properties (empty without one)."""
        if self.kafka_client_properties is None:
            return {}
        return parse_properties(
            _read(self.kafka_client_properties, "--kafka-client-properties"),
            str(self.kafka_client_properties),
        )

    def librdkafka_config(self) -> dict[str, str]:
        """What to add to a confluent-kafka Producer/Consumer/AdminClient config. It holds
        the password: never log it (see SECRET_KEYS)."""
        config = {"security.protocol": self.kafka_security_protocol}
        if self.sasl:
            config |= {
                "sasl.mechanism": self.kafka_sasl_mechanism,
                "sasl.username": self.kafka_sasl_username,
                "sasl.password": self.password(),
            }
        if self.kafka_ca_file is not None:
            config["ssl.ca.location"] = str(_exists(self.kafka_ca_file, "--kafka-ca-file"))
        if self.kafka_cert_file is not None and self.kafka_key_file is not None:
            config["ssl.certificate.location"] = str(
                _exists(self.kafka_cert_file, "--kafka-cert-file")
            )
            config["ssl.key.location"] = str(_exists(self.kafka_key_file, "--kafka-key-file"))
        return config | self.client_properties()

    def java_properties(self) -> dict[str, str]:
        """The same for a Java client (keys without Spark's `kafka.` prefix). The PEM
        contents are inlined, so Spark executors on other hosts need no files."""
        props = {"security.protocol": self.kafka_security_protocol}
        if self.sasl:
            props["sasl.mechanism"] = self.kafka_sasl_mechanism
            props["sasl.jaas.config"] = jaas_config(self.kafka_sasl_username, self.password())
        if self.kafka_ca_file is not None:
            props["ssl.truststore.type"] = "PEM"
            props["ssl.truststore.certificates"] = _read(self.kafka_ca_file, "--kafka-ca-file")
        if self.kafka_cert_file is not None and self.kafka_key_file is not None:
            props["ssl.keystore.type"] = "PEM"
            props["ssl.keystore.certificate.chain"] = _read(
                self.kafka_cert_file, "--kafka-cert-file"
            )
            props["ssl.keystore.key"] = _read(self.kafka_key_file, "--kafka-key-file")
        return props | self.client_properties()

    def spark_options(self) -> dict[str, str]:
        """Options for Spark's Kafka source and sink (`kafka.security.protocol`, ...).
        Spark redacts sasl.jaas.config in its logs, and Kafka logs its password-typed
        settings as [hidden]."""
        return {f"kafka.{k}": v for k, v in self.java_properties().items()}


def jaas_config(username: str, password: str) -> str:
    """A ScramLoginModule JAAS line; quotes and backslashes escaped."""
    return (
        f'{SCRAM_LOGIN_MODULE} required username="{_jaas_quote(username)}" '
        f'password="{_jaas_quote(password)}";'
    )


def parse_properties(text: str, source: str = "properties") -> dict[str, str]:
    """`key=value` lines; blank lines and lines starting with # or ! are skipped; spaces
    around key and value are dropped. A bad line is reported by number only (it may hold
    a secret)."""
    out: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped[0] in "#!":
            continue
        key, sep, value = stripped.partition("=")
        if not sep or not key.strip():
            raise KafkaSecurityError(f"{source} line {number}: expected key=value")
        out[key.strip()] = value.strip()
    return out


def redacted(config: Mapping[str, object]) -> dict[str, object]:
    """A client config fit for a log line: secret values replaced by ***."""
    return {k: "***" if k.removeprefix("kafka.") in SECRET_KEYS else v for k, v in config.items()}


def _jaas_quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _exists(path: Path, flag: str) -> Path:
    if not path.is_file():
        raise KafkaSecurityError(f"{flag} {path} is not a readable file")
    return path


def _read(path: Path, flag: str) -> str:
    try:
        return path.read_text()
    except OSError as err:
        raise KafkaSecurityError(
            f"{flag} {path} cannot be read: {err.strerror or type(err).__name__}"
        ) from None


class ClientErrors:
    """An `error_cb` that keeps the last error librdkafka reported (a failed SCRAM login, a
    refused TLS handshake), so a start-up failure can say why: librdkafka tells them only
    to this callback, and `list_topics` just times out. Its messages hold no secret."""

    def __init__(self) -> None:
        self.last: str = ""

    def __call__(self, err: object) -> None:
        text = str(getattr(err, "str", lambda: err)())
        # "all brokers down" follows the real cause; keep the cause.
        if not self.last or "brokers are down" not in text:
            self.last = text

    def why(self, client: object) -> str:
        """The last error after serving `client`'s pending callbacks ('' if none)."""
        poll = getattr(client, "poll", None)
        if poll is not None:
            poll(0)
        return self.last
