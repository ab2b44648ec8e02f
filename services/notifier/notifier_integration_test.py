"""The notifier binary against a real Kafka and PostgreSQL and a loopback webhook receiver
(standing in for a generic webhook and a Slack incoming webhook): exactly one notification
per qualifying alert, a receiver outage, a SIGKILL mid-stream, a burst over the rate limit.

Every test gets its own topic, consumer group and destination names, so they share one
broker and one database.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import signal
import ssl
import statistics
import subprocess
import time
from collections import Counter
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import psycopg2
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from confluent_kafka import Producer

from infra.components.kafka_io import produce, read_records
from infra.components.process import free_port
from infra.components.wait import wait_until
from infra.components.webhook_receiver import Received, WebhookReceiver
from infra.testing.alerts import alert_stream, sample_alert, stream_alert
from infra.testing.sink import start_kafka, start_postgres
from libs.schemas.alert import Alert, alert_to_json
from libs.schemas.codec import format_timestamp

KEY_HEADER = "Idempotency-Key"


@pytest.fixture(scope="module")
def infra(tmp_path_factory):
    kafka = start_kafka(tmp_path_factory.mktemp("kafka"), {})
    postgres = start_postgres()
    yield kafka, postgres
    kafka.stop()
    postgres.destroy()


class Run:
    """One test's topic, group, destinations file and notifier processes."""

    def __init__(self, infra, tmp_path: Path, hook: WebhookReceiver, name: str, **limits):
        self.kafka, self.postgres = infra
        self.tmp, self.hook, self.name = tmp_path, hook, name
        self.topic = f"alerts-{name}"
        self.kafka.create_topics({self.topic: 3, f"dlq-{name}": 1})
        rate = {"messages": limits.get("messages", 1000), "per_seconds": limits.get("per", 60)}
        self.destinations = tmp_path / "notifier.yaml"
        self.destinations.write_text(
            json.dumps(
                {
                    "rows_url": "http://db.example/alerts/{user_id}/{window_start}",
                    "destinations": [
                        {
                            "name": f"{name}-hook",
                            "kind": "webhook",
                            "url": f"{hook.url}/hook",
                            "rate_limit": rate,
                        },
                        {
                            "name": f"{name}-slack",
                            "kind": "slack",
                            "url_env": "TEST_SLACK_URL",
                            "rate_limit": rate,
                        },
                    ],
                }
            )
        )
        self.procs: list[subprocess.Popen[bytes]] = []
        self.max_attempts = limits.get("max_attempts", 1000)

    def start(self) -> subprocess.Popen[bytes]:
        binary = os.path.abspath(os.environ["NOTIFIER_BIN"])
        log_dir = Path(os.environ.get("TEST_UNDECLARED_OUTPUTS_DIR", self.tmp))
        log = open(log_dir / f"notifier-{self.name}-{len(self.procs)}.log", "wb")  # noqa: SIM115
        args = [
            binary,
            f"--destinations={self.destinations}",
            f"--topic={self.topic}",
            f"--group-id=notifier-{self.name}",
            f"--dlq-topic=dlq-{self.name}",
            f"--bootstrap-servers={self.kafka.bootstrap}",
            f"--postgres-dsn={self.postgres.dsn}",
            f"--metrics-port={free_port()}",
            "--retry-initial-ms=100",
            "--retry-max-ms=500",
            f"--max-attempts={self.max_attempts}",
        ]
        env = {**os.environ, "TEST_SLACK_URL": f"{self.hook.url}/slack"}
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
        self.procs.append(proc)
        return proc

    def produce(self, alerts: list[Alert]) -> None:
        produce(
            self.kafka.bootstrap,
            self.topic,
            [(a.user_id.encode(), alert_to_json(a)) for a in alerts],
        )

    def got(self, kind: str) -> list[Received]:
        return self.hook.received(f"/{kind}")

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()


@pytest.fixture
def hook():
    with WebhookReceiver() as receiver:
        yield receiver


