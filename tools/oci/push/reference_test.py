"""Repository names, plain-HTTP choice and upload URLs, as the distribution spec reads them."""

from __future__ import annotations

import pytest

from tools.oci.push.reference import (
    Endpoint,
    InvalidReference,
    Repository,
    check_tag,
    endpoint_for,
    is_loopback,
    manifest_url,
    parse_repository,
    same_origin,
    upload_finish_url,
)

DIGEST = "sha256:" + "ab" * 32


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


def test_plain_http_only_for_loopback_and_named_insecure_registries():
    assert endpoint_for("127.0.0.1:5000") == Endpoint("http", "127.0.0.1:5000")
    assert endpoint_for("[::1]:5000") == Endpoint("http", "[::1]:5000")
    assert endpoint_for("registry.lan:5000") == Endpoint("https", "registry.lan:5000")
    assert endpoint_for("registry.lan:5000", ["registry.lan:5000"]).scheme == "http"
    assert endpoint_for("registry.lan:5000", ["registry.lan"]).scheme == "https"  # port matters
    assert endpoint_for("docker.io") == Endpoint("https", "registry-1.docker.io")


def test_upload_finish_url_from_relative_absolute_and_queried_locations():
    start = "http://127.0.0.1:5000/v2/fraud/x/blobs/uploads/"
    encoded = "digest=sha256%3A" + "ab" * 32
    assert upload_finish_url("/v2/fraud/x/blobs/uploads/u1", start, DIGEST) == (
        f"http://127.0.0.1:5000/v2/fraud/x/blobs/uploads/u1?{encoded}"
    )
    assert upload_finish_url("u2", start, DIGEST) == (
        f"http://127.0.0.1:5000/v2/fraud/x/blobs/uploads/u2?{encoded}"
    )
    assert upload_finish_url("/v2/fraud/x/blobs/uploads/u3?_state=a%3D%3D&x=1", start, DIGEST) == (
        f"http://127.0.0.1:5000/v2/fraud/x/blobs/uploads/u3?_state=a%3D%3D&x=1&{encoded}"
    )
    assert upload_finish_url("https://uploads.example.com/s/u4?sig=abc", start, DIGEST) == (
        f"https://uploads.example.com/s/u4?sig=abc&{encoded}"
    )
    with pytest.raises(InvalidReference, match="no Location header"):
        upload_finish_url("", start, DIGEST)


def test_same_origin_keeps_credentials_at_the_registry():
    endpoint = Endpoint("https", "registry.example.com")
    assert same_origin("https://registry.example.com/v2/x/blobs/uploads/1", endpoint)
    assert same_origin("https://REGISTRY.example.com/v2/", endpoint)
    assert not same_origin("https://storage.example.com/blob", endpoint)
    assert not same_origin("http://registry.example.com/v2/", endpoint)


def test_manifest_url():
    endpoint = Endpoint("http", "127.0.0.1:5000")
    assert manifest_url(endpoint, Repository("127.0.0.1:5000", "a/b"), "v1") == (
        "http://127.0.0.1:5000/v2/a/b/manifests/v1"
    )


@pytest.mark.parametrize("tag", ["latest", "v1.2.3", "sha-abc_DEF", "_x", "a" * 128])
def test_valid_tags(tag):
    assert check_tag(tag) == tag


@pytest.mark.parametrize("tag", ["", ".hidden", "-x", "a" * 129, "a/b", "a:b"])
def test_invalid_tags_are_refused(tag):
    with pytest.raises(InvalidReference, match="tag"):
        check_tag(tag)
