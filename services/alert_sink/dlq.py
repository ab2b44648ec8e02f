"""Dead letters of the sink: a `fraud_alerts` message it cannot store becomes a libs/dlq
letter, and a batch's letters are confirmed before its offsets are committed.

Why: bad input must never stop the sink, and it must not vanish either. The DLQ message
keeps the original key and bytes (cut past the producer's limit, with `original-size` and
`original-sha256`) and says, in headers, what was wrong and where it came from, so it can
be inspected and replayed (the header contract of `transactions.dlq`, one publisher for
both). A failed delivery fails the attempt; the sink retries the batch and re-sends only
the letters Kafka did not confirm.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from libs.dlq.dlq import DeadLetter, DeadLetterPublisher
from services.alert_sink.batching import SourceMessage

# Reason for an alert that decoded but that PostgreSQL (or the driver) refused, e.g. an
# index row too large (SQLSTATE 54000) or a NUL character in a text field; the parse
# reasons come from libs.schemas.fields.Reason.
DB_REJECTED = "db_rejected"


def dead_letter(source: SourceMessage, reason: str, detail: str) -> DeadLetter:
    """The letter for a consumed message: its key and bytes, why, and where it was."""
    return DeadLetter(
        source.key, source.value, reason, detail, source.topic, source.partition, source.offset
    )


class DlqDelivery:
    """Delivery state of one batch's dead letters, so a retry never re-sends a confirmed one.

    `on_delivered(reason)` is called once per confirmed letter (the DLQ metric).
    """

    def __init__(self, letters: Sequence[DeadLetter], on_delivered: Callable[[str], None]) -> None:
        self.letters = list(letters)
        self.confirmed = [False] * len(self.letters)
        self.on_delivered = on_delivered

    @property
    def done(self) -> bool:
        return all(self.confirmed)

    def send(self, publisher: DeadLetterPublisher) -> None:
        """Send what is not confirmed yet and wait for Kafka; libs.dlq.DlqError if any
        letter is still unconfirmed at the publisher's deadline (none stays queued)."""
        for i, letter in enumerate(self.letters):
            if not self.confirmed[i]:
                publisher.send(letter, self._callback(i))
        publisher.flush()

    def _callback(self, i: int) -> Callable[[DeadLetter], None]:
        def confirmed(letter: DeadLetter) -> None:
            if not self.confirmed[i]:
                self.confirmed[i] = True
                self.on_delivered(letter.reason)

        return confirmed
