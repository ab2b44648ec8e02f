"""The pipeline's Kafka topics (DESIGN.md) and how many partitions each gets.

Why here: the local stack, the tests and the Kafka image all create the same topics;
the partition count is the unit of parallelism for the detector and the sink, and the
dead-letter topics need only one.
"""

from __future__ import annotations

TOPICS: dict[str, int] = {
    "transactions": 3,
    "fraud_alerts": 3,
    "transactions.dlq": 1,
    "fraud_alerts.dlq": 1,
}
