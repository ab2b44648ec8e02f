"""Grafana dashboard JSON from the panel definitions in `panels.py`.

Why plain dicts and no Grafana SDK: the model we need is small (rows of panels with
Prometheus targets), the output is reviewed as committed JSON, and one fewer dependency
means the generator runs anywhere Python does. The output is deterministic (no ids from
a clock, keys in a fixed order), so `generated_test` can compare it byte for byte.
"""

from __future__ import annotations

import json
from typing import Any

from dashboards.panels import DATASOURCE_UID, Dashboard, Panel, Query

DATASOURCE = {"type": "prometheus", "uid": DATASOURCE_UID}
GRID_WIDTH = 24  # Grafana's grid is 24 columns wide
PANEL_HEIGHT = 8
SCHEMA_VERSION = 39  # Grafana 10.4 / 11


def _target(query: Query, ref_id: str, instant: bool) -> dict[str, Any]:
    return {
        "datasource": DATASOURCE,
        "refId": ref_id,
        "expr": query.expr,
        "legendFormat": query.legend or "__auto",
        "range": not instant,
        "instant": instant,
    }


def _field_defaults(panel: Panel) -> dict[str, Any]:
    defaults: dict[str, Any] = {"unit": panel.unit}
    if panel.min is not None:
        defaults["min"] = panel.min
    if panel.max is not None:
        defaults["max"] = panel.max
    if panel.kind == "timeseries":
        defaults["custom"] = {
            "axisLabel": panel.axis_label,
            "drawStyle": "line",
            "lineWidth": 1,
            "fillOpacity": 10,
            "showPoints": "never",
            "spanNulls": False,
        }
    elif panel.kind == "state":
        defaults["color"] = {"mode": "thresholds"}
        defaults["thresholds"] = {
            "mode": "absolute",
            "steps": [{"color": "red", "value": None}, {"color": "green", "value": 1}],
        }
        defaults["mappings"] = [
            {
                "type": "value",
                "options": {
                    "0": {"text": "down", "color": "red", "index": 0},
                    "1": {"text": "up", "color": "green", "index": 1},
                },
            }
        ]
    else:  # bars
        defaults["color"] = {"mode": "palette-classic"}
    return defaults


def _options(panel: Panel) -> dict[str, Any]:
    if panel.kind == "timeseries":
        return {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
    if panel.kind == "state":
        return {
            "mergeValues": True,
            "showValue": "never",
            "rowHeight": 0.8,
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": False},
            "tooltip": {"mode": "single", "sort": "none"},
        }
    return {
        "orientation": "horizontal",
        "displayMode": "basic",
        "showUnfilled": True,
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
    }


GRAFANA_TYPE = {"timeseries": "timeseries", "state": "state-timeline", "bars": "bargauge"}


def panel_json(panel: Panel, panel_id: int, x: int, y: int, width: int) -> dict[str, Any]:
    instant = panel.kind == "bars"  # one bar per series: the value over the shown range
    return {
        "id": panel_id,
        "type": GRAFANA_TYPE[panel.kind],
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": PANEL_HEIGHT, "w": width, "x": x, "y": y},
        "targets": [_target(q, chr(ord("A") + i), instant) for i, q in enumerate(panel.queries)],
        "fieldConfig": {"defaults": _field_defaults(panel), "overrides": []},
        "options": _options(panel),
    }


def dashboard_json(dashboard: Dashboard) -> dict[str, Any]:
    """The dashboard as Grafana's JSON model: a row panel, then its panels side by side."""
    panels: list[dict[str, Any]] = []
    y = 0
    for row in dashboard.rows:
        panels.append(
            {
                "id": len(panels) + 1,
                "type": "row",
                "title": row.title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": GRID_WIDTH, "x": 0, "y": y},
                "panels": [],
            }
        )
        y += 1
        width = GRID_WIDTH // len(row.panels)
        for i, panel in enumerate(row.panels):
            panels.append(panel_json(panel, len(panels) + 1, i * width, y, width))
        y += PANEL_HEIGHT
    annotations = [
        {
            "name": "Firing alerts",
            "datasource": DATASOURCE,
            "enable": True,
            "iconColor": "red",
            "expr": q.expr,
            "step": "30s",
            "titleFormat": q.legend,
            "tagKeys": "severity,component",
        }
        for q in dashboard.annotations
    ]
    return {
        "uid": dashboard.uid,
        "title": dashboard.title,
        "description": dashboard.description,
        "tags": list(dashboard.tags),
        "timezone": "utc",
        "editable": False,
        "graphTooltip": 1,  # shared crosshair
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "refresh": dashboard.refresh,
        "time": {"from": f"now-{dashboard.time_range}", "to": "now"},
        "timepicker": {},
        "templating": {"list": []},
        "annotations": {"list": annotations},
        "links": [],
        "panels": panels,
    }


def render(dashboard: Dashboard) -> str:
    """The text committed under dashboards/generated/ (stable, diff-friendly)."""
    return json.dumps(dashboard_json(dashboard), indent=2, ensure_ascii=False) + "\n"


def file_name(dashboard: Dashboard) -> str:
    return f"{dashboard.uid}.json"
