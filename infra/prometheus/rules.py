"""Where the pipeline's Prometheus rule files (and the Alertmanager config) are at run time.

Why: the local stack, the dashboards' live test and the compose stack must evaluate the
same recording and alerting rules; the first two find them in the runfiles tree (they are
data of this library), the compose stack mounts the folder at /etc/prometheus/rules.
"""

from __future__ import annotations

import os
from pathlib import Path

from libs.runfiles.runfiles import ComponentError, runfiles_root

RULES_DIR = "infra/prometheus/rules"
ALERTMANAGER_CONFIG = "infra/prometheus/alertmanager.yml"


def rule_files() -> tuple[Path, ...]:
    """Every rules/*.yml, sorted (override: FRAUD_PROMETHEUS_RULES=folder)."""
    override = os.environ.get("FRAUD_PROMETHEUS_RULES")
    folder = Path(override) if override else runfiles_root() / "_main" / RULES_DIR
    files = tuple(sorted(folder.glob("*.yml")))
    if not files:
        raise ComponentError(
            f"no Prometheus rule files (*.yml) in {folder}: is //infra/prometheus:rules in the "
            "target's deps, or FRAUD_PROMETHEUS_RULES set to a folder of rules?"
        )
    return files


def alertmanager_config() -> Path:
    """The compose Alertmanager config, the template the local stack renders
    (override: FRAUD_ALERTMANAGER_CONFIG=file)."""
    override = os.environ.get("FRAUD_ALERTMANAGER_CONFIG")
    path = Path(override) if override else runfiles_root() / "_main" / ALERTMANAGER_CONFIG
    if not path.exists():
        raise ComponentError(
            f"no Alertmanager config at {path}: is //infra/prometheus:rules a dep?"
        )
    return path
