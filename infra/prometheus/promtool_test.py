"""The pinned promtool checks the compose config, the rules and their unit tests.

Why a pytest wrapper rather than bare sh_tests: besides promtool's exit code we check what
it says (how many rules it loaded, that the config found the rule files) and a few
conventions promtool cannot know about: every alert has a test where it fires and one
where it stays quiet, every recording rule has its value tested, and the compose jobs are
the local stack's.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from infra.stack import OPTIONAL_SERVICES, SERVICES, Ports

HERE = Path("infra/prometheus")  # tests run in the runfiles' _main directory
RULE_FILES = sorted((HERE / "rules").glob("*.yml"))
TEST_FILES = sorted((HERE / "tests").glob("*.yml"))


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = Path(os.environ["PROMTOOL"]).absolute()
    return subprocess.run(
        [str(binary), *args], capture_output=True, text=True, timeout=120, check=False
    )


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def rules_of(kind: str) -> list[dict]:
    """Every rule of `kind` ("alert" or "record") in rules/*.yml."""
    return [
        rule
        for path in RULE_FILES
        for group in load(path)["groups"]
        for rule in group["rules"]
        if kind in rule
    ]


def test_the_files_are_there():
    assert [p.name for p in RULE_FILES] == ["alerting.yml", "recording.yml"]
    assert [p.name for p in TEST_FILES] == ["alerting_test.yml", "recording_test.yml"]


def test_rules_are_valid():
    result = promtool("check", "rules", *map(str, RULE_FILES))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    for path in RULE_FILES:
        count = sum(len(g["rules"]) for g in load(path)["groups"])
        assert f"Checking {path}\n  SUCCESS: {count} rules found" in output, output


def test_rule_unit_tests_pass():
    result = promtool("test", "rules", *map(str, TEST_FILES))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "FAILED" not in output and output.count("SUCCESS") == len(TEST_FILES), output


def test_compose_config_is_valid_with_its_rules(tmp_path):
    """The config names /etc/prometheus/rules/*.yml (the compose mount); promtool checks a
    copy pointing at this tree's rules, so the rules are loaded through the config too."""
    config = load(HERE / "prometheus.yml")
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    config["rule_files"] = [str((HERE / "rules").absolute() / "*.yml")]
    copy = tmp_path / "prometheus.yml"
    copy.write_text(yaml.safe_dump(config))
    result = promtool("check", "config", str(copy))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert f"SUCCESS: {len(RULE_FILES)} rule files found" in output, output


def test_compose_jobs_are_the_local_stack_jobs():
    """Dashboards and rules select on `job`: compose and `//infra:local` must agree."""
    config = load(HERE / "prometheus.yml")
    assert config["global"]["scrape_interval"] == "5s"
    targets = {
        job["job_name"]: [t for sc in job["static_configs"] for t in sc["targets"]]
        for job in config["scrape_configs"]
    }
    ports = Ports()
    expected = {
        "prometheus": ["localhost:9090"],
        "producer": [f"producer:{ports.producer}"],
        "alert_sink": [f"alert-sink:{ports.sink}"],
        "detector": [f"detector:{ports.detector}"],
        "quality": [f"quality:{ports.quality}"],
        # the local stack scrapes it whenever it runs one (`--notifier-destinations`)
        "notifier": [f"notifier:{ports.notifier}"],
    }
    assert targets == expected
    assert set(SERVICES) | set(OPTIONAL_SERVICES) == set(expected) - {"prometheus"}


def test_every_alert_has_severity_summary_and_description():
    for rule in rules_of("alert"):
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]


def test_every_alert_is_tested_firing_and_quiet():
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in TEST_FILES:
        for case in load(path)["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    alerts = {rule["alert"] for rule in rules_of("alert")}
    assert alerts - firing == set(), "alerts never tested firing"
    assert alerts - quiet == set(), "alerts never tested staying quiet"
    assert (firing | quiet) - alerts == set(), "tests of alerts that do not exist"


def test_every_recording_rule_is_tested():
    tested: set[str] = set()
    for path in TEST_FILES:
        for case in load(path)["tests"]:
            for check in case.get("promql_expr_test", []):
                tested.add(check["expr"])
    records = {rule["record"] for rule in rules_of("record")}
    assert records - tested == set()


def rule_id(rule: dict) -> str:
    quantile = rule.get("labels", {}).get("quantile")
    return rule["record"] + (f"[{quantile}]" if quantile else "")


@pytest.mark.parametrize("rule", rules_of("record"), ids=rule_id)
def test_recording_rule_names_follow_level_metric_operations(rule):
    """level:metric:operations; a quantile rule carries its quantile as a label."""
    name = rule["record"]
    assert re.fullmatch(r"[a-z_]+:fraud_[a-z0-9_]+:[a-z0-9_]+", name), name
    level = name.split(":")[0].split("_")
    kept = re.search(r"\bby \(([^)]*)\)", rule["expr"])
    by = [label.strip() for label in kept.group(1).split(",")] if kept else []
    if "histogram_quantile" in rule["expr"]:
        by.remove("le")  # the quantile consumes the bucket label
    extra = list(rule.get("labels", {}))
    assert sorted(level) == sorted(by + extra), f"{name}: level {level}, by {by} + {extra}"
