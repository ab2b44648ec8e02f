"""The notifier's state in PostgreSQL: an outbox of notifications and the consumer's
offsets, written in one transaction.

Why here and not in Kafka's committed offsets: "record the intent" and "move past the
message" must be one atomic step, or a crash between them either loses a notification
(offset first) or records it twice (intent first, with no key to merge on). The table is
keyed by (destination, user_id, window_start): one row per alert key and destination,
whose `score` only rises, so each key is notified once and again only when its score
grows. A row is `pending` until the destination accepted it, then `sent`; `dead` after
the last retry (and dead-lettered). The tables are made by the database setup step; the
notifier checks at start-up that they exist.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import orjson
import psycopg2

from services.notifier.messages import Pending, alert_json, alert_of_json

# Made by the database setup step (infra/components/postgres_setup.py, NOTIFIER_DDL),
# not here: the notifier's role (`fraud_notifier`) may only SELECT, INSERT and UPDATE them.
TABLES = ("notifications", "notifier_offsets")

_RECORD = """
INSERT INTO notifications
    (destination, user_id, window_start, score, alert, source_partition, source_offset)
VALUES (%s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (destination, user_id, window_start) DO UPDATE SET
    score = EXCLUDED.score, alert = EXCLUDED.alert, status = 'pending', attempts = 0,
    next_attempt_at = now(), last_error = NULL, sent_at = NULL, via = NULL,
    source_partition = EXCLUDED.source_partition, source_offset = EXCLUDED.source_offset
WHERE notifications.score < EXCLUDED.score
"""


@dataclass(frozen=True)
class Row:
    item: Pending
    attempts: int
    source_partition: int
    source_offset: int


class Outbox:
    def __init__(self, dsn: str, group_id: str) -> None:
        self.dsn, self.group_id = dsn, group_id
        self.conn = psycopg2.connect(dsn)
        with self.conn, self.conn.cursor() as cur:
            cur.execute("SELECT " + ", ".join(["to_regclass(%s)"] * len(TABLES)), TABLES)
            missing = [t for t, oid in zip(TABLES, cur.fetchone(), strict=True) if oid is None]
        if missing:
            self.conn.close()
            raise RuntimeError(
                f"table(s) {', '.join(missing)} do not exist: the database setup step creates "
                "them (infra/components/postgres_setup.py; the postgres image, //infra:local "
                "and the tests' PostgresServer run it)"
            )

    def offsets(self, topic: str) -> dict[int, int]:
        with self.conn, self.conn.cursor() as cur:
            cur.execute(
                "SELECT partition, next_offset FROM notifier_offsets "
                "WHERE group_id = %s AND topic = %s",
                (self.group_id, topic),
            )
            return dict(cur.fetchall())

    def record(
        self,
        intents: Iterable[tuple[Pending, int, int]],
        topic: str,
        next_offsets: dict[int, int],
    ) -> int:
        """Record (notification, partition, offset) intents and the offsets consumed, in
        one transaction; returns how many intents were new or raised a score."""
        changed = 0
        with self.conn, self.conn.cursor() as cur:
            for item, partition, offset in intents:
                a = item.alert
                cur.execute(
                    _RECORD,
                    (
                        item.destination,
                        a.user_id,
                        a.window_start,
                        a.fraud_score,
                        orjson.dumps(alert_json(a)).decode(),
                        partition,
                        offset,
                    ),
                )
                changed += cur.rowcount
            for partition, offset in next_offsets.items():
                cur.execute(
                    "INSERT INTO notifier_offsets VALUES (%s, %s, %s, %s) "
                    "ON CONFLICT (group_id, topic, partition) DO UPDATE "
                    "SET next_offset = EXCLUDED.next_offset",
                    (self.group_id, topic, partition, offset),
                )
        return changed

    def due(self, destination: str, limit: int) -> list[Row]:
        with self.conn, self.conn.cursor() as cur:
            cur.execute(
                "SELECT alert, attempts, source_partition, source_offset FROM notifications "
                "WHERE destination = %s AND status = 'pending' AND next_attempt_at <= now() "
                "ORDER BY recorded_at, user_id, window_start LIMIT %s",
                (destination, limit),
            )
            return [
                Row(Pending(destination, alert_of_json(alert)), attempts, part, off)
                for alert, attempts, part, off in cur.fetchall()
            ]

    def count_due(self, destination: str) -> int:
        with self.conn, self.conn.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM notifications WHERE destination = %s "
                "AND status = 'pending' AND next_attempt_at <= now()",
                (destination,),
            )
            return cur.fetchone()[0]

    def _update(self, rows: Sequence[Row], sql: str, args: tuple) -> None:
        # the score guard: a higher version recorded meanwhile stays pending
        with self.conn, self.conn.cursor() as cur:
            for row in rows:
                a = row.item.alert
                cur.execute(
                    f"UPDATE notifications SET {sql} WHERE destination = %s AND user_id = %s "
                    "AND window_start = %s AND score = %s",
                    (*args, row.item.destination, a.user_id, a.window_start, a.fraud_score),
                )

    def mark_sent(self, rows: Sequence[Row], via: str) -> None:
        self._update(rows, "status = 'sent', sent_at = now(), via = %s", (via,))

    def mark_retry(self, rows: Sequence[Row], error: str, at: datetime) -> None:
        self._update(
            rows,
            "attempts = attempts + 1, last_error = %s, next_attempt_at = %s",
            (error[:500], at),
        )

    def mark_dead(self, rows: Sequence[Row], error: str) -> None:
        self._update(
            rows, "status = 'dead', attempts = attempts + 1, last_error = %s", (error[:500],)
        )

    def close(self) -> None:
        self.conn.close()
