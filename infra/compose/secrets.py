"""`tools/bazel run //infra/compose:secrets -- --dir DIR`: the compose stack's `secure`
profile's secrets, made once, outside the repository, and its env file.

Why: the secure profile (compose.secure.yaml) runs Kafka with SASL_SSL + SCRAM-SHA-512 and
ACLs and PostgreSQL with TLS; it needs a CA, the broker's and PostgreSQL's certificates
(SANs: the compose host names `kafka` / `postgres`, `localhost` and 127.0.0.1 for the
published ports), one SCRAM password per service principal and the database roles'
passwords. The certificates and Kafka passwords come from the same code the tests and the
local stack use (infra/components/kafka_certs.py).

Idempotent: existing files are kept (run it again after a checkout: nothing changes);
`--rotate` replaces every certificate and password (then `//infra:down` and `//infra:up`
with the env file: the broker upserts the SCRAM users and PostgreSQL re-sets the role
passwords at start). Layout of DIR (mode 0700; the files compose mounts are readable by
the containers' user, so the directory is what keeps other local users out):

    pki/              ca.pem, ca.key (never mounted), broker-keystore.pem, admin.pem/.key,
                      postgres.pem/.key, <principal>.password (producer, detector, sink,
                      quality, notifier, admin)
    postgres/         owner.password, sink.password, notifier.password
    grafana.password
    secure.env        the env file: `//infra:up -- --env-file DIR/secure.env`
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import sys
from pathlib import Path

from infra.components.kafka_certs import CertError, KafkaPki
from infra.components.kafka_setup import PIPELINE_ACCESS

DEFAULT_DIR = "~/.config/fraud/secure"
DAYS = 365
KAFKA_HOSTS = ("localhost", "kafka")
POSTGRES_HOSTS = ("postgres", "localhost", "127.0.0.1")
DB_ROLES = ("owner", "sink", "notifier")
ENV_FILE = "secure.env"


def _password(path: Path) -> str:
    """The password in `path`, made (URL-safe, 32 characters) if there is none."""
    if not path.exists():
        path.touch(0o600)
        path.write_text(secrets.token_urlsafe(24) + "\n")
    return path.read_text().strip()


def create(directory: Path, rotate: bool = False) -> Path:
    """Every secret of the secure profile in `directory` (kept unless `rotate`) and the
    env file; returns the env file's path."""
    directory = directory.expanduser().absolute()
    if rotate:
        for name in ("pki", "postgres", "grafana.password", ENV_FILE):
            path = directory / name
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    pki = KafkaPki.create(directory / "pki", PIPELINE_ACCESS, KAFKA_HOSTS, days=DAYS)
    pki.issue_server("postgres", POSTGRES_HOSTS)
    (directory / "postgres").mkdir(exist_ok=True)
    for role in DB_ROLES:
        _password(directory / "postgres" / f"{role}.password")
    notifier = _password(directory / "postgres" / "notifier.password")
    grafana = _password(directory / "grafana.password")
    # The containers run as their own user (uid 65532), not as the files' owner: what they
    # mount must be readable by it. The CA's key stays the owner's alone.
    for folder in (pki.directory, directory / "postgres"):
        os.chmod(folder, 0o755)
        for path in folder.iterdir():
            os.chmod(path, 0o600 if path.name == "ca.key" else 0o644)
    env_file = directory / ENV_FILE
    env_file.touch(0o600)
    env_file.write_text(
        "# The compose stack's secure profile (made by //infra/compose:secrets; rewritten by\n"
        "# it, so put your own settings in a copy). Secrets are files under\n"
        "# FRAUD_SECRETS_DIR, mounted read-only; only the two below are values, because the\n"
        "# notifier reads its database password from PGPASSWORD and Grafana from this file.\n"
        "FRAUD_COMPOSE_PROFILE=secure\n"
        f"FRAUD_SECRETS_DIR={directory}\n"
        "FRAUD_BIND_ADDRESS=127.0.0.1\n"
        "POSTGRES_DB=fraud\n"
        f"POSTGRES_NOTIFIER_PASSWORD={notifier}\n"
        f"GRAFANA_ADMIN_PASSWORD={grafana}\n"
    )
    os.chmod(env_file, 0o600)
    return env_file


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--dir",
        default=os.environ.get("FRAUD_COMPOSE_SECRETS_DIR", DEFAULT_DIR),
        help="where the secrets and secure.env go, outside the repository (env "
        f"FRAUD_COMPOSE_SECRETS_DIR; default {DEFAULT_DIR})",
    )
    parser.add_argument(
        "--rotate",
        action="store_true",
        help="replace every certificate and password (then restart the stack)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    directory = Path(args.dir).expanduser()
    if not directory.is_absolute() and os.environ.get("BUILD_WORKING_DIRECTORY"):
        directory = Path(os.environ["BUILD_WORKING_DIRECTORY"]) / directory
    try:
        env_file = create(directory, args.rotate)
    except (CertError, OSError) as err:
        print(f"secrets: {err}", file=sys.stderr)
        return 1
    print(
        f"secrets: {'rotated' if args.rotate else 'ready'} in {env_file.parent}; start the "
        f"secure profile with `tools/bazel run //infra:up -- --env-file {env_file}`"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
