"""Certificates and SCRAM passwords for a secure Kafka broker, generated on the spot.

Why: tests and the local stack's `--secure` mode need a CA, a broker certificate valid for
loopback, client certificates (mutual TLS, and the admin's, which the setup step uses) and
one SCRAM password per service principal. They are made with the openssl binary (the
toolchain root has it; no Python crypto package is pinned), in a directory of the caller,
with private keys and passwords readable by the owner only. Nothing here is meant for
production: there, the CA and the secrets come from the operator.

Layout of `directory`: ca.pem (and ca.key), broker.pem (key + certificate: Kafka's PEM
keystore), <name>.pem / <name>.key for each certificate, <principal>.password.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from libs.kafka.security import KafkaSecurity

ADMIN = "admin"  # the super user of the setup step (mutual TLS, or SCRAM)
BROKER = "broker"  # the broker's own principal (inter-broker and controller: mutual TLS)
DAYS = "2"  # certificates for a test run; regenerate for a new one
_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


class CertError(RuntimeError):
    """openssl failed; the message carries its output."""


@dataclass(frozen=True)
class KafkaPki:
    """Paths of the generated files (see the module docstring)."""

    directory: Path
    principals: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ("localhost",)
    days: str = DAYS  # validity of the certificates issued here

    @classmethod
    def create(
        cls,
        directory: Path,
        principals: Iterable[str],
        hosts: Iterable[str] = ("localhost",),
        days: int = int(DAYS),
    ) -> KafkaPki:
        """A CA, the broker's certificate (SANs: 127.0.0.1 and `hosts`), a certificate and
        a SCRAM password for the admin and for each principal. Existing files are kept (a
        restarted stack reuses them)."""
        pki = cls(directory, (ADMIN, *dict.fromkeys(p for p in principals if p != ADMIN)),
                  tuple(hosts), str(days))  # fmt: skip
        directory.mkdir(parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
        if not pki.ca_file.exists():
            _openssl("req", "-x509", *_KEY, "-keyout", str(directory / "ca.key"),
                     "-out", str(pki.ca_file), "-days", pki.days, "-subj", "/CN=fraud-test-ca",
                     "-addext", "basicConstraints=critical,CA:TRUE",
                     "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
        sans = ",".join(["IP:127.0.0.1", *(f"DNS:{h}" for h in pki.hosts)])
        pki._issue(BROKER, f"subjectAltName={sans}\nextendedKeyUsage=serverAuth,clientAuth\n")
        keystore = pki.keystore_file
        if not keystore.exists():
            keystore.write_text(
                pki.key_file(BROKER).read_text() + pki.cert_file(BROKER).read_text()
            )
            os.chmod(keystore, 0o600)
        for name in pki.principals:
            pki._issue(name, "extendedKeyUsage=clientAuth\n")
            path = pki.password_file(name)
            if not path.exists():
                path.touch(0o600)
                path.write_text(secrets.token_urlsafe(24) + "\n")
        return pki

    @property
    def ca_file(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def keystore_file(self) -> Path:
        """The broker's PEM keystore: its private key, then its certificate."""
        return self.directory / "broker-keystore.pem"

    def cert_file(self, name: str) -> Path:
        return self.directory / f"{name}.pem"

    def key_file(self, name: str) -> Path:
        return self.directory / f"{name}.key"

    def password_file(self, principal: str) -> Path:
        return self.directory / f"{principal}.password"

    def password(self, principal: str) -> str:
        return self.password_file(principal).read_text().strip()

    def passwords(self) -> dict[str, str]:
        """Every generated password (principal -> password): what no log may show."""
        return {p: self.password(p) for p in self.principals}

    def sasl(self, principal: str) -> KafkaSecurity:
        """Client settings for `principal` over SASL_SSL (SCRAM-SHA-512)."""
        return KafkaSecurity(
            "SASL_SSL",
            kafka_sasl_username=principal,
            kafka_password_file=self.password_file(principal),
            kafka_ca_file=self.ca_file,
        )

    def mtls(self, principal: str) -> KafkaSecurity:
        """Client settings for `principal` over mutual TLS (the SSL listener)."""
        return KafkaSecurity(
            "SSL",
            kafka_ca_file=self.ca_file,
            kafka_cert_file=self.cert_file(principal),
            kafka_key_file=self.key_file(principal),
        )

    def issue_server(self, name: str, hosts: Iterable[str]) -> None:
        """A server certificate `name`.pem / `name`.key from this CA for `hosts` (DNS names,
        IP addresses), e.g. PostgreSQL's; kept if it exists."""
        sans = ",".join(f"IP:{h}" if h.replace(".", "").isdigit() else f"DNS:{h}" for h in hosts)
        self._issue(name, f"subjectAltName={sans}\nextendedKeyUsage=serverAuth\n")

    def _issue(self, name: str, extensions: str) -> None:
        cert, key = self.cert_file(name), self.key_file(name)
        if cert.exists() and key.exists():
            return
        csr, ext = self.directory / f"{name}.csr", self.directory / f"{name}.ext"
        _openssl("req", "-new", *_KEY, "-keyout", str(key), "-out", str(csr),
                 "-subj", f"/CN={name}")  # fmt: skip
        os.chmod(key, 0o600)
        ext.write_text(extensions)
        _openssl("x509", "-req", "-in", str(csr), "-CA", str(self.ca_file),
                 "-CAkey", str(self.directory / "ca.key"), "-CAcreateserial",
                 "-out", str(cert), "-days", self.days, "-extfile", str(ext))  # fmt: skip
        csr.unlink()
        ext.unlink()


def _openssl(*args: str) -> None:
    result = subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise CertError(f"openssl {args[0]} failed ({result.returncode}): {result.stderr[-2000:]}")
