"""The transport limit: a bare confluent-kafka consumer that reads and parses (orjson)
every transaction and does nothing else.

Why: it bounds what any engine could reach on this broker and machine from Python. It
computes no aggregates; it forwards only the benchmark's probe transactions (as
alert-shaped records), so the driver can tell when it has read everything that came
before them, exactly as it does for the real engines.

    raw_consumer --bootstrap-servers H:P --input-topic T --output-topic O
"""

from __future__ import annotations

import argparse
import signal
import sys

import orjson
from confluent_kafka import Consumer, Producer

from infra.bench.peers.contract import PROBE_PREFIX, WINDOW_MS, to_ms


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="raw_consumer", description=__doc__)
    parser.add_argument("--bootstrap-servers", required=True)
    parser.add_argument("--input-topic", required=True)
    parser.add_argument("--output-topic", required=True)
    parser.add_argument("--group", default="peers-raw")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap_servers,
            "group.id": args.group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": True,
            "fetch.wait.max.ms": 10,
        }
    )
    producer = Producer({"bootstrap.servers": args.bootstrap_servers, "linger.ms": 0})
    consumer.subscribe([args.input_topic])
    parsed = 0
    while not stop:
        for msg in consumer.consume(1000, timeout=0.1):
            if msg.error() is not None or msg.value() is None:
                continue
            try:
                doc = orjson.loads(msg.value())
            except orjson.JSONDecodeError:
                continue
            parsed += 1
            user = doc.get("user_id", "") if isinstance(doc, dict) else ""
            if isinstance(user, str) and user.startswith(PROBE_PREFIX):
                at = to_ms(doc["event_time"])
                alert = {
                    "user_id": user,
                    "window_start": at - at % WINDOW_MS,
                    "fraud_score": 0,
                    "last_event_time": at,
                    "parsed": parsed,
                }
                producer.produce(args.output_topic, orjson.dumps(alert), user.encode())
                producer.poll(0)
    consumer.close()
    producer.flush(10)
    print(f"raw_consumer: parsed {parsed} records", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
