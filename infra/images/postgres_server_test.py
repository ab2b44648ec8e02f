"""The PostgreSQL image's entry point without a container: its pg_hba admits only the
service roles over the network (TLS only with a certificate), its passwords come from the
environment or files, and a certificate without its key is refused."""

from __future__ import annotations

import pytest

from infra.components.postgres_setup import NOTIFIER, OWNER, SINK, Roles
from infra.images.postgres_server import hba, parse_args

ENV = {
    "POSTGRES_OWNER_PASSWORD": "o-secret",
    "POSTGRES_SINK_PASSWORD": "s-secret",
    "POSTGRES_NOTIFIER_PASSWORD": "n-secret",
}


def test_hba_admits_only_the_roles_over_tcp_and_the_superuser_by_socket():
    roles = Roles.from_environ(ENV)
    lines = [line for line in hba("postgres", "fraud", roles, tls=False).splitlines()
             if not line.startswith("#")]  # fmt: skip
    names = f"{OWNER},{SINK},{NOTIFIER}"
    assert lines == [
        "local all postgres trust",
        f"host fraud {names} 0.0.0.0/0 scram-sha-256",
        f"host fraud {names} ::/0 scram-sha-256",
    ]
    with_tls = hba("postgres", "fraud", roles, tls=True)
    assert "\nhost " not in with_tls and with_tls.count("\nhostssl fraud ") == 2


def test_passwords_from_the_environment_or_files(tmp_path):
    roles = Roles.from_environ(ENV)
    assert [r.password for r in roles] == ["o-secret", "s-secret", "n-secret"]
    assert "secret" not in repr(roles)  # never in a log line by accident
    secret = tmp_path / "sink"
    secret.write_text("from-a-file\n")
    env = {**ENV, "POSTGRES_SINK_PASSWORD": "", "POSTGRES_SINK_PASSWORD_FILE": str(secret)}
    assert Roles.from_environ(env).sink.password == "from-a-file"
    with pytest.raises(ValueError, match="POSTGRES_NOTIFIER_PASSWORD"):
        Roles.from_environ({k: v for k, v in ENV.items() if "NOTIFIER" not in k})


def test_a_certificate_needs_its_key(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--ssl-cert-file", "/run/secrets/server.crt"])
    assert "go together" in capsys.readouterr().err
    args = parse_args(["--ssl-cert-file", "a.crt", "--ssl-key-file", "a.key"])
    assert (args.ssl_cert_file, args.ssl_key_file, args.user) == ("a.crt", "a.key", "postgres")
