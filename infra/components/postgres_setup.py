"""The database's one setup step (the migration): roles, privileges and every table, run as
the cluster superuser, idempotent, at every start of PostgreSQL (the image's entry point,
PostgresServer for the tests and //infra:local).

Why one step and least privilege: the services connect as roles that may do exactly their
job, so a leaked sink password cannot run DDL, read the notifier's outbox, or reach the
server's shell through `COPY ... TO PROGRAM` (superuser only):

- `fraud_owner` owns the database and every table (the migration runs DDL as this role);
- `fraud_sink` may SELECT, INSERT and UPDATE the alerts table(s), nothing else;
- `fraud_notifier` may SELECT, INSERT and UPDATE `notifications` and `notifier_offsets`.

None of them is a superuser or may create roles, databases, schemas or temporary tables.
Passwords are set as SCRAM-SHA-256 verifiers computed here, so the plain password never
reaches the server (not even its statement log); running the step again with another
password rotates it. Services keep no DDL: the sink and the notifier check at start-up that
their tables exist and name this module when they do not.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from psycopg2 import sql

from libs.schemas.sql import alerts_ddl

OWNER, SINK, NOTIFIER = "fraud_owner", "fraud_sink", "fraud_notifier"

# The notifier's outbox and consumer offsets (services/notifier/store.py says why).
NOTIFIER_TABLES = ("notifications", "notifier_offsets")
NOTIFIER_DDL = """
CREATE TABLE IF NOT EXISTS notifications (
    destination     text        NOT NULL,
    user_id         text        NOT NULL,
    window_start    timestamptz NOT NULL,
    score           integer     NOT NULL,
    alert           jsonb       NOT NULL,
    status          text        NOT NULL DEFAULT 'pending',
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    via             text,
    source_partition integer    NOT NULL,
    source_offset   bigint      NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    PRIMARY KEY (destination, user_id, window_start)
);
CREATE INDEX IF NOT EXISTS notifications_due
    ON notifications (destination, next_attempt_at) WHERE status = 'pending';
CREATE TABLE IF NOT EXISTS notifier_offsets (
    group_id    text    NOT NULL,
    topic       text    NOT NULL,
    partition   integer NOT NULL,
    next_offset bigint  NOT NULL,
    PRIMARY KEY (group_id, topic, partition)
);
"""

_SETUP_LOCK = 7411  # pg_advisory_xact_lock key: two setups at once wait for each other
_SCRAM_ITERATIONS = 4096  # PostgreSQL's default scram_iterations
_PRINTABLE_ASCII = re.compile(r"[\x21-\x7e]+")


@dataclass(frozen=True)
class Role:
    name: str
    password: str = field(repr=False)

    def __post_init__(self) -> None:
        if not _PRINTABLE_ASCII.fullmatch(self.password or ""):
            # SASLprep is the identity on printable ASCII, so the verifier computed here is
            # the one the server would compute; generated secrets are ASCII anyway.
            raise ValueError(
                f"the password of role {self.name} must be non-empty printable ASCII without spaces"
            )


@dataclass(frozen=True)
class Roles:
    owner: Role
    sink: Role
    notifier: Role

    def __iter__(self):
        return iter((self.owner, self.sink, self.notifier))

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Roles:
        """Passwords from POSTGRES_{OWNER,SINK,NOTIFIER}_PASSWORD, or the file named by the
        same variable with a _FILE suffix (a mounted secret); ValueError if one is missing."""
        env = os.environ if environ is None else environ
        return cls(
            Role(OWNER, _secret(env, "POSTGRES_OWNER_PASSWORD")),
            Role(SINK, _secret(env, "POSTGRES_SINK_PASSWORD")),
            Role(NOTIFIER, _secret(env, "POSTGRES_NOTIFIER_PASSWORD")),
        )


# The local profile's passwords (tests, //infra:local): the only ones in code.
LOCAL_ROLES = Roles(
    Role(OWNER, "fraud-owner-local-only"),
    Role(SINK, "fraud-sink-local-only"),
    Role(NOTIFIER, "fraud-notifier-local-only"),
)


def _secret(env: Mapping[str, str], var: str) -> str:
    if env.get(f"{var}_FILE"):
        return Path(env[f"{var}_FILE"]).read_text().strip()
    if env.get(var):
        return env[var]
    raise ValueError(f"{var} (or {var}_FILE) is not set: the database setup needs it")


def scram_verifier(password: str, salt: bytes | None = None) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for `password` (RFC 5802/7677), which
    CREATE/ALTER ROLE ... PASSWORD accepts as is."""
    salt = os.urandom(16) if salt is None else salt
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, _SCRAM_ITERATIONS)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    b64 = lambda raw: base64.b64encode(raw).decode()  # noqa: E731
    stored_key = hashlib.sha256(client_key).digest()
    return f"SCRAM-SHA-256${_SCRAM_ITERATIONS}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def _table(name: str) -> sql.Identifier:
    """A (schema-qualified) table name as an identifier; checked like the sink's --table."""
    alerts_ddl(name)  # ValueError unless a lower-case identifier
    return sql.Identifier(*name.split("."))


