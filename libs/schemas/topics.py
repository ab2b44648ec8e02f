"""The pipeline's Kafka topics (docs/design.md) and how many partitions each gets.

Why here: the local stack, the tests, the Kafka image and every service's default flags
name the same topics; the partition count is the unit of parallelism for the detector
and the sink, and the dead-letter topics need only one.
"""

from __future__ import annotations

TRANSACTIONS_TOPIC = "transactions"
ALERTS_TOPIC = "fraud_alerts"
TRANSACTIONS_DLQ_TOPIC = "transactions.dlq"
ALERTS_DLQ_TOPIC = "fraud_alerts.dlq"
# Notifications the notifier gave up on (services/notifier).
NOTIFICATIONS_DLQ_TOPIC = "notifications.dlq"

TOPICS: dict[str, int] = {
    TRANSACTIONS_TOPIC: 3,
    ALERTS_TOPIC: 3,
    TRANSACTIONS_DLQ_TOPIC: 1,
    ALERTS_DLQ_TOPIC: 1,
    NOTIFICATIONS_DLQ_TOPIC: 1,
}
