"""The one setup step of a secure Kafka cluster: SCRAM users, topics and ACLs, idempotent.

Why: least privilege means one principal per service and an ACL for each thing it may do;
a forged alert on `fraud_alerts` must be refused by the broker, not noticed later. Writing
the table once (`PIPELINE_ACCESS`) and applying it with one function lets the tests, the
local stack and compose agree. Running it again changes nothing: existing topics are kept,
a SCRAM credential is upserted with the password in its file, an existing ACL binding is
accepted as it is. It runs as a super user (`admin`, over mutual TLS in the test broker).

    python -m infra.components.kafka_setup --bootstrap-servers 127.0.0.1:9094 \
        --kafka-security-protocol SSL --kafka-ca-file ca.pem \
        --kafka-cert-file admin.pem --kafka-key-file admin.key --users-dir secrets/
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.components.wait import WaitTimeout, wait_until
from libs.cli.settings import parse, positive_float, section, setting
from libs.kafka.security import GROUP, KafkaSecurity
from libs.schemas.topics import (
    ALERTS_DLQ_TOPIC,
    ALERTS_TOPIC,
    NOTIFICATIONS_DLQ_TOPIC,
    TOPICS,
    TRANSACTIONS_DLQ_TOPIC,
    TRANSACTIONS_TOPIC,
)

SCRAM_ITERATIONS = 8192


@dataclass(frozen=True)
class Access:
    """What one principal may do: read (and describe) topics, write topics, and use
    consumer groups whose id starts with one of `group_prefixes`."""

    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()
    group_prefixes: tuple[str, ...] = ()


# One principal per service (docs/security-kafka.md). Group prefixes are the services'
# default --group-id values; Spark's Kafka source names its groups spark-kafka-source-*.
PIPELINE_ACCESS: Mapping[str, Access] = {
    "producer": Access(writes=(TRANSACTIONS_TOPIC,)),
    "detector": Access(
        reads=(TRANSACTIONS_TOPIC,),
        writes=(ALERTS_TOPIC, TRANSACTIONS_DLQ_TOPIC),
        group_prefixes=("spark-kafka-source-",),
    ),
    "sink": Access(
        reads=(ALERTS_TOPIC,), writes=(ALERTS_DLQ_TOPIC,), group_prefixes=("fraud-alert-sink",)
    ),
    "quality": Access(reads=(TRANSACTIONS_TOPIC, ALERTS_TOPIC), group_prefixes=("fraud-quality",)),
    "notifier": Access(
        reads=(ALERTS_TOPIC,),
        writes=(NOTIFICATIONS_DLQ_TOPIC,),
        group_prefixes=("fraud-notifier",),
    ),
}


class SetupError(RuntimeError):
    """The broker refused part of the setup; the message says which part."""


def acl_bindings(access: Mapping[str, Access]) -> list[Any]:
    """confluent-kafka AclBindings for the table (ALLOW, any host)."""
    from confluent_kafka.admin import (
        AclBinding,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    def allow(kind, name, pattern, principal, operation):
        return AclBinding(kind, name, pattern, f"User:{principal}", "*", operation,
                          AclPermissionType.ALLOW)  # fmt: skip

    out = []
    for principal, a in access.items():
        for topic in a.reads:
            out.append(allow(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, principal,
                             AclOperation.READ))  # fmt: skip
        for topic in a.writes:
            out.append(allow(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, principal,
                             AclOperation.WRITE))  # fmt: skip
        for prefix in a.group_prefixes:
            out.append(allow(ResourceType.GROUP, prefix, ResourcePatternType.PREFIXED,
                             principal, AclOperation.READ))  # fmt: skip
    return out


def setup(
    admin_config: Mapping[str, Any],
    passwords: Mapping[str, str],
    topics: Mapping[str, int] = TOPICS,
    access: Mapping[str, Access] = PIPELINE_ACCESS,
    timeout: float = 30.0,
) -> None:
    """Upsert a SCRAM-SHA-512 credential per `passwords` entry, create missing `topics`
    (name -> partitions) and every ACL of `access`. SetupError names what failed."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import (
        AdminClient,
        NewTopic,
        ScramCredentialInfo,
        ScramMechanism,
        UserScramCredentialUpsertion,
    )

    admin = AdminClient({**admin_config, "log_level": 3})

    def wait(futures: Mapping[Any, Any], what: str) -> None:
        for key, future in futures.items():
            try:
                future.result(timeout)
            except KafkaException as err:
                raise SetupError(f"{what} {key}: {err.args[0]}") from None

    if passwords:
        info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS)
        upserts = [UserScramCredentialUpsertion(user, info, password.encode())
                   for user, password in passwords.items()]  # fmt: skip
        wait(admin.alter_user_scram_credentials(upserts, request_timeout=timeout),
             "SCRAM user")  # fmt: skip
    try:
        existing = set(admin.list_topics(timeout=timeout).topics)
    except KafkaException as err:
        raise SetupError(f"listing topics as the admin failed: {err.args[0]}") from None
    wanted = [NewTopic(t, num_partitions=n) for t, n in topics.items() if t not in existing]
    if wanted:
        wait(admin.create_topics(wanted, operation_timeout=timeout), "topic")
        _wait_for_leaders(admin, [t.topic for t in wanted], timeout)
    bindings = acl_bindings(access)
    if bindings:
        wait(admin.create_acls(bindings, request_timeout=timeout), "ACL")
    _wait_until_applied(admin, bindings, set(passwords), timeout)


