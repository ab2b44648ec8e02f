"""A Prometheus server from the pinned binary, with a generated scrape config and a small
client for its HTTP API.

Why: metrics are part of the product, so tests check them where users will: scraped by a
real Prometheus and read back through PromQL.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from infra.components import locate
from infra.components.process import ComponentError, ManagedProcess, ensure_port_free, free_port


def scrape_config(
    jobs: Mapping[str, Sequence[str]],
    interval: str = "5s",
    rule_files: Sequence[str | Path] = (),
    alertmanagers: Sequence[str] = (),
) -> str:
    """prometheus.yml text scraping each job's targets (host:port) every `interval`,
    evaluating `rule_files` (paths or globs; recording and alerting rules) as often and
    sending firing alerts to `alertmanagers` (host:port each, e.g. AlertmanagerServer's
    `address`)."""
    lines = ["global:", f"  scrape_interval: {interval}", f"  evaluation_interval: {interval}"]
    if alertmanagers:
        lines += [
            "alerting:",
            "  alertmanagers:",
            "    - static_configs:",
            f"        - targets: {json.dumps(list(alertmanagers))}",
        ]
    if rule_files:
        lines.append("rule_files:")
        lines += [f"  - {json.dumps(str(path))}" for path in rule_files]
    lines.append("scrape_configs:")
    for job, targets in jobs.items():
        lines += [
            f"  - job_name: {json.dumps(job)}",
            "    static_configs:",
            f"      - targets: {json.dumps(list(targets))}",
        ]
    return "\n".join(lines) + "\n"


@dataclass
class PrometheusServer:
    data_dir: Path
    config_text: str
    port: int = 0
    retention: str = "1d"
    process: ManagedProcess | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> float:
        if self.port:
            ensure_port_free(self.port, "Prometheus")
        else:
            self.port = free_port()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "prometheus.yml"
        config.write_text(self.config_text)
        self.process = ManagedProcess(
            "Prometheus",
            [
                str(locate.prometheus_binary()),
                f"--config.file={config}",
                f"--storage.tsdb.path={self.data_dir / 'tsdb'}",
                f"--storage.tsdb.retention.time={self.retention}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                # No --web.enable-lifecycle: POST /-/quit or /-/reload would be open to
                # every local user; a new config means a restart.
            ],
            self.data_dir / "prometheus.log",
        )
        self.process.start()
        return self.process.wait_until(self._ready, timeout, "ready")

    def _ready(self) -> bool:
        with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
            return response.status == 200

    def api(self, path: str, **params: str) -> dict:
        """GET /api/v1/<path>; returns `data`, raises ComponentError on an API error."""
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=10) as resp:
            body = json.load(resp)
        if body.get("status") != "success":
            raise ComponentError(f"Prometheus API {path} {params}: {body}")
        return body["data"]

    def query(self, promql: str) -> list[dict]:
        """Instant query; returns the result vector."""
        return self.api("query", query=promql)["result"]

    def rule_groups(self) -> list[dict]:
        """The loaded rule groups, each with its rules and their health."""
        return self.api("rules")["groups"]

    def targets_up(self) -> dict[str, str]:
        """scrapeUrl -> health for every active target."""
        return {t["scrapeUrl"]: t["health"] for t in self.api("targets")["activeTargets"]}

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