def key_of(alert: Alert) -> str:
    return f"{alert.user_id}/{format_timestamp(alert.window_start)}/{alert.fraud_score}"


def keys(received: list[Received]) -> list[str]:
    out: list[str] = []
    for r in received:
        body = r.body
        if body.get("kind") == "fraud_alert_digest":
            out += [a["idempotency_key"] for a in body["alerts"]]
        elif "idempotency_key" in body:
            out.append(body["idempotency_key"])
        else:  # slack: the header carries the key
            out.append(r.headers[KEY_HEADER])
    return out


def test_one_notification_per_qualifying_alert_with_its_content(infra, tmp_path, hook):
    run = Run(infra, tmp_path, hook, "seeded")
    rng = random.Random(20261202)
    # versions 1..4 of each key, shuffled, with duplicates: score 4 (high value + 2
    # countries) for all of them, so each key qualifies once at one score
    stream = alert_stream(rng, [f"u{i:02d}" for i in range(15)], windows=2, max_version=4)
    low = [sample_alert(f"low{i}", fraud_score=2) for i in range(5)]  # below --min-score 4
    run.start()
    try:
        run.produce(stream.messages + low)
        expected = {key_of(a) for a in stream.expected.values()}
        wait_until(
            lambda: (
                len(run.got("hook")) >= len(expected) and len(run.got("slack")) >= len(expected)
            ),
            120,
            "every alert notified",
            lambda: f"{len(run.got('hook'))}/{len(expected)}",
        )
        assert Counter(keys(run.got("hook"))) == Counter(expected)
        assert Counter(keys(run.got("slack"))) == Counter(expected)
        by_key = {a.user_id + format_timestamp(a.window_start): a for a in stream.expected.values()}
        for r in run.got("hook"):
            body = r.body
            alert = by_key[body["alert"]["user_id"] + body["alert"]["window_start"]]
            assert body["alert"]["fraud_score"] == alert.fraud_score == 4
            assert body["flags"] == ["high_value", "location_change"]
            assert body["rows_url"] == (
                f"http://db.example/alerts/{alert.user_id}/{format_timestamp(alert.window_start)}"
            )
            assert r.headers[KEY_HEADER] == body["idempotency_key"]
        for r in run.got("slack"):
            text = json.dumps(r.body)
            user, window, _ = r.headers[KEY_HEADER].split("/")
            assert user in text and window in text and "location_change" in text
            assert "http://db.example/alerts/" in text
        # a higher score notifies again; a replayed lower version does not
        first = next(iter(stream.expected.values()))
        higher = dataclasses.replace(first, fraud_score=5, high_frequency=True, version=9)
        run.produce([higher, first])
        wait_until(lambda: key_of(higher) in keys(run.got("hook")), 60, "score rise notified")
        marker = stream_alert("zz-marker", 0, 1)  # once this arrives, the replay was skipped
        run.produce([marker])
        wait_until(lambda: key_of(marker) in keys(run.got("hook")), 60, "marker notified")
        expected |= {key_of(higher), key_of(marker)}
        assert Counter(keys(run.got("hook"))) == Counter(expected)

        # latency in steady state (group joined, producer connected): one alert at a
        # time, from the produce call (acks=all) to the webhook's receipt
        producer = Producer({"bootstrap.servers": run.kafka.bootstrap, "linger.ms": 0})
        latency = []
        for i in range(20):
            alert = stream_alert(f"lat{i:02d}", 0, 1)
            started = time.time()
            producer.produce(run.topic, alert_to_json(alert), alert.user_id.encode())
            producer.flush(10)
            wait_until(lambda a=alert: key_of(a) in keys(run.got("hook")), 30, "notified")
            got = next(r for r in run.got("hook") if r.headers[KEY_HEADER] == key_of(alert))
            latency.append(got.at - started)
            expected.add(key_of(alert))
        latency.sort()
        p50, p95 = statistics.median(latency), latency[int(0.95 * (len(latency) - 1))]
        print(
            f"notification latency (alert produced -> webhook received), n={len(latency)}: "
            f"p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, max {latency[-1] * 1000:.0f} ms"
        )
        assert Counter(keys(run.got("hook"))) == Counter(expected)
    finally:
        run.stop()


