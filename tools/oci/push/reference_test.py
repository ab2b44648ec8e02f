"""Repository names, tags and host classes (loopback, names crane tries over plain HTTP)."""

from __future__ import annotations

import pytest

from tools.oci.push.reference import (
    InvalidReference,
    Repository,
    check_tag,
    crane_tries_plain_http,
    host_of,
    is_loopback,
    parse_repository,
)


@pytest.mark.parametrize(
    ("text", "registry", "path"),
    [
        ("127.0.0.1:5000/fraud/producer", "127.0.0.1:5000", "fraud/producer"),
        ("localhost/producer", "localhost", "producer"),
        ("[::1]:5000/a", "[::1]:5000", "a"),
        ("registry.example.com/team/fraud-detector", "registry.example.com", "team/fraud-detector"),
        ("ghcr.io/org/alert_sink/v2", "ghcr.io", "org/alert_sink/v2"),
    ],
)
def test_parse_repository(text, registry, path):
    assert parse_repository(text) == Repository(registry, path)
    assert str(parse_repository(text)) == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("fraud/producer", "does not start with a registry host"),
        ("producer", "does not start with a registry host"),
        ("https://registry.example.com/a", "without a scheme"),
        ("registry.example.com/Fraud", "is invalid"),
        ("registry.example.com/a//b", "is invalid"),
        ("registry.example.com/a-", "is invalid"),
        ("registry.example.com", "is invalid"),
    ],
)
def test_parse_repository_refuses_with_reason(text, message):
    with pytest.raises(InvalidReference, match=message):
        parse_repository(text)


def test_prefix_may_be_a_bare_registry_and_children_extend_it():
    assert parse_repository("127.0.0.1:5000", allow_empty_path=True).child("producer") == (
        Repository("127.0.0.1:5000", "producer")
    )
    assert parse_repository("r.example.com/fraud/").child("alert-sink") == (
        Repository("r.example.com", "fraud/alert-sink")
    )
    with pytest.raises(InvalidReference, match="image name 'Bad_Name!'"):
        parse_repository("r.example.com/fraud").child("Bad_Name!")


@pytest.mark.parametrize(
    ("registry", "loopback"),
    [
        ("localhost", True),
        ("localhost:5000", True),
        ("127.0.0.1:5000", True),
        ("127.3.2.1", True),
        ("[::1]:5000", True),
        ("[::1]", True),
        ("10.0.0.1:5000", False),
        ("localhost.example.com", False),
        ("registry.example.com:443", False),
    ],
)
def test_is_loopback(registry, loopback):
    assert is_loopback(registry) is loopback


@pytest.mark.parametrize(
    ("registry", "plain"),
    [
        ("10.1.2.3:5000", True),
        ("172.20.0.1", True),
        ("192.168.1.10:443", True),
        ("registry.local:5000", True),
        ("box.localhost", True),
        ("172.32.0.1", False),
        ("registry.example.com", False),
        ("local.example.com", False),
        ("8.8.8.8:5000", False),
    ],
)
def test_names_crane_would_try_over_plain_http(registry, plain):
    assert crane_tries_plain_http(registry) is plain


def test_host_of():
    assert host_of("Registry.Example.com:5000") == "registry.example.com"
    assert host_of("[::1]:5000") == "::1"
    assert host_of("localhost") == "localhost"


@pytest.mark.parametrize("tag", ["latest", "v1.2.3", "sha-abc_DEF", "_x", "a" * 128])
def test_valid_tags(tag):
    assert check_tag(tag) == tag


@pytest.mark.parametrize("tag", ["", ".hidden", "-x", "a" * 129, "a/b", "a:b"])
def test_invalid_tags_are_refused(tag):
    with pytest.raises(InvalidReference, match="tag"):
        check_tag(tag)
