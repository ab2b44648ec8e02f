"""The PostgreSQL image's entry point: initialise the cluster on first start, run the
database setup at every start, then become the server.

Why not the official image's shell entry point: ours has no shell, and all it has to do
is small: `initdb` (the superuser reachable only through the container's own socket),
a pg_hba that admits only the service roles over the network (scram-sha-256; `hostssl`
only when a certificate is given), the application's database, the setup step
(infra/components/postgres_setup.py: roles, passwords, grants, tables; idempotent, so a
changed password in the env file is applied by restarting this container), and then
`exec` so the server is the container's main process and gets its stop signal (SIGINT:
fast shutdown, as the image's StopSignal says).

The setup runs against a temporary server listening on the socket only, so no client can
connect before the roles and grants are in place (the official image does the same).
Passwords come from POSTGRES_{OWNER,SINK,NOTIFIER}_PASSWORD or the files named by
..._PASSWORD_FILE; they are never logged.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg2
from psycopg2 import sql

from infra.components.postgres_setup import Roles, server_tls_flags, setup
from libs.cli.flags import flag
from libs.logging.structured import configure

BIN = Path("/usr/lib/postgresql/15/bin")
SOCKET_DIR = "/tmp"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    flag(
        parser,
        "--data-dir",
        env="PGDATA",
        default="/var/lib/postgresql/data",
        type=Path,
        help="the cluster's data directory (a volume)",
    )
    flag(
        parser,
        "--user",
        env="POSTGRES_USER",
        default="postgres",
        help="the cluster's superuser (no password: the container's own socket only)",
    )
    flag(parser, "--database", env="POSTGRES_DB", default="fraud", help="database to create")
    flag(parser, "--port", env="POSTGRES_PORT", default=5432, type=int, help="listen port")
    flag(
        parser,
        "--ssl-cert-file",
        env="POSTGRES_SSL_CERT_FILE",
        default="",
        help="server certificate (PEM); with --ssl-key-file: TLS only (hostssl)",
    )
    flag(
        parser,
        "--ssl-key-file",
        env="POSTGRES_SSL_KEY_FILE",
        default="",
        help="the certificate's private key (PEM; copied into the data dir, mode 0600)",
    )
    args = parser.parse_args(argv)  # fmt: skip
    if bool(args.ssl_cert_file) != bool(args.ssl_key_file):
        parser.error("--ssl-cert-file and --ssl-key-file go together")
    return args


def initialise(data_dir: Path, user: str) -> None:
    """A new cluster whose superuser has no password and no network access."""
    subprocess.run(
        [
            str(BIN / "initdb"),
            "--pgdata", str(data_dir),
            "--username", user,
            "--auth-local", "trust",
            "--auth-host", "reject",
            "--encoding", "UTF8",
            "--locale", "C.UTF-8",
        ],
        check=True,
        stdout=sys.stderr,
    )  # fmt: skip


def hba(user: str, database: str, roles: Roles, tls: bool) -> str:
    """pg_hba.conf: the superuser over the local socket; the roles, to their database only,
    over TCP with scram-sha-256 (TLS only when `tls`). Anything else is refused."""
    host = "hostssl" if tls else "host"
    names = ",".join(r.name for r in roles)
    return (
        "# Written by infra/images/postgres_server.py at every start.\n"
        f"local all {user} trust\n"
        f"{host} {database} {names} 0.0.0.0/0 scram-sha-256\n"
        f"{host} {database} {names} ::/0 scram-sha-256\n"
    )


def tls_flags(data_dir: Path, cert_file: str, key_file: str) -> list[str]:
    """ssl=on with copies the server user owns (PostgreSQL refuses a key others can read)."""
    if not cert_file:
        return []
    return server_tls_flags(data_dir, cert_file, key_file)


def run_setup(args: argparse.Namespace, roles: Roles, timeout: float = 60.0) -> None:
    """The database and the setup step, on a temporary server reachable by socket only."""
    temp = subprocess.Popen(
        [
            str(BIN / "postgres"), "-D", str(args.data_dir), "-p", str(args.port),
            "-c", "listen_addresses=", "-c", f"unix_socket_directories={SOCKET_DIR}",
        ],
        stdout=sys.stderr,
    )  # fmt: skip
    try:
        conn = _connect_when_up(temp, args, "postgres", timeout)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (args.database,))
            if cur.fetchone() is None:
                cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(args.database)))
        conn.close()
        conn = _connect_when_up(temp, args, args.database, timeout)
        try:
            setup(conn, roles)
        finally:
            conn.close()
    finally:
        temp.send_signal(signal.SIGINT)  # fast shutdown
        temp.wait(timeout)


def _connect_when_up(temp: subprocess.Popen, args: argparse.Namespace, database: str,
                     timeout: float):  # fmt: skip
    deadline = time.monotonic() + timeout
    while True:
        if temp.poll() is not None:
            raise RuntimeError(f"the temporary server exited with {temp.returncode}")
        try:
            return psycopg2.connect(
                host=SOCKET_DIR, port=args.port, user=args.user, dbname=database
            )
        except psycopg2.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)  # a start-up poll with a deadline; the server says nothing sooner


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    log = configure("postgres")
    try:
        roles = Roles.from_environ()
    except (ValueError, OSError) as err:
        log.error("cannot set up the database roles", extra={"error": str(err)})
        return 2
    if not (args.data_dir / "PG_VERSION").exists():
        args.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        initialise(args.data_dir, args.user)
        log.info("initialised", extra={"data_dir": str(args.data_dir), "database": args.database})
    tls = tls_flags(args.data_dir, args.ssl_cert_file, args.ssl_key_file)
    (args.data_dir / "pg_hba.conf").write_text(hba(args.user, args.database, roles, bool(tls)))
    run_setup(args, roles)
    log.info(
        "database set up",
        extra={"database": args.database, "roles": [r.name for r in roles], "tls": bool(tls)},
    )
    # The full path as argv[0]: PostgreSQL finds its own installation from it.
    argv_server = [
        str(BIN / "postgres"), "-D", str(args.data_dir), "-p", str(args.port),
        "-c", "listen_addresses=*", "-c", f"unix_socket_directories={SOCKET_DIR}",
        "-c", "password_encryption=scram-sha-256", *tls,
    ]  # fmt: skip
    os.execv(BIN / "postgres", argv_server)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