def test_receiver_down_then_back_gets_everything_once(infra, tmp_path, hook):
    run = Run(infra, tmp_path, hook, "outage")
    alerts = [stream_alert(f"o{i}", 0, 1) for i in range(12)]
    hook.down = True
    run.start()
    try:
        run.produce(alerts)
        wait_until(lambda: hook.refused >= 30, 60, "retries against the dead receiver")
        hook.down = False
        expected = Counter(key_of(a) for a in alerts)
        wait_until(
            lambda: (
                Counter(keys(run.got("hook"))) == expected
                and Counter(keys(run.got("slack"))) == expected
            ),
            60,
            "everything after the outage",
            lambda: repr(Counter(keys(run.got("hook")))),
        )
    finally:
        run.stop()
    assert Counter(keys(run.got("hook"))) == expected  # nothing more after stopping


def test_sigkill_mid_stream_loses_and_repeats_nothing(infra, tmp_path, hook):
    run = Run(infra, tmp_path, hook, "crash")
    alerts = [stream_alert(f"k{i:03d}", 0, 1) for i in range(200)]
    expected = Counter(key_of(a) for a in alerts)
    first = run.start()
    try:
        run.produce(alerts[:100])
        wait_until(lambda: len(run.got("hook")) >= 30, 60, "some notified before the crash")
        first.send_signal(signal.SIGKILL)
        first.wait()
        run.produce(alerts[100:])
        run.start()
        wait_until(
            lambda: (
                set(keys(run.got("hook"))) == set(expected)
                and set(keys(run.got("slack"))) == set(expected)
            ),
            120,
            "every alert after the restart",
        )
    finally:
        run.stop()
    for kind in ("hook", "slack"):
        seen = Counter(keys(run.got(kind)))
        repeated = {k: n for k, n in seen.items() if n > 1}
        # at most the one notification in flight at the kill (sent, not yet marked), and
        # then with the same idempotency key: a receiver that keeps keys drops it
        assert sum(n - 1 for n in repeated.values()) <= 1, (kind, repeated)
        print(f"{kind}: {len(seen)} keys, resent after the SIGKILL: {repeated or 'none'}")


