"""An Alertmanager from the pinned Debian binary, its config rendered from the repository's
routing tree, and a small client for its v2 API.

Why: the pipeline's alerts only help once they reach someone, so tests send them the way
production does, Prometheus -> Alertmanager -> receiver, with the real routing tree,
grouping and inhibition, only with shorter intervals and loopback webhook URLs.
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from infra.components.process import ComponentError, ManagedProcess, ensure_port_free, free_port
from libs.runfiles.runfiles import external_repo

_BINARIES = {"alertmanager": "prometheus-alertmanager", "amtool": "amtool"}


def alertmanager_binary(tool: str = "alertmanager") -> Path:
    """The pinned alertmanager (or amtool) binary (override: FRAUD_ALERTMANAGER_BIN=folder
    holding `alertmanager`/`prometheus-alertmanager` and `amtool`)."""
    name = _BINARIES[tool]
    if os.environ.get("FRAUD_ALERTMANAGER_BIN"):
        folder = Path(os.environ["FRAUD_ALERTMANAGER_BIN"])
        path = folder / tool if (folder / tool).exists() else folder / name
    else:
        path = external_repo("alertmanager") / "root/usr/bin" / name
    if not path.exists():
        raise ComponentError(f"{tool} binary not found at {path}")
    return path


def alertmanager_root() -> Path:
    """The working directory the pinned binary needs: its default template's path is
    relative (tools/pins/extensions.bzl `relocate`), under the extracted package's root."""
    if os.environ.get("FRAUD_ALERTMANAGER_ROOT"):
        return Path(os.environ["FRAUD_ALERTMANAGER_ROOT"])
    return external_repo("alertmanager") / "root"


def render_config(
    template: str,
    webhook_base: str,
    group_wait: str | None = None,
    group_interval: str | None = None,
    repeat_interval: str | None = None,
) -> str:
    """The routing tree of `template` (alertmanager.yml text) with every webhook URL's
    scheme and host replaced by `webhook_base` (its path kept, so a receiver tells routes
    apart) and, where given, every route's intervals shortened (for tests)."""
    config = yaml.safe_load(template)
    base = webhook_base.rstrip("/")
    for receiver in config.get("receivers", []):
        for hook in receiver.get("webhook_configs", []):
            path = "/" + hook["url"].split("://", 1)[1].split("/", 1)[1]
            hook["url"] = base + path
    timings = {
        "group_wait": group_wait,
        "group_interval": group_interval,
        "repeat_interval": repeat_interval,
    }

    def shorten(route: dict[str, Any], top: bool) -> None:
        for key, value in timings.items():
            if value is not None and (top or key in route):
                route[key] = value
        for child in route.get("routes", []):
            shorten(child, False)

    shorten(config["route"], True)
    return yaml.safe_dump(config, sort_keys=False)


@dataclass
class AlertmanagerServer:
    """One Alertmanager on loopback, no clustering (a single replica)."""

    data_dir: Path
    config_text: str
    port: int = 0
    process: ManagedProcess | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        """host:port, as Prometheus's alerting.alertmanagers targets want it."""
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> float:
        if self.port:
            ensure_port_free(self.port, "Alertmanager")
        else:
            self.port = free_port()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "alertmanager.yml"
        config.write_text(self.config_text)
        self.process = ManagedProcess(
            "Alertmanager",
            [
                str(alertmanager_binary()),
                f"--config.file={config}",
                f"--storage.path={self.data_dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",  # no gossip port: one replica
            ],
            self.data_dir / "alertmanager.log",
            cwd=alertmanager_root(),
        )
        self.process.start()
        return self.process.wait_until(self._ready, timeout, "ready")

    def _ready(self) -> bool:
        with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
            return response.status == 200

    def post_alerts(self, alerts: Sequence[Mapping[str, Any]]) -> None:
        """POST /api/v2/alerts: each alert is {"labels": {...}, "annotations": {...}}."""
        request = urllib.request.Request(
            f"{self.url}/api/v2/alerts",
            data=json.dumps(list(alerts)).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            if response.status != 200:
                raise ComponentError(f"Alertmanager refused alerts: HTTP {response.status}")

    def alerts(self) -> list[dict[str, Any]]:
        """GET /api/v2/alerts: the active alerts with their status (inhibitedBy, ...)."""
        with urllib.request.urlopen(f"{self.url}/api/v2/alerts", timeout=10) as response:
            return json.load(response)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
