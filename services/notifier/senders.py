"""Sending one message to one destination: HTTP POST of JSON (webhook, Slack) or SMTP with
STARTTLS (email). Each call either returns (the receiver accepted it) or raises SendError.

Why the Idempotency-Key header on every request: the outbox marks a notification sent
only after the receiver answered, so a crash in between resends it once with the same
key, and a receiver that keeps keys can drop the copy.
"""

from __future__ import annotations

import json
import smtplib
import ssl
import urllib.error
import urllib.request
from email.message import EmailMessage
from typing import Any

from services.notifier.destinations import Destination
from services.notifier.messages import IDEMPOTENCY_HEADER


class SendError(Exception):
    """The destination did not accept the message; `retryable` says whether to try again."""

    def __init__(self, detail: str, retryable: bool = True) -> None:
        super().__init__(detail)
        self.retryable = retryable


def post_json(dest: Destination, body: dict[str, Any], key: str) -> None:
    request = urllib.request.Request(
        dest.url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", IDEMPOTENCY_HEADER: key},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=dest.timeout_s) as response:
            response.read()
    except urllib.error.HTTPError as err:
        # 4xx other than 408/429 will not get better by retrying (bad URL, revoked hook)
        retryable = err.code >= 500 or err.code in (408, 429)
        raise SendError(f"{dest.name}: HTTP {err.code}", retryable) from None
    except (urllib.error.URLError, OSError) as err:
        raise SendError(f"{dest.name}: {getattr(err, 'reason', err)}") from None


def send_email(dest: Destination, message: EmailMessage) -> None:
    """SMTP with STARTTLS (unless the destination turns it off), the server's certificate
    checked against the system CAs or the destination's ca_file, then LOGIN if a username
    is set: the password never crosses the wire in clear."""
    try:
        with smtplib.SMTP(dest.smtp_host, dest.smtp_port, timeout=dest.timeout_s) as smtp:
            if dest.starttls:
                smtp.starttls(context=ssl.create_default_context(cafile=dest.ca_file or None))
            if dest.username:
                smtp.login(dest.username, dest.password)
            smtp.send_message(message)
    except smtplib.SMTPResponseException as err:
        # 4xx is "try again later"; 5xx (bad recipient, login refused) will not improve
        retryable = 400 <= err.smtp_code < 500
        raise SendError(f"{dest.name}: SMTP {err.smtp_code}", retryable) from None
    except (smtplib.SMTPException, OSError) as err:
        raise SendError(f"{dest.name}: {err}") from None
