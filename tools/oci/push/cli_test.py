"""The command line: where each image goes, flags over environment, the output lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools.oci.push.push import (
    PushError,
    Target,
    build_parser,
    choose_credentials,
    digest_file_text,
    is_insecure,
    layout_digest,
    parse_args,
    parse_image,
    plan_targets,
    pushed_line,
    resolve_layout,
    split_list,
)
from tools.oci.push.reference import InvalidReference, Repository

DIGEST = "sha256:" + "ab" * 32


def test_parse_image_and_lists():
    assert parse_image("producer=bazel-bin/services/producer/image") == (
        "producer",
        Path("bazel-bin/services/producer/image"),
    )
    assert parse_image("layout") == ("", Path("layout"))
    with pytest.raises(InvalidReference, match="NAME=LAYOUT_DIR"):
        parse_image("producer=")
    assert split_list(" a,b  c,, d ") == ["a", "b", "c", "d"]
    assert split_list("") == []


def test_one_image_to_one_repository():
    assert plan_targets([("producer", Path("l"))], "127.0.0.1:5000/fraud/producer", None) == [
        Target("producer", Path("l"), Repository("127.0.0.1:5000", "fraud/producer"))
    ]
    assert plan_targets([("", Path("l"))], "r.example.com/xy", None)[0].repository.path == "xy"


def test_prefix_sends_each_image_to_its_own_repository():
    targets = plan_targets(
        [("producer", Path("p")), ("alert-sink", Path("s"))], None, "r.example.com/fraud"
    )
    assert [str(t.repository) for t in targets] == [
        "r.example.com/fraud/producer",
        "r.example.com/fraud/alert-sink",
    ]


@pytest.mark.parametrize(
    ("images", "repository", "prefix", "message"),
    [
        ([], "r.io/x", None, "no image given"),
        ([("a", Path("a"))], None, None, "exactly one of --repository"),
        ([("a", Path("a"))], "r.io/x", "r.io", "exactly one of --repository"),
        (
            [("a", Path("a")), ("b", Path("b"))],
            "r.io/x",
            None,
            "takes one image, got 2 .*--repository-prefix",
        ),
        ([("", Path("a"))], None, "r.io/fraud", "needs NAME=LAYOUT_DIR"),
        ([("aa", Path("a")), ("aa", Path("b"))], None, "r.io", "'aa' is given twice"),
        ([("Producer", Path("a"))], None, "r.io", "image name 'Producer' is invalid"),
        ([("a", Path("a"))], "r.io/x", None, "crane takes 2 to 255 characters"),
        ([("x", Path("a"))], None, "r.io", "crane takes 2 to 255 characters"),
    ],
)
def test_plan_refusals(images, repository, prefix, message):
    with pytest.raises(InvalidReference, match=message):
        plan_targets(images, repository, prefix)


def test_everything_from_the_environment(tmp_path):
    env = {
        "FRAUD_PUSH_IMAGES": "producer=/l/p alert-sink=/l/s",
        "FRAUD_PUSH_REPOSITORY_PREFIX": "r.example.com/fraud",
        "FRAUD_PUSH_TAGS": "v1, latest",
        "FRAUD_PUSH_INSECURE_REGISTRIES": "r.example.com",
        "FRAUD_PUSH_TOKEN_REALM_HOSTS": "auth.example.com",
        "FRAUD_PUSH_DIGEST_FILE": "digests.txt",
        "BUILD_WORKING_DIRECTORY": str(tmp_path),
    }
    config = parse_args([], env)
    assert [str(t.repository) for t in config.targets] == [
        "r.example.com/fraud/producer",
        "r.example.com/fraud/alert-sink",
    ]
    assert config.tags == ("v1", "latest")
    assert config.insecure_registries == ("r.example.com",)
    assert config.token_realm_hosts == ("auth.example.com",)
    assert config.digest_file == tmp_path / "digests.txt"  # where `bazel run` was called


def test_flags_win_over_the_environment():
    env = {
        "FRAUD_PUSH_IMAGES": "a=/a b=/b",
        "FRAUD_PUSH_REPOSITORY_PREFIX": "r.example.com/fraud",
        "FRAUD_PUSH_TAGS": "from-env",
    }
    config = parse_args(["--image", "x=/x", "--repository", "q.example.com/xy", "--tag", "t"], env)
    assert [str(t.repository) for t in config.targets] == ["q.example.com/xy"]
    assert config.tags == ("t",)


def test_defaults():
    config = parse_args(["--image", "x=/x", "--repository", "127.0.0.1:5000/xy"], {})
    assert config.tags == ("latest",)
    assert config.insecure_registries == ()
    assert config.token_realm_hosts == ()
    assert config.digest_file is None


def test_usage_errors_exit_2_with_the_reason(capsys):
    with pytest.raises(SystemExit) as exit_:
        parse_args(["--image", "x=/x", "--repository", "127.0.0.1:5000/xy", "--tag=-bad"], {})
    assert exit_.value.code == 2
    assert "tag '-bad' is invalid" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_args(["--image", "x=/x", "--repository", "fraud/x"], {})
    assert "does not start with a registry host" in capsys.readouterr().err


def test_help_names_every_environment_variable():
    text = build_parser({}).format_help()
    for variable in [
        "FRAUD_PUSH_IMAGES",
        "FRAUD_PUSH_REPOSITORY",
        "FRAUD_PUSH_REPOSITORY_PREFIX",
        "FRAUD_PUSH_TAGS",
        "FRAUD_PUSH_INSECURE_REGISTRIES",
        "FRAUD_PUSH_TOKEN_REALM_HOSTS",
        "FRAUD_PUSH_DIGEST_FILE",
    ]:
        assert variable in text


def test_output_lines():
    repo = Repository("127.0.0.1:5000", "fraud/producer")
    assert pushed_line(repo, "v1", DIGEST) == f"pushed 127.0.0.1:5000/fraud/producer:v1@{DIGEST}"
    one = [(Target("producer", Path("p"), repo), DIGEST)]
    assert digest_file_text(one) == DIGEST + "\n"
    two = [*one, (Target("sink", Path("s"), repo), DIGEST)]
    assert digest_file_text(two) == f"producer {DIGEST}\nsink {DIGEST}\n"


def test_layout_paths_under_bazel_run(tmp_path, monkeypatch):
    caller = tmp_path / "workspace"
    (caller / "out" / "layout").mkdir(parents=True)
    runfiles = tmp_path / "runfiles"
    (runfiles / "services" / "image").mkdir(parents=True)
    monkeypatch.chdir(runfiles)
    env = {"BUILD_WORKING_DIRECTORY": str(caller)}
    assert resolve_layout(Path("services/image"), env) == Path("services/image")  # runfiles
    assert resolve_layout(Path("out/layout"), env) == caller / "out" / "layout"  # the caller's
    assert resolve_layout(Path("nowhere"), env) == Path("nowhere")  # layout_digest will say
    assert resolve_layout(Path("out/layout"), {}) == Path("out/layout")


def test_layout_digest_is_the_one_manifest(tmp_path):
    layout = tmp_path / "layout"
    with pytest.raises(PushError, match="not an OCI image layout"):
        layout_digest(layout)
    (layout / "blobs" / "sha256").mkdir(parents=True)
    manifest = {"digest": DIGEST, "mediaType": "application/vnd.oci.image.manifest.v1+json"}
    (layout / "index.json").write_text(json.dumps({"manifests": [manifest, manifest]}))
    with pytest.raises(PushError, match="exactly one sha256 manifest"):
        layout_digest(layout)
    (layout / "index.json").write_text(json.dumps({"manifests": [manifest]}))
    with pytest.raises(PushError, match=f"the manifest {DIGEST} is missing"):
        layout_digest(layout)
    (layout / "blobs" / "sha256" / DIGEST.removeprefix("sha256:")).write_text("{}")
    assert layout_digest(layout) == DIGEST


def test_insecure_registries_match_by_name():
    assert is_insecure("R.example.com:5000", ["r.example.com:5000"])
    assert is_insecure("docker.io", ["index.docker.io"])
    assert not is_insecure("r.example.com", ["r.example.com:5000"])


def test_an_insecure_remote_registry_gets_no_credentials(tmp_path):
    """Plain HTTP (or unverified TLS) to anything but loopback: crane gets `{}`, and the
    guard is not even asked, so nothing is sent anywhere before the push."""
    file = tmp_path / "config.json"
    file.write_text(json.dumps({"auths": {"10.0.0.5:5000": {"auth": "dTpw"}}}))
    config = parse_args(
        [
            "--image",
            "x=/x",
            "--repository",
            "10.0.0.5:5000/xy",
            "--insecure-registry",
            "10.0.0.5:5000",
        ],
        {},
    )
    logged: list[str] = []
    assert choose_credentials("10.0.0.5:5000", config, [file], logged.append) is None
    assert logged == [
        f"push: 10.0.0.5:5000 is an --insecure-registry: pushing without the credentials in "
        f"{file} (they are never sent without verified TLS, except to loopback)"
    ]


def test_a_private_address_answering_plain_http_needs_insecure_registry(tmp_path):
    """crane would fall back to plain HTTP for 10.x by itself; the push refuses that
    unless the registry is named insecure (a stand-in answers instead of the network)."""
    asked: list[str] = []

    def plain_only(url: str, timeout: float) -> tuple[int, str]:
        asked.append(url)
        if url.startswith("https:"):
            raise OSError("connection refused")
        return 200, ""

    args = ["--image", "x=/x", "--repository", "10.0.0.5:5000/xy"]
    with pytest.raises(PushError, match="answers only over plain HTTP; name it with --insecure"):
        choose_credentials("10.0.0.5:5000", parse_args(args, {}), [], print, plain_only)
    assert asked == ["https://10.0.0.5:5000/v2/", "http://10.0.0.5:5000/v2/"]
    insecure = parse_args([*args, "--insecure-registry", "10.0.0.5:5000"], {})
    assert choose_credentials("10.0.0.5:5000", insecure, [], print, plain_only) is None
    assert len(asked) == 2  # named insecure: nothing to check
    public = parse_args(["--image", "x=/x", "--repository", "r.example.com/xy"], {})
    assert choose_credentials("r.example.com", public, [], print, plain_only) is None
    assert len(asked) == 2  # crane never tries plain HTTP there
