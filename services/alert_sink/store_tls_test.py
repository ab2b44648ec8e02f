"""The sink's store over TLS: PostgreSQL (the pinned Debian build, ssl=on, every TCP line
`hostssl`) with a CA and server certificate generated here. With the sink's settings
--postgres-sslmode=verify-full --postgres-ca-file it stores alerts over an encrypted,
verified connection; a plaintext client, a certificate from another CA and a host name
the certificate does not name are each refused, and nothing is written."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import psycopg2
import pytest

from infra.components.postgres import PostgresServer
from infra.components.postgres_setup import LOCAL_ROLES
from infra.components.postgres_tls import debian_postgres, make_certificates
from infra.testing.alerts import stream_alert
from infra.testing.table import read_table
from services.alert_sink.config import parse_config
from services.alert_sink.store import AlertStore, StoreError

SINK = LOCAL_ROLES.sink


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    base = Path(tempfile.mkdtemp(prefix="pg-tls-", dir="/tmp"))
    os.chmod(base, 0o755)  # as root the server runs as `nobody`
    certs = make_certificates(base / "certs")
    other = make_certificates(base / "other-ca", ca_name="someone else's CA")
    debs = [Path(p) for p in os.environ["FRAUD_POSTGRES_DEBS"].split()]
    install = debian_postgres(debs)
    server = PostgresServer(
        data_dir=base / "cluster",
        tls=certs.server,
        bin_dir=install.bin_dir,
        library_path=install.library_path,
    )
    print(f"TLS PostgreSQL ready in {server.start():.1f} s")
    secret = tmp_path_factory.mktemp("secrets") / "sink-password"
    secret.write_text(SINK.password + "\n")
    yield server, certs, other, secret
    server.destroy()


def sink_store(server, dsn: str, ca_file: Path, secret: Path) -> AlertStore:
    """The store as the sink builds it from its settings."""
    config = parse_config(
        [
            "--postgres-dsn", dsn,
            "--postgres-sslmode", "verify-full",
            "--postgres-ca-file", str(ca_file),
            "--postgres-password-file", str(secret),
        ],
        environ={},
    )  # fmt: skip
    return AlertStore(
        config.postgres_dsn, config.table, config.postgres_params, config.postgres_password_file
    )


def test_verify_full_stores_alerts_over_tls(tls):
    server, certs, _, secret = tls
    store = sink_store(server, server.role_dsn(SINK), certs.ca_file, secret)
    alert = stream_alert("tls-1", 0, 1)
    assert store.write([alert]).stored == (alert,)
    with store._conn.cursor() as cur:
        cur.execute("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        encrypted, version = cur.fetchone()
    store.close()
    assert encrypted and version in ("TLSv1.2", "TLSv1.3")
    assert set(read_table(server.dsn, "alerts")) == {(alert.user_id, alert.window_start)}


def test_a_plaintext_client_is_refused(tls):
    server, _, _, _ = tls
    with pytest.raises(psycopg2.OperationalError) as info:
        psycopg2.connect(server.role_dsn(SINK, sslmode="disable"), password=SINK.password)
    assert "no pg_hba.conf entry" in str(info.value) and "no encryption" in str(info.value)
    with pytest.raises(psycopg2.OperationalError, match="no encryption"):
        psycopg2.connect(server.dsn.replace("sslmode=require", "sslmode=disable"))


@pytest.mark.parametrize("case", ["another CA", "another host name"])
def test_verify_full_refuses_a_certificate_it_cannot_trust(tls, case):
    server, certs, other, secret = tls
    before = read_table(server.dsn, "alerts")
    if case == "another CA":
        dsn, ca, expected = server.role_dsn(SINK), other.ca_file, "certificate verify failed"
    else:  # the right server and CA, but the certificate names localhost and 127.0.0.1
        dsn = server.role_dsn(SINK).replace("host=127.0.0.1", "host=db.example hostaddr=127.0.0.1")
        ca, expected = certs.ca_file, 'does not match host name "db.example"'
    store = sink_store(server, dsn, ca, secret)
    with pytest.raises(StoreError) as info:
        store.write([stream_alert("tls-refused", 0, 1)])
    assert info.value.kind == "connect" and not store.connected
    assert expected in str(info.value), str(info.value)
    assert read_table(server.dsn, "alerts") == before
