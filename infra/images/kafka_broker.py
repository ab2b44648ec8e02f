"""The Kafka image's entry point: a single-node KRaft broker with the pipeline's topics.

Why not Kafka's shell scripts: our images carry no shell (the broker is the same pinned
jars the tests run, started by the same code), and a broker that is up but has no topics
is not ready for the pipeline, so this creates them before it reports healthy.

Two listeners: `--port` advertised as `--advertised-host` (clients on the machine,
through the published port) and `--internal-port` advertised as `--internal-host`
(other containers on the compose network).

Secure mode (`--secrets-dir`, the compose stack's `secure` profile): both listeners are
SASL_SSL (SCRAM-SHA-512) with the certificate in that directory, a third one (`--ssl-port`,
not published) takes the admin's mutual TLS, the StandardAuthorizer refuses what no ACL
allows, and before it reports healthy the broker runs the one setup step
(infra/components/kafka_setup.py): a SCRAM user per <principal>.password file, the topics,
every service's ACLs. The directory is infra/components/kafka_certs.py's layout, made by
`tools/bazel run //infra/compose:secrets` and mounted read-only.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from infra.components.kafka import KafkaBroker
from infra.components.kafka_certs import ADMIN, KafkaPki
from infra.components.kafka_setup import PIPELINE_ACCESS, SetupError, setup
from infra.components.process import ComponentError
from libs.cli.flags import flag
from libs.cli.service import Shutdown
from libs.logging.structured import configure
from libs.schemas.topics import TOPICS


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    flag(
        parser,
        "--data-dir",
        env="KAFKA_DATA_DIR",
        default="/var/lib/kafka",
        type=Path,
        help="log directories and the formatted KRaft metadata (a volume)",
    )
    flag(parser, "--port", env="KAFKA_PORT", default=9092, type=int, help="client listener")
    flag(
        parser,
        "--advertised-host",
        env="KAFKA_ADVERTISED_HOST",
        default="localhost",
        help="name clients of --port reach the broker by",
    )
    flag(
        parser,
        "--advertised-port",
        env="KAFKA_ADVERTISED_PORT",
        default=0,
        type=int,
        help="port clients of --port reach the broker on (0: --port)",
    )
    flag(
        parser,
        "--internal-port",
        env="KAFKA_INTERNAL_PORT",
        default=19092,
        type=int,
        help="listener for other containers (0: none)",
    )
    flag(
        parser,
        "--internal-host",
        env="KAFKA_INTERNAL_HOST",
        default="kafka",
        help="name other containers reach the broker by",
    )
    flag(
        parser,
        "--controller-port",
        env="KAFKA_CONTROLLER_PORT",
        default=9093,
        type=int,
        help="KRaft controller listener (loopback)",
    )
    flag(
        parser,
        "--secrets-dir",
        env="KAFKA_SECRETS_DIR",
        default="",
        help="secure mode: CA, broker keystore, admin certificate and <principal>.password "
        "files (unset: plaintext)",
    )
    flag(
        parser,
        "--ssl-port",
        env="KAFKA_SSL_PORT",
        default=9094,
        type=int,
        help="secure mode: the admin's mutual-TLS listener (inside the container only)",
    )
    flag(parser, "--heap", env="KAFKA_HEAP", default="512m", help="JVM heap (-Xmx)")
    flag(
        parser,
        "--ready-file",
        env="KAFKA_READY_FILE",
        default="/tmp/kafka-ready",
        type=Path,
        help="written once the topics exist; the health check looks for it",
    )
    return parser.parse_args(argv)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    log = configure("kafka")
    shutdown = Shutdown().install()
    args.ready_file.unlink(missing_ok=True)
    pki = None
    if args.secrets_dir:
        pki = KafkaPki(Path(args.secrets_dir), (ADMIN, *PIPELINE_ACCESS))
    broker = KafkaBroker(
        data_dir=args.data_dir,
        port=args.port,
        controller_port=args.controller_port,
        heap=args.heap,
        log_level="INFO",
        bind_host="0.0.0.0",
        advertised_host=args.advertised_host,
        advertised_port=args.advertised_port,
        internal=(args.internal_host, args.internal_port) if args.internal_port else None,
        log_path=Path("/dev/stdout"),
        pki=pki,
        ssl_port=args.ssl_port if pki is not None else 0,
    )
    try:
        took = broker.start(timeout=180)
        if pki is None:
            broker.create_topics(TOPICS)
        else:  # SCRAM users, topics, ACLs (idempotent: every start re-applies them)
            setup(broker.admin_config(), pki.passwords(), TOPICS, timeout=60)
    except (ComponentError, SetupError, OSError) as err:
        log.error("kafka did not start", extra={"error": str(err)})
        broker.stop()
        return 1
    args.ready_file.write_text("ready\n")
    log.info(
        "kafka ready",
        extra={"seconds": round(took, 1), "topics": sorted(TOPICS), "secure": pki is not None},
    )
    while not shutdown.wait(1.0):
        if broker.process.popen.poll() is not None:
            log.error("kafka broker exited", extra={"code": broker.process.popen.returncode})
            return 1
    broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
