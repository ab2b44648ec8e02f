"""`amtool check-config` and `amtool config routes test` on the compose Alertmanager config:
which receiver each kind of alert reaches, and that the inhibitions name real alerts.

Why: a routing tree is code; a matcher typo sends pages to the wrong place (or nowhere)
and nothing else would notice until an outage.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

HERE = Path("infra/prometheus")  # tests run in the runfiles' _main directory
CONFIG = HERE / "alertmanager.yml"


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = Path(os.environ["AMTOOL"]).absolute()
    return subprocess.run(
        [str(binary), *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_config_is_valid():
    result = amtool("check-config", str(CONFIG))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "SUCCESS" in output and "3 inhibit rules" in output and "3 receivers" in output


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (
            ["alertname=FraudServiceDown", "severity=critical", "component=detector"],
            "pipeline-critical",
        ),
        (["alertname=FraudSinkLagGrowing", "severity=warning"], "pipeline-warning"),
        (["alertname=FraudNotificationsFailing", "severity=warning"], "pipeline-warning"),
        (["alertname=Watchdog", "severity=info"], "pipeline-webhook"),
        (["alertname=Unlabelled"], "pipeline-webhook"),
    ],
)
def test_routes(labels, receiver):
    result = amtool(
        "config",
        "routes",
        "test",
        f"--config.file={CONFIG}",
        f"--verify.receivers={receiver}",
        *labels,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receiver


def test_inhibitions_name_alerts_that_exist():
    """Every alertname an inhibit rule matches is defined in rules/*.yml."""
    defined = {
        rule["alert"]
        for path in (HERE / "rules").glob("*.yml")
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    config = yaml.safe_load(CONFIG.read_text())
    named: set[str] = set()
    for rule in config["inhibit_rules"]:
        for matcher in rule.get("source_matchers", []) + rule.get("target_matchers", []):
            found = re.fullmatch(r'alertname=~?"([^"]+)"', matcher)
            if found:
                named |= set(found.group(1).split("|"))
    assert named - defined == set()
