"""Kafka header names of the contracts (DESIGN.md, Topics).

Ground truth rides on `transactions` in headers, never in the value, so the detector cannot
read it by accident; the DLQ headers say why and where a record was refused.
"""

FRAUD_LABEL_HEADER = "fraud-label"  # "1" fraud, "0" normal
FRAUD_PATTERN_HEADER = "fraud-pattern"  # pattern name, empty for normal traffic

DLQ_ERROR_HEADER = "error"  # "<reason>: <detail>"
DLQ_SOURCE_TOPIC_HEADER = "source-topic"
DLQ_SOURCE_PARTITION_HEADER = "source-partition"
DLQ_SOURCE_OFFSET_HEADER = "source-offset"
