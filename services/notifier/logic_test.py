"""The notifier's pure parts: the destinations file, message content, the rate limit."""

from __future__ import annotations

import json

import pytest

from infra.testing.alerts import sample_alert
from services.notifier import destinations, messages
from services.notifier.destinations import ConfigError, RateLimit
from services.notifier.limiter import Window


def write(tmp_path, text: str, name: str = "n.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_destinations_with_secrets_from_env_and_files(tmp_path):
    secret = write(tmp_path, "hunter2\n", "pw")
    path = write(
        tmp_path,
        f"""
rows_url: "https://db.example/alerts?user={{user_id}}&window={{window_start}}"
destinations:
  - {{name: hook, kind: webhook, url: "http://127.0.0.1:1/x"}}
  - {{name: slack, kind: slack, url_env: SLACK_URL, rate_limit: {{messages: 3, per_seconds: 10}}}}
  - name: mail
    kind: email
    smtp_host: smtp.example
    sender: fraud@example
    recipients: [a@example]
    username: fraud
    password_file: {secret}
""",
    )
    config = destinations.load(path, {"SLACK_URL": "https://hooks.slack.example/T/B/X"})
    _hook, slack, mail = config.destinations
    assert slack.url == "https://hooks.slack.example/T/B/X"
    assert slack.rate_limit == RateLimit(3, 10.0)
    assert mail.password == "hunter2" and mail.starttls and mail.smtp_port == 587
    assert "hunter2" not in repr(mail) and "hooks" not in repr(slack)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("destinations: []", "non-empty"),
        ("destinations: [{name: a, kind: pager}]", "kind='pager'"),
        ("destinations: [{name: a, kind: slack, url_env: NOPE}]", "NOPE, which is not set"),
        ("destinations: [{name: a, kind: webhook, url: 'ftp://x'}]", "http(s)"),
        ("destinations: [{name: a, kind: email, smtp_host: h}]", "sender and recipients"),
        ("destinations: [{name: a, kind: webhook, url: 'http://x', urll: 1}]", "unknown"),
        ("[1, 2]", "a mapping"),
    ],
)
def test_bad_destinations_say_what_is_wrong(tmp_path, text, says):
    with pytest.raises(ConfigError, match=None) as err:
        destinations.load(write(tmp_path, text), {})
    assert says in str(err.value)


def test_json_file_is_read_as_json(tmp_path):
    path = write(
        tmp_path,
        json.dumps({"destinations": [{"name": "h", "kind": "webhook", "url": "http://x/"}]}),
        "n.json",
    )
    assert destinations.load(path, {}).destinations[0].name == "h"


def test_message_content():
    alert = sample_alert("user-7", fraud_score=4, location_change=True)
    item = messages.Pending("slack", alert)
    assert item.key == "user-7/2026-11-28T17:00:00Z/4"
    rows = "https://db/{user_id}/{window_start}"
    slack = messages.slack_body(item, rows)
    text = json.dumps(slack)
    for part in (
        "user-7",
        "high_value, location_change",
        "max_amount 4000.00",
        "https://db/user-7/2026-11-28T17:00:00Z",
    ):
        assert part in text, part
    hook = messages.webhook_body(item, rows)
    assert hook["alert"]["user_id"] == "user-7" and hook["idempotency_key"] == item.key
    mail = messages.email(item, "f@x", ["a@x"], rows)
    assert mail[messages.IDEMPOTENCY_HEADER] == item.key and "Score: 4" in mail.get_content()
    digest = messages.digest_webhook_body([item, messages.Pending("slack", sample_alert("u2"))], "")
    assert digest["count"] == 2 and len(digest["alerts"]) == 2


def test_rate_limit_sends_the_budget_then_one_digest_next_period():
    window = Window(RateLimit(messages=3, per_seconds=10))
    assert window.plan(100.0, waiting=7) == (3, False)
    window.spent(3)
    assert window.plan(101.0, waiting=4) == (0, False)  # budget spent: held
    assert window.plan(109.9, waiting=4) == (0, False)
    assert window.plan(110.0, waiting=4) == (0, True)  # next period: the digest
    window.digest_sent()
    assert window.plan(111.0, waiting=2) == (2, False)  # the digest used 1 of 3


def test_rate_limit_does_nothing_under_the_budget():
    window = Window(RateLimit(messages=5, per_seconds=1))
    assert window.plan(0.5, waiting=2) == (2, False)
    window.spent(2)
    assert window.plan(1.5, waiting=1) == (1, False)
