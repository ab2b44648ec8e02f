"""Start-up checks shared by the Kafka services: the broker answers and the topics exist.

Why: a service pointed at the wrong broker or a missing topic must say so in one clear
line and exit with EXIT_STARTUP, not hang or, worse, auto-create a topic. Listing all
topics never auto-creates one (a metadata request for a single unknown topic can).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

EXIT_STARTUP = 2  # unreachable broker or a missing topic


class StartupError(Exception):
    """The service cannot start; the message says why and what to do."""


def require_topics(
    client: Any, topics: Sequence[str], bootstrap: str, timeout: float
) -> dict[str, int]:
    """Partitions of each topic, via a confluent-kafka client's `list_topics`; raises
    StartupError naming the broker or the missing topic."""
    from confluent_kafka import KafkaException

    try:
        metadata = client.list_topics(timeout=timeout)
    except KafkaException as err:
        raise StartupError(
            f"cannot reach Kafka at {bootstrap} within {timeout:g} s ({err.args[0]}); "
            "check --bootstrap-servers / KAFKA_BOOTSTRAP_SERVERS or start the local stack"
        ) from None
    partitions = {}
    for topic in topics:
        found = metadata.topics.get(topic)
        if found is None or found.error is not None:
            raise StartupError(
                f"topic {topic} does not exist on {bootstrap}; create it or run the local stack"
            )
        partitions[topic] = len(found.partitions)
    return partitions