def _wait_for_leaders(admin: Any, topics: Sequence[str], timeout: float) -> None:
    """Until every partition of `topics` has a leader (a client started right after the
    setup must not meet NOT_LEADER_FOR_PARTITION)."""
    from confluent_kafka import KafkaException

    def missing() -> list[str]:
        meta = admin.list_topics(timeout=timeout).topics
        return [t for t in topics if t not in meta or meta[t].error is not None
                or any(p.leader < 0 for p in meta[t].partitions.values())]  # fmt: skip

    try:
        wait_until(lambda: not missing(), timeout, "every new topic has a leader",
                   show=lambda: f"no leader yet: {missing()}", interval=0.2,
                   tolerate=KafkaException)  # fmt: skip
    except WaitTimeout as err:
        raise SetupError(str(err)) from None


def _wait_until_applied(admin: Any, bindings: list[Any], users: set[str], timeout: float) -> None:
    """Until the broker enforces what the controller accepted: every ACL and SCRAM user is
    in its metadata (else a client started right after the setup is refused at first)."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import (
        AclBindingFilter,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                                  AclOperation.ANY, AclPermissionType.ANY)  # fmt: skip

    def key(b: Any) -> tuple:
        return (b.restype, b.name, b.resource_pattern_type, b.principal, b.host, b.operation,
                b.permission_type)  # fmt: skip

    wanted = {key(b) for b in bindings}

    def enforced() -> tuple[int, int]:
        """(ACLs of ours the broker has, SCRAM users it knows)."""
        acls = {key(b) for b in admin.describe_acls(everything).result(timeout)}
        known = 0
        if users:
            described = admin.describe_user_scram_credentials(list(users))
            known = sum(f.exception(timeout) is None for f in described.values())
        return len(wanted & acls), known

    try:
        wait_until(lambda: enforced() == (len(wanted), len(users)), timeout,
                   "every ACL and SCRAM user enforced by the broker",
                   show=lambda: f"ACLs, users: {enforced()} of {(len(wanted), len(users))}",
                   interval=0.2, tolerate=KafkaException)  # fmt: skip
    except WaitTimeout as err:
        raise SetupError(str(err)) from None


def read_passwords(users_dir: Path, principals: Sequence[str]) -> dict[str, str]:
    """principal -> the password in users_dir/<principal>.password (those that exist)."""
    out = {}
    for principal in principals:
        path = users_dir / f"{principal}.password"
        if path.is_file():
            out[principal] = path.read_text().strip()
    return out


@dataclass(frozen=True)
class SetupSettings:
    bootstrap_servers: str = setting("localhost:9092", help="Kafka bootstrap servers (admin)")
    users_dir: Path | None = setting(
        None,
        help="directory of <principal>.password files: a SCRAM-SHA-512 user is upserted "
        "for each (unset: users are left as they are)",
    )
    timeout: float = setting(30.0, type=positive_float, help="seconds each step may take")
    kafka: KafkaSecurity = section(KafkaSecurity, GROUP)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(
        SetupSettings,
        "KAFKA_SETUP",
        argv,
        prog="kafka_setup",
        description="Create the pipeline's topics, SCRAM users and ACLs (idempotent); run "
        "it as a Kafka super user.",
    )
    principals = [*PIPELINE_ACCESS, "admin"]
    passwords = read_passwords(args.users_dir, principals) if args.users_dir else {}
    try:
        setup(
            {"bootstrap.servers": args.bootstrap_servers, **args.kafka.librdkafka_config()},
            passwords,
            timeout=args.timeout,
        )
    except SetupError as err:
        print(f"kafka_setup: {err}", file=sys.stderr)
        return 1
    print(
        f"kafka_setup: {len(TOPICS)} topics, {len(acl_bindings(PIPELINE_ACCESS))} ACLs, "
        f"{len(passwords)} SCRAM users on {args.bootstrap_servers}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
