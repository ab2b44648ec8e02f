"""Runs every panel's queries against Prometheus' HTTP API, the way Grafana would.

Why here and not in the report: the PNG report and the live test (every panel has data
from a real pipeline) must ask Prometheus exactly the same questions; both call
`fetch_dashboard`. Standard library only (urllib), so the test needs no HTTP package.
"""

from __future__ import annotations

import json
import math
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field

from dashboards.panels import Dashboard, Panel, Query

_PLACEHOLDER = re.compile(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}")


class PrometheusError(RuntimeError):
    """Prometheus could not be reached or refused a query; the message says which."""


@dataclass(frozen=True, slots=True)
class Series:
    name: str  # the legend: the query's legendFormat applied to the labels
    labels: dict[str, str]
    times: tuple[float, ...]  # Unix seconds
    values: tuple[float, ...]  # NaN where Prometheus returned NaN

    @property
    def has_values(self) -> bool:
        return any(math.isfinite(v) for v in self.values)


@dataclass(frozen=True, slots=True)
class QueryResult:
    query: Query
    expr: str  # what was sent ($__range substituted)
    series: tuple[Series, ...] = ()
    error: str | None = None

    @property
    def has_data(self) -> bool:
        """At least one series with a number (not only NaN: nothing observed yet)."""
        return self.error is None and any(s.has_values for s in self.series)


@dataclass(frozen=True, slots=True)
class PanelData:
    panel: Panel
    results: tuple[QueryResult, ...]

    @property
    def series(self) -> tuple[Series, ...]:
        return tuple(s for r in self.results for s in r.series)

    @property
    def has_data(self) -> bool:
        return any(r.has_data for r in self.results)

    @property
    def errors(self) -> tuple[str, ...]:
        return tuple(r.error for r in self.results if r.error)


@dataclass(frozen=True)
class Window:
    """The time range shown: [end - seconds, end], one point every `step` seconds."""

    end: float
    seconds: float
    step: float

    @property
    def start(self) -> float:
        return self.end - self.seconds


def legend(fmt: str, labels: dict[str, str]) -> str:
    """Grafana's legendFormat: "{{flag}}" -> the label's value; empty -> all labels."""
    if fmt and fmt != "__auto":
        return _PLACEHOLDER.sub(lambda m: labels.get(m.group(1), ""), fmt)
    name = labels.get("__name__", "")
    rest = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__")
    return f"{name}{{{rest}}}" if rest or not name else name


@dataclass(frozen=True)
class PrometheusAPI:
    url: str
    timeout: float = 15.0

    def get(self, path: str, **params: str) -> dict:
        """GET /api/v1/<path>; returns `data`, raises PrometheusError with Prometheus' words."""
        address = f"{self.url.rstrip('/')}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(address, timeout=self.timeout) as response:
                body = json.load(response)
        except urllib.error.HTTPError as err:  # 400/422 carry a JSON error
            try:
                body = json.load(err)
            except ValueError:
                raise PrometheusError(f"{address}: HTTP {err.code} {err.reason}") from None
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise PrometheusError(f"cannot reach Prometheus at {self.url}: {reason}") from None
        if body.get("status") != "success":
            raise PrometheusError(f"{body.get('errorType', 'error')}: {body.get('error', body)}")
        return body["data"]

    def query_range(self, expr: str, window: Window) -> list[dict]:
        data = self.get(
            "query_range",
            query=expr,
            start=f"{window.start:.3f}",
            end=f"{window.end:.3f}",
            step=f"{window.step:g}",
        )
        return data["result"]

    def query(self, expr: str, at: float) -> list[dict]:
        return self.get("query", query=expr, time=f"{at:.3f}")["result"]


def _series(query: Query, raw: dict) -> Series:
    labels = raw["metric"]
    points = raw.get("values") or [raw["value"]]
    return Series(
        name=legend(query.legend, labels),
        labels=labels,
        times=tuple(float(t) for t, _ in points),
        values=tuple(float(v) for _, v in points),  # "NaN" and "+Inf" parse as floats
    )


def fetch_query(api: PrometheusAPI, panel: Panel, query: Query, window: Window) -> QueryResult:
    """One query of `panel`: an instant query at the end for bars, else a range query."""
    expr = query.expr_for(window.seconds)
    try:
        bars = panel.kind == "bars"
        raw = api.query(expr, window.end) if bars else api.query_range(expr, window)
    except PrometheusError as err:
        return QueryResult(query, expr, error=str(err))
    series = sorted((_series(query, r) for r in raw), key=lambda s: s.name)
    return QueryResult(query, expr, tuple(series))


def fetch_panel(api: PrometheusAPI, panel: Panel, window: Window) -> PanelData:
    return PanelData(panel, tuple(fetch_query(api, panel, q, window) for q in panel.queries))


def fetch_dashboard(
    api: PrometheusAPI, dashboard: Dashboard, window: Window
) -> tuple[PanelData, ...]:
    return tuple(fetch_panel(api, p, window) for p in dashboard.panels)


def auto_step(seconds: float, points: int = 240) -> float:
    """About `points` points across the range, at least 1 s (Prometheus caps at 11,000)."""
    return max(1.0, math.ceil(seconds / points))


DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """'15m', '90s', '1h30m' -> seconds."""
    text = text.strip()
    parts = DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"duration {text!r} must look like 90s, 15m, 1h or 1h30m")
    seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)
    if seconds <= 0:
        raise ValueError(f"duration {text!r} must be > 0")
    return seconds


@dataclass
class Summary:
    """What a fetch found, for a line of output or a test failure."""

    panels: int = 0
    empty: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def summarize(data: tuple[PanelData, ...]) -> Summary:
    summary = Summary(panels=len(data))
    for item in data:
        if item.errors:
            summary.failed.append(f"{item.panel.title}: {item.errors[0]}")
        elif not item.has_data:
            summary.empty.append(item.panel.title)
    return summary
