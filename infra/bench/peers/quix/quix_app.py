"""Quix Streams 3.x peer: the detector's rules as a Quix Streams application.

Event-time tumbling windows of 60 s per user_id (the message key) with a 30 s grace
period (Quix's name for the watermark delay), per-window count, distinct countries, max
and total amount, scored with libs/scoring's rules. `.current()` emits every update of a
window, which is the detector's update mode; only versions scoring >= the alert
threshold are written. A transaction_id seen again for the same user within window plus
watermark counts once (state per key). Event time is the record's `event_time`, not the
Kafka timestamp, as in the detector.

    quix_app --bootstrap-servers H:P --input-topic T --output-topic O --state-dir D
"""

from __future__ import annotations

import argparse
import sys
from decimal import Decimal

from quixstreams import Application

from infra.bench.peers.contract import WATERMARK_MS, WINDOW_MS, iso_ms, scoring, to_ms
from libs.scoring.rules import WindowAggregates, evaluate


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="quix_app", description=__doc__)
    parser.add_argument("--bootstrap-servers", required=True)
    parser.add_argument("--input-topic", required=True)
    parser.add_argument("--output-topic", required=True)
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--group", default="peers-quix")
    return parser.parse_args(argv)


def event_ms(value, _headers, _timestamp, _timestamp_type) -> int:
    return to_ms(value["event_time"])


def first_seen(value: dict, state) -> bool:
    """False for a transaction_id this user already sent within window + watermark."""
    seen: dict[str, int] = state.get("seen", {})
    at, tid = to_ms(value["event_time"]), value["transaction_id"]
    if tid in seen:
        return False
    horizon = at - WINDOW_MS - WATERMARK_MS
    seen = {t: ms for t, ms in seen.items() if ms >= horizon}
    seen[tid] = at
    state.set("seen", seen)
    return True


def initial(value: dict) -> dict:
    return {
        "user": value["user_id"],
        "n": 1,
        "countries": [value["country"]],
        "max": value["amount"],
        "total": value["amount"],
        "last": to_ms(value["event_time"]),
    }


def add(agg: dict, value: dict) -> dict:
    agg["n"] += 1
    if value["country"] not in agg["countries"]:
        agg["countries"].append(value["country"])
    agg["max"] = max(agg["max"], value["amount"])
    agg["total"] += value["amount"]
    agg["last"] = max(agg["last"], to_ms(value["event_time"]))
    return agg


def make_alert(config):
    def alert(row: dict) -> dict:
        agg = row["value"]
        aggregates = WindowAggregates(
            txn_count=agg["n"],
            distinct_countries=len(agg["countries"]),
            max_amount=Decimal(str(agg["max"])),
            total_amount=Decimal(str(round(agg["total"], 2))),
        )
        result = evaluate(aggregates, config)
        return {
            "user_id": agg["user"],
            "window_start": iso_ms(row["start"]),
            "window_end": iso_ms(row["end"]),
            "txn_count": aggregates.txn_count,
            "distinct_countries": aggregates.distinct_countries,
            "max_amount": agg["max"],
            "total_amount": round(agg["total"], 2),
            "fraud_score": result.score if result.is_alert else -1,
            "last_event_time": iso_ms(agg["last"]),
        }

    return alert


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = scoring()
    app = Application(
        broker_address=args.bootstrap_servers,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        state_dir=args.state_dir,
        loglevel="WARNING",
    )
    source = app.topic(
        args.input_topic,
        key_deserializer="str",
        value_deserializer="json",
        timestamp_extractor=event_ms,
    )
    sink = app.topic(args.output_topic, key_serializer="str", value_serializer="json")
    sdf = app.dataframe(source)
    sdf = sdf.filter(first_seen, stateful=True)
    sdf = (
        sdf.tumbling_window(duration_ms=WINDOW_MS, grace_ms=WATERMARK_MS)
        .reduce(reducer=add, initializer=initial)
        .current()
    )
    sdf = sdf.apply(make_alert(config)).filter(lambda a: a["fraud_score"] >= 0)  # alerts only
    sdf.to_topic(sink)
    app.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
