"""The PostgreSQL image's entry point: initialise the cluster on first start, then become
the server.

Why not the official image's shell entry point: ours has no shell, and all it has to do
is small: `initdb` with a password from the environment (never from the image), a
pg_hba that requires it over the network, the application's database, and then `exec`
so the server is the container's main process and gets its stop signal (SIGINT: fast
shutdown, as the image's StopSignal says).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from libs.cli.flags import flag
from libs.logging.structured import configure

BIN = Path("/usr/lib/postgresql/15/bin")


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
    flag(parser, "--user", env="POSTGRES_USER", default="fraud", help="superuser to create")
    flag(parser, "--database", env="POSTGRES_DB", default="fraud", help="database to create")
    flag(parser, "--port", env="POSTGRES_PORT", default=5432, type=int, help="listen port")
    return parser.parse_args(argv)  # fmt: skip


def initialise(data_dir: Path, user: str, password: str, database: str) -> None:
    """A new cluster: password auth over the network, the app database created."""
    with tempfile.NamedTemporaryFile("w", dir="/tmp", delete=False) as pwfile:
        pwfile.write(password + "\n")
    try:
        subprocess.run(
            [
                str(BIN / "initdb"),
                "--pgdata", str(data_dir),
                "--username", user,
                "--pwfile", pwfile.name,
                "--auth-local", "trust",
                "--auth-host", "scram-sha-256",
                "--encoding", "UTF8",
                "--locale", "C.UTF-8",
            ],
            check=True,
            stdout=sys.stderr,
        )  # fmt: skip
    finally:
        os.unlink(pwfile.name)
    with (data_dir / "pg_hba.conf").open("a") as hba:
        hba.write("host all all 0.0.0.0/0 scram-sha-256\nhost all all ::/0 scram-sha-256\n")
    if database != "postgres":
        subprocess.run(
            [str(BIN / "postgres"), "--single", "-D", str(data_dir), "postgres"],
            input=f'CREATE DATABASE "{database}" OWNER "{user}";\n',
            text=True,
            check=True,
            stdout=subprocess.DEVNULL,
        )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    log = configure("postgres")
    password = os.environ.get("POSTGRES_PASSWORD", "")
    if not (args.data_dir / "PG_VERSION").exists():
        if not password:
            log.error("POSTGRES_PASSWORD is not set: it is needed to initialise the database")
            return 2
        args.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        initialise(args.data_dir, args.user, password, args.database)
        log.info("initialised", extra={"data_dir": str(args.data_dir), "database": args.database})
    # The full path as argv[0]: PostgreSQL finds its own installation from it.
    argv_server = [
        str(BIN / "postgres"), "-D", str(args.data_dir), "-p", str(args.port),
        "-c", "listen_addresses=*", "-c", "unix_socket_directories=/tmp",
    ]  # fmt: skip
    os.execv(BIN / "postgres", argv_server)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
