"""The generated Grafana model is well formed and matches the provisioning files."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from dashboards.grafana import GRID_WIDTH, dashboard_json, render
from dashboards.panels import DASHBOARDS, DATASOURCE_UID, FRAUD_PIPELINE

PROVISIONING = Path("dashboards/provisioning")


def panels_of(model: dict) -> list[dict]:
    return [p for p in model["panels"] if p["type"] != "row"]


def test_datasource_is_the_provisioned_one():
    config = yaml.safe_load((PROVISIONING / "datasources/prometheus.yml").read_text())
    (source,) = config["datasources"]
    assert source["uid"] == DATASOURCE_UID
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    model = dashboard_json(FRAUD_PIPELINE)
    for panel in panels_of(model):
        assert panel["datasource"]["uid"] == DATASOURCE_UID
        assert {t["datasource"]["uid"] for t in panel["targets"]} == {DATASOURCE_UID}


def test_dashboard_provider_reads_the_mounted_folder():
    config = yaml.safe_load((PROVISIONING / "dashboards/fraud.yml").read_text())
    (provider,) = config["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


def test_every_panel_has_its_queries_in_order():
    model = dashboard_json(FRAUD_PIPELINE)
    panels = panels_of(model)
    assert [p["title"] for p in panels] == [p.title for p in FRAUD_PIPELINE.panels]
    for panel, source in zip(panels, FRAUD_PIPELINE.panels, strict=True):
        assert [t["expr"] for t in panel["targets"]] == [q.expr for q in source.queries]
        assert [t["refId"] for t in panel["targets"]] == list("ABCDEFGH"[: len(source.queries)])


def test_layout_fills_the_grid_without_overlap():
    model = dashboard_json(FRAUD_PIPELINE)
    taken: set[tuple[int, int]] = set()
    for panel in model["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= GRID_WIDTH
        cells = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not cells & taken, panel["title"]
        taken |= cells
    ids = [p["id"] for p in model["panels"]]
    assert len(ids) == len(set(ids))


def test_panel_kinds_map_to_grafana_types():
    types = {p["title"]: p["type"] for p in panels_of(dashboard_json(FRAUD_PIPELINE))}
    assert types["Services up"] == "state-timeline"
    assert types["Alert score distribution"] == "bargauge"
    assert types["End-to-end latency"] == "timeseries"
    bars = next(p for p in panels_of(dashboard_json(FRAUD_PIPELINE)) if p["type"] == "bargauge")
    assert all(t["instant"] for t in bars["targets"])


def test_uids_are_unique_and_output_is_stable_json():
    assert len({d.uid for d in DASHBOARDS}) == len(DASHBOARDS)
    for dashboard in DASHBOARDS:
        text = render(dashboard)
        assert text == render(dashboard) and text.endswith("}\n")
        assert json.loads(text)["uid"] == dashboard.uid
