"""Kafka header names of the contracts (docs/design.md, Topics).

Ground truth rides on `transactions` in headers, never in the value, so the detector cannot
read it by accident; the DLQ headers say why and where a record was refused.
"""

FRAUD_LABEL_HEADER = "fraud-label"  # "1" fraud, "0" normal
FRAUD_PATTERN_HEADER = "fraud-pattern"  # pattern name, empty for normal traffic

DLQ_ERROR_HEADER = "error"  # "<reason>: <detail>"
DLQ_SOURCE_TOPIC_HEADER = "source-topic"
DLQ_SOURCE_PARTITION_HEADER = "source-partition"
DLQ_SOURCE_OFFSET_HEADER = "source-offset"
DLQ_ERROR_REASON_HEADER = "error-reason"  # the bare reason token, for routing and counting
# A dead letter whose value was cut to fit the producer's limit: the full original's size
# in bytes and its SHA-256 (hex), so the original can be found and checked.
DLQ_ORIGINAL_SIZE_HEADER = "original-size"
DLQ_ORIGINAL_SHA256_HEADER = "original-sha256"