def test_burst_over_the_rate_limit_folds_the_rest_into_a_digest(infra, tmp_path, hook):
    limit, per = 3, 5.0
    run = Run(infra, tmp_path, hook, "burst", messages=limit, per=per)
    alerts = [stream_alert(f"b{i:02d}", 0, 1) for i in range(20)]
    expected = Counter(key_of(a) for a in alerts)
    run.start()
    try:
        run.produce(alerts)
        wait_until(
            lambda: Counter(keys(run.got("hook"))) == expected,
            60,
            "every alert, digest included",
            lambda: repr([r.body.get("kind") for r in run.got("hook")]),
        )
    finally:
        run.stop()
    messages = run.got("hook")
    digests = [m for m in messages if m.body["kind"] == "fraud_alert_digest"]
    singles = [m for m in messages if m.body["kind"] == "fraud_alert"]
    assert digests and all(d.body["count"] == len(d.body["alerts"]) for d in digests)
    periods = {int(m.at // per) for m in messages}
    assert len(singles) <= limit * len(periods), [m.body["kind"] for m in messages]
    assert len(messages) < len(alerts)
    print(
        f"burst of {len(alerts)}: {len(singles)} single messages + {len(digests)} digest(s) "
        f"of {[d.body['count'] for d in digests]}"
    )
    # the outbox accounts for each: sent individually or via a digest
    with psycopg2.connect(run.postgres.dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT via, count(*) FROM notifications WHERE destination = %s GROUP BY via",
            ("burst-hook",),
        )
        assert dict(cur.fetchall()) == {"alert": len(singles), "digest": len(alerts) - len(singles)}


def test_what_still_fails_after_the_last_attempt_is_dead_lettered(infra, tmp_path, hook):
    run = Run(infra, tmp_path, hook, "dead", max_attempts=3)
    alerts = [stream_alert(f"d{i}", 0, 1) for i in range(4)]
    hook.down = True  # never comes back
    run.start()
    try:
        run.produce(alerts)
        # two destinations (webhook, Slack) x 4 alerts, each after 3 attempts
        letters = read_records(run.kafka.bootstrap, f"dlq-{run.name}", 8, timeout=60)
    finally:
        run.stop()
    assert hook.refused == 8 * 3
    by_destination = Counter(r.text_headers["error"].split(" after ")[0] for r in letters)
    assert by_destination == {"undeliverable: dead-hook": 4, "undeliverable: dead-slack": 4}
    for record in letters:
        headers = record.text_headers
        assert "after 3 attempts: dead-" in headers["error"] and "HTTP 503" in headers["error"]
        assert headers["source-topic"] == run.topic
        body = json.loads(record.value)
        assert body["idempotency_key"] == key_of(
            next(a for a in alerts if a.user_id == body["alert"]["user_id"])
        )
    with psycopg2.connect(run.postgres.dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT status, attempts, count(*) FROM notifications WHERE destination LIKE 'dead-%%' "
            "GROUP BY status, attempts"
        )
        assert cur.fetchall() == [("dead", 3, 8)]


class Mailbox:
    """aiosmtpd's handler: keeps each message with whether it came over TLS and logged in."""

    def __init__(self) -> None:
        self.messages: list[tuple[bool, bool, EmailMessage]] = []

    async def handle_DATA(self, _server, session, envelope) -> str:
        message = message_from_bytes(envelope.content, policy=default)
        self.messages.append((bool(session.ssl), bool(session.authenticated), message))
        return "250 OK"


def login(_server, _session, _envelope, _mechanism, auth_data) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        b"fraud",
        b"s3cret",
    )
    return AuthResult(success=ok)


def test_email_over_starttls_one_per_alert(infra, tmp_path, hook, monkeypatch):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    mailbox = Mailbox()
    port = free_port()
    smtp = Controller(
        mailbox,
        hostname="127.0.0.1",
        port=port,
        tls_context=tls,
        require_starttls=True,  # a MAIL before STARTTLS is refused
        authenticator=login,
        auth_require_tls=True,
    )
    smtp.start()
    run = Run(infra, tmp_path, hook, "email")
    run.destinations.write_text(
        json.dumps(
            {
                "destinations": [
                    {
                        "name": "email-mail",
                        "kind": "email",
                        "smtp_host": "127.0.0.1",
                        "smtp_port": port,
                        "ca_file": str(cert),
                        "username": "fraud",
                        "password_env": "TEST_SMTP_PASSWORD",
                        "sender": "fraud@example.test",
                        "recipients": ["oncall@example.test"],
                    }
                ]
            }
        )
    )
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "s3cret")  # the notifier inherits it
    alerts = [stream_alert(f"m{i}", 0, 1) for i in range(5)]
    run.start()
    try:
        run.produce(alerts + alerts[:2])  # duplicates: still one email each
        wait_until(lambda: len(mailbox.messages) >= len(alerts), 60, "every email")
        marker = stream_alert("m-marker", 0, 1)
        run.produce([marker])
        wait_until(lambda: len(mailbox.messages) >= len(alerts) + 1, 60, "the marker email")
    finally:
        run.stop()
        smtp.stop()
    got = Counter(m["Idempotency-Key"] for _tls, _auth, m in mailbox.messages)
    assert got == Counter(key_of(a) for a in [*alerts, marker])
    for over_tls, logged_in, message in mailbox.messages:
        assert over_tls and logged_in
        user = message["Idempotency-Key"].split("/")[0]
        assert message["Subject"] == f"Fraud alert: {user} score 4"
        assert message["To"] == "oncall@example.test"
        body = message.get_content()
        assert f"User: {user}" in body and "location_change: 2 countries" in body
