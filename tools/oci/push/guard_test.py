"""The realm guard: which challenges credentials may follow, and the probe's scheme
order, with a stand-in for the network."""

from __future__ import annotations

import re

import pytest

from tools.oci.push.guard import Answer, Challenge, Refused, check, parse_challenge, probe


def test_parse_challenges():
    assert parse_challenge(
        'Bearer realm="https://auth.example.com/token",service="registry.example.com",'
        'scope="repository:a:pull,push"'
    ) == Challenge(
        "bearer",
        {
            "realm": "https://auth.example.com/token",
            "service": "registry.example.com",
            "scope": "repository:a:pull,push",
        },
    )
    assert parse_challenge('Basic realm="fraud registry"') == Challenge(
        "basic", {"realm": "fraud registry"}
    )
    assert parse_challenge('Negotiate abc, Bearer realm="https://r/t"').params == {
        "realm": "https://r/t"
    }
    assert parse_challenge("") == Challenge("")


def bearer(url: str, realm: str) -> Answer:
    return Answer(url, 401, Challenge("bearer", {"realm": realm}))


@pytest.mark.parametrize(
    ("registry", "answer", "allowed"),
    [
        ("r.example.com", bearer("https://r.example.com/v2/", "https://r.example.com/t"), ()),
        (
            "r.example.com:5000",
            bearer("https://r.example.com:5000/v2/", "https://R.example.com/t"),
            (),
        ),
        ("127.0.0.1:5000", bearer("http://127.0.0.1:5000/v2/", "http://127.0.0.1:6000/t"), ()),
        ("docker.io", bearer("https://docker.io/v2/", "https://auth.docker.io/token"), ()),
        (
            "r.example.com",
            bearer("https://r.example.com/v2/", "https://auth.example.com/t"),
            ("auth.example.com",),
        ),
        ("127.0.0.1:5000", Answer("http://127.0.0.1:5000/v2/", 401, Challenge("basic")), ()),
        ("r.example.com", Answer("https://r.example.com/v2/", 401, Challenge("basic")), ()),
        ("r.example.com", Answer("https://r.example.com/v2/", 200, Challenge("")), ()),
    ],
)
def test_allowed(registry, answer, allowed):
    check(registry, answer, allowed)


@pytest.mark.parametrize(
    ("registry", "answer", "allowed", "message"),
    [
        (
            "r.example.com",
            bearer("https://r.example.com/v2/", "https://evil.example.net/t"),
            (),
            "another host \\(evil.example.net\\).*--token-realm-host evil.example.net",
        ),
        (
            "r.example.com",
            bearer("https://r.example.com/v2/", "http://r.example.com/t"),
            ("r.example.com",),
            "plain-HTTP token realm http://r.example.com/t",
        ),
        (
            "127.0.0.1:5000",
            bearer("http://127.0.0.1:5000/v2/", "http://localhost:6000/t"),
            (),
            "another host \\(localhost\\)",
        ),
        (
            "127.0.0.1:5000",
            bearer("http://127.0.0.1:5000/v2/", "http://10.0.0.1/t"),
            ("10.0.0.1",),
            "plain-HTTP token realm",
        ),
        (
            "10.0.0.5:5000",
            Answer("http://10.0.0.5:5000/v2/", 401, Challenge("basic")),
            (),
            "answered only over plain HTTP",
        ),
        (
            "r.example.com",
            bearer("https://r.example.com/v2/", "file:///etc/passwd"),
            (),
            "unusable token realm",
        ),
    ],
)
def test_refused(registry, answer, allowed, message):
    with pytest.raises(Refused, match=message):
        check(registry, answer, allowed)


def test_probe_follows_crane_scheme_order():
    asked: list[str] = []

    def asker(url: str, timeout: float) -> tuple[int, str]:
        asked.append(url)
        if url.startswith("https"):
            raise OSError("wrong version number")
        return 401, 'Basic realm="x"'

    answer = probe("127.0.0.1:5000", insecure=True, asker=asker)
    assert asked == ["https://127.0.0.1:5000/v2/", "http://127.0.0.1:5000/v2/"]
    assert answer == Answer("http://127.0.0.1:5000/v2/", 401, Challenge("basic", {"realm": "x"}))
    # crane would fall back to plain HTTP for a private address, so the probe does too
    # (and check() then refuses it), and an ordinary name is only ever asked over HTTPS.
    asked.clear()
    assert probe("10.0.0.5:5000", insecure=False, asker=asker).url.startswith("http:")
    asked.clear()
    with pytest.raises(
        Refused, match=re.escape("cannot reach the registry: GET https://r.example.com/v2/")
    ):
        probe("r.example.com", insecure=False, asker=asker)
    assert asked == ["https://r.example.com/v2/"]
    asked.clear()
    with pytest.raises(Refused):
        probe("docker.io", insecure=False, asker=asker)
    assert asked == ["https://index.docker.io/v2/"]  # where crane asks for Docker Hub
