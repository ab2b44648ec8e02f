"""What a notification says, per destination kind: the generic JSON webhook body, Slack
blocks, an email; and the digest that stands for the alerts a rate limit held back.

Why one module: the three kinds say the same things (user, window, score, flags,
reasons, a link to the rows) and a digest must account for every alert it folds in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

import orjson

from libs.schemas.alert import Alert, alert_from_dict
from libs.schemas.codec import format_timestamp

IDEMPOTENCY_HEADER = "Idempotency-Key"
FLAGS = ("high_value", "location_change", "high_frequency")


@dataclass(frozen=True)
class Pending:
    """One recorded intent: tell `destination` about `alert` at `score`."""

    destination: str
    alert: Alert

    @property
    def key(self) -> str:
        """user_id/window_start/score: the same for every resend of this notification."""
        a = self.alert
        return f"{a.user_id}/{format_timestamp(a.window_start)}/{a.fraud_score}"


def alert_json(alert: Alert) -> dict[str, Any]:
    from libs.schemas.alert import alert_to_json

    return orjson.loads(alert_to_json(alert))


def alert_of_json(obj: dict[str, Any]) -> Alert:
    return alert_from_dict(obj)


def rows_link(template: str, alert: Alert) -> str:
    if not template:
        return ""
    return template.format(user_id=alert.user_id, window_start=format_timestamp(alert.window_start))


def flags(alert: Alert) -> list[str]:
    return [name for name in FLAGS if getattr(alert, name)]


def webhook_body(item: Pending, rows_url: str) -> dict[str, Any]:
    return {
        "kind": "fraud_alert",
        "idempotency_key": item.key,
        "alert": alert_json(item.alert),
        "flags": flags(item.alert),
        "rows_url": rows_link(rows_url, item.alert),
    }


def digest_webhook_body(items: Sequence[Pending], rows_url: str) -> dict[str, Any]:
    return {
        "kind": "fraud_alert_digest",
        "idempotency_key": digest_key(items),
        "count": len(items),
        "alerts": [webhook_body(i, rows_url) for i in items],
    }


def digest_key(items: Sequence[Pending]) -> str:
    return "digest:" + ",".join(sorted(i.key for i in items))[:900]


def _window(alert: Alert) -> str:
    return f"{format_timestamp(alert.window_start)} – {format_timestamp(alert.window_end)}"


def slack_body(item: Pending, rows_url: str) -> dict[str, Any]:
    a = item.alert
    link = rows_link(rows_url, a)
    fields = [
        {"type": "mrkdwn", "text": f"*User*\n{a.user_id}"},
        {"type": "mrkdwn", "text": f"*Window*\n{_window(a)}"},
        {"type": "mrkdwn", "text": f"*Score*\n{a.fraud_score}"},
        {"type": "mrkdwn", "text": f"*Flags*\n{', '.join(flags(a)) or 'none'}"},
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": f"Fraud alert: {a.user_id}"}},
        {"type": "section", "fields": fields},
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": "\n".join(f"• {r}" for r in a.reasons) or "-"},
        },
    ]
    if link:
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"<{link}|alert rows>"}]}
        )
    text = f"Fraud alert {a.user_id} score {a.fraud_score} ({', '.join(flags(a))})"
    return {"text": text, "blocks": blocks}


def slack_digest_body(items: Sequence[Pending], rows_url: str) -> dict[str, Any]:
    lines = [
        f"• {i.alert.user_id} {format_timestamp(i.alert.window_start)} score "
        f"{i.alert.fraud_score} ({', '.join(flags(i.alert))})"
        for i in items
    ]
    text = f"{len(items)} more fraud alerts (rate limit reached)"
    return {
        "text": text,
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": text}},
            # Slack caps a text block at 3000 characters: split the list
            *(
                {
                    "type": "section",
                    "text": {"type": "mrkdwn", "text": "\n".join(lines[k : k + 25])},
                }
                for k in range(0, len(lines), 25)
            ),
        ],
    }


def email(item: Pending, sender: str, recipients: Sequence[str], rows_url: str) -> EmailMessage:
    a = item.alert
    msg = EmailMessage()
    msg["Subject"] = f"Fraud alert: {a.user_id} score {a.fraud_score}"
    msg["From"], msg["To"] = sender, ", ".join(recipients)
    msg["Message-ID"] = make_msgid(idstring=item.key.replace("/", ".").replace(":", ""))
    msg[IDEMPOTENCY_HEADER] = item.key
    link = rows_link(rows_url, a)
    msg.set_content(
        f"User: {a.user_id}\nWindow: {_window(a)}\nScore: {a.fraud_score}\n"
        f"Flags: {', '.join(flags(a)) or 'none'}\nReasons:\n"
        + "".join(f"  - {r}\n" for r in a.reasons)
        + (f"Rows: {link}\n" if link else "")
    )
    return msg


def digest_email(
    items: Sequence[Pending], sender: str, recipients: Sequence[str], rows_url: str
) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = f"{len(items)} more fraud alerts (rate limit reached)"
    msg["From"], msg["To"] = sender, ", ".join(recipients)
    msg[IDEMPOTENCY_HEADER] = digest_key(items)
    msg.set_content(
        "".join(
            f"{i.alert.user_id} {_window(i.alert)} score {i.alert.fraud_score} "
            f"{rows_link(rows_url, i.alert)}\n"
            for i in items
        )
    )
    return msg
