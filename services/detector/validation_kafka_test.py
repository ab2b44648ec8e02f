"""The validator's dead letters on a real broker: a 2 MB transaction (accepted by Kafka
lz4-compressed, refused as `too_large`) reaches `transactions.dlq` cut, with the size and
SHA-256 of the original; with the broker unreachable the batch fails within its deadline,
and the next task's letters are the only ones that ever arrive."""

from __future__ import annotations

import hashlib
import time

import pyarrow as pa
import pytest

from infra.components.kafka import KafkaBroker
from infra.components.kafka_io import TopicReader, end_offsets
from infra.components.process import free_port
from libs.dlq.dlq import DEFAULT_MAX_VALUE_BYTES, DlqError
from services.detector.validation import DeadLetters, validate_batches

DLQ = "transactions.dlq"


def _batch(values: list[bytes], first_offset: int = 0) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict(
        {
            "key": [b"u%d" % i for i in range(len(values))],
            "value": values,
            "partition": pa.array([1] * len(values), pa.int32()),
            "offset": pa.array(range(first_offset, first_offset + len(values)), pa.int64()),
        }
    )


def _read(bootstrap: str, count: int) -> list:
    reader = TopicReader(bootstrap, DLQ)
    try:
        reader.wait_for(lambda records: len(records) >= count, 60, f"{count} dead letters")
    finally:
        reader.close()
    return reader.records


def test_a_2mb_transaction_is_dead_lettered_cut(tmp_path):
    kafka = KafkaBroker(data_dir=tmp_path / "kafka")
    kafka.start()
    try:
        kafka.create_topics({DLQ: 1})
        huge = b'{"user_id": "u0", "pad": "' + b"x" * 2_000_000 + b'"}'
        target = DeadLetters(kafka.bootstrap, DLQ, "transactions", flush_timeout_s=30)
        (out,) = list(validate_batches(iter([_batch([huge, b"not json"], 40)]), 65536, target))
        assert out.column("error_reason").to_pylist() == ["too_large", "not_json"]
        records = _read(kafka.bootstrap, 2)
        by_offset = {int(r.headers["source-offset"]): r for r in records}
        cut = by_offset[40]
        assert cut.key == b"u0" and cut.value == huge[:DEFAULT_MAX_VALUE_BYTES]
        assert cut.headers["original-size"] == str(len(huge)).encode()
        assert cut.headers["original-sha256"] == hashlib.sha256(huge).hexdigest().encode()
        assert cut.headers["error-reason"] == b"too_large"
        assert cut.headers["error"].startswith(b"too_large: ")
        assert cut.headers["source-topic"] == b"transactions"
        assert cut.headers["source-partition"] == b"1"
        whole = by_offset[41]
        assert whole.value == b"not json" and "original-size" not in whole.headers
    finally:
        kafka.stop()


def test_unreachable_broker_fails_the_task_and_leaks_nothing_into_the_next(tmp_path):
    port = free_port()
    target = DeadLetters(f"127.0.0.1:{port}", DLQ, "transactions", flush_timeout_s=2)
    started = time.monotonic()
    with pytest.raises(DlqError, match=r"dead letters not confirmed within 2 s"):
        list(validate_batches(iter([_batch([b"old-1", b"old-2", b"old-3"])]), 65536, target))
    took = time.monotonic() - started
    print(f"the task failed after {took:.2f} s")
    assert took < 8

    kafka = KafkaBroker(data_dir=tmp_path / "kafka", port=port)
    kafka.start()
    try:
        kafka.create_topics({DLQ: 1})
        # The next task on this worker: same target, so the same (cached) publisher.
        (out,) = list(validate_batches(iter([_batch([b"new-1"], 100)]), 65536, target))
        assert out.column("error_reason").to_pylist() == ["not_json"]
        records = _read(kafka.bootstrap, 1)
        assert [r.value for r in records] == [b"new-1"]
        assert end_offsets(kafka.bootstrap, DLQ) == {0: 1}
    finally:
        kafka.stop()