def setup(conn, roles: Roles = LOCAL_ROLES, alerts_tables: Sequence[str] = ("alerts",)) -> None:
    """Run the setup in the database `conn` (a superuser's psycopg2 connection) is on, in one
    transaction. Safe to run again: roles get their attributes and passwords re-set, tables
    that exist are kept (and handed to the owner), grants are made exact."""
    with conn, conn.cursor() as cur:
        cur.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        if not cur.fetchone()[0]:
            raise PermissionError("the database setup must run as a superuser")
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_SETUP_LOCK,))
        for role in roles:
            cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role.name,))
            verb = "ALTER" if cur.fetchone() else "CREATE"
            cur.execute(
                sql.SQL(
                    verb + " ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT "
                    "NOREPLICATION NOBYPASSRLS PASSWORD %s"
                ).format(sql.Identifier(role.name)),
                (scram_verifier(role.password),),
            )
        owner, sink, notifier = (sql.Identifier(r.name) for r in roles)
        cur.execute("SELECT current_database()")
        database = sql.Identifier(cur.fetchone()[0])
        for statement in (
            "ALTER DATABASE {db} OWNER TO {owner}",
            "REVOKE ALL ON DATABASE {db} FROM PUBLIC",  # CONNECT and TEMPORARY
            "GRANT CONNECT ON DATABASE {db} TO {sink}, {notifier}",
            # Explicitly, not through pg_database_owner: PostgreSQL 15 caches that role's
            # membership, so this session would not yet see the new database owner in it.
            "ALTER SCHEMA public OWNER TO {owner}",
            "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
            "GRANT USAGE ON SCHEMA public TO {sink}, {notifier}",
        ):
            cur.execute(
                sql.SQL(statement).format(db=database, owner=owner, sink=sink, notifier=notifier)
            )
        alerts = [_table(t) for t in alerts_tables]
        notifier_tables = [sql.Identifier(t) for t in NOTIFIER_TABLES]
        for name, table in zip(
            [*alerts_tables, *NOTIFIER_TABLES], [*alerts, *notifier_tables], strict=True
        ):
            cur.execute("SELECT to_regclass(%s)", (name,))
            if cur.fetchone()[0] is not None:  # e.g. made by an older sink: the owner's now
                cur.execute(sql.SQL("ALTER TABLE {} OWNER TO {}").format(table, owner))
        cur.execute(sql.SQL("SET LOCAL ROLE {}").format(owner))
        for name in alerts_tables:
            cur.execute(alerts_ddl(name))
        cur.execute(NOTIFIER_DDL)
        for tables, grantee in ((alerts, sink), (notifier_tables, notifier)):
            listed = sql.SQL(", ").join(tables)
            cur.execute(
                sql.SQL("REVOKE ALL ON {} FROM PUBLIC, {}, {}").format(listed, sink, notifier)
            )
            cur.execute(sql.SQL("GRANT SELECT, INSERT, UPDATE ON {} TO {}").format(listed, grantee))


def server_tls_flags(
    data_dir: Path,
    cert_file: str | Path,
    key_file: str | Path,
    owner: tuple[int, int] | None = None,
) -> list[str]:
    """postgres flags for ssl=on, with copies of the certificate and key that the server
    user owns (PostgreSQL refuses a key others may read); used by the tests' server and
    the image alike."""
    tls_dir = Path(data_dir) / "tls"
    tls_dir.mkdir(mode=0o700, exist_ok=True)
    for name, source in (("server.crt", cert_file), ("server.key", key_file)):
        shutil.copyfile(source, tls_dir / name)
        os.chmod(tls_dir / name, 0o600)
        if owner:
            os.chown(tls_dir / name, *owner)
    if owner:
        os.chown(tls_dir, *owner)
    return [
        "-c", "ssl=on",
        "-c", f"ssl_cert_file={tls_dir / 'server.crt'}",
        "-c", f"ssl_key_file={tls_dir / 'server.key'}",
        "-c", "ssl_min_protocol_version=TLSv1.2",
    ]  # fmt: skip
