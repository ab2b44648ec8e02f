"""//infra/compose:secrets: everything the secure profile mounts is made once, kept when run
again, replaced by --rotate; the certificates name the compose hosts; the env file holds
no Kafka or PostgreSQL-owner/sink secret."""

from __future__ import annotations

import stat
import subprocess

from infra.compose import compose_cli, secrets


def _sans(pem) -> str:
    return subprocess.run(
        ["openssl", "x509", "-in", str(pem), "-noout", "-ext", "subjectAltName"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip


def test_secrets_are_made_once_kept_and_rotated(tmp_path) -> None:
    directory = tmp_path / "secure"
    env_file = secrets.create(directory)
    assert secrets.main(["--dir", str(directory)]) == 0
    env = compose_cli.read_env_file(env_file)
    assert env["FRAUD_COMPOSE_PROFILE"] == "secure"
    assert env["FRAUD_SECRETS_DIR"] == str(directory)
    assert compose_cli.profile_files(env_file)
    pki = directory / "pki"
    for name in ("producer", "detector", "sink", "quality", "notifier", "admin"):
        assert (pki / f"{name}.password").read_text().strip()
    assert "DNS:kafka" in _sans(pki / "broker.pem")
    postgres = _sans(pki / "postgres.pem")
    assert "DNS:postgres" in postgres and "DNS:localhost" in postgres
    kafka_and_db = [(pki / f"{n}.password").read_text().strip() for n in ("sink", "producer")]
    kafka_and_db += [(directory / "postgres" / f"{r}.password").read_text().strip()
                     for r in ("owner", "sink")]  # fmt: skip
    assert not any(secret in env_file.read_text() for secret in kafka_and_db)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE((pki / "ca.key").stat().st_mode) == 0o600
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600

    before = {p.name: p.read_bytes() for p in pki.iterdir()}
    secrets.create(directory)  # again: nothing changes
    assert {p.name: p.read_bytes() for p in pki.iterdir()} == before

    assert secrets.main(["--dir", str(directory), "--rotate"]) == 0
    after = {p.name: p.read_bytes() for p in pki.iterdir()}
    assert after["ca.pem"] != before["ca.pem"]
    assert after["sink.password"] != before["sink.password"]
