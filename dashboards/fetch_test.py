"""Queries go to Prometheus as Grafana sends them; answers become named series.

A stub HTTP server plays Prometheus (the live test uses the real one).
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar

import pytest

from dashboards.fetch import (
    PanelData,
    PrometheusAPI,
    QueryResult,
    Series,
    Window,
    auto_step,
    fetch_panel,
    legend,
    parse_duration,
    summarize,
)
from dashboards.panels import Panel, Query

MATRIX = {
    "status": "success",
    "data": {
        "resultType": "matrix",
        "result": [
            {"metric": {"flag": "high_value"}, "values": [[100, "2"], [110, "3"]]},
            {"metric": {"flag": "location_change"}, "values": [[100, "NaN"], [110, "1"]]},
        ],
    },
}


class Stub(BaseHTTPRequestHandler):
    requests: ClassVar[list[tuple[str, dict[str, str]]]] = []

    def do_GET(self) -> None:
        url = urllib.parse.urlparse(self.path)
        params = dict(urllib.parse.parse_qsl(url.query))
        Stub.requests.append((url.path, params))
        if "broken(" in params.get("query", ""):
            status, body = 400, {"status": "error", "errorType": "bad_data", "error": "parse error"}
        elif "absent_metric" in params.get("query", ""):
            status, body = (
                200,
                {"status": "success", "data": {"resultType": "matrix", "result": []}},
            )
        elif url.path.endswith("/query"):
            result = [{"metric": {"score": "2"}, "value": [110, "40"]}]
            status, body = (
                200,
                {"status": "success", "data": {"resultType": "vector", "result": result}},
            )
        else:
            status, body = 200, MATRIX
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def api() -> Iterator[PrometheusAPI]:
    server = HTTPServer(("127.0.0.1", 0), Stub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Stub.requests.clear()
    yield PrometheusAPI(f"http://127.0.0.1:{server.server_port}")
    server.shutdown()


WINDOW = Window(end=1000.0, seconds=900.0, step=5.0)


def test_range_query_parameters_and_series(api):
    panel = Panel("Flags", "", (Query("flag:fraud_detector_alert_flags:rate1m", "{{flag}}"),))
    data = fetch_panel(api, panel, WINDOW)
    path, params = Stub.requests[-1]
    assert path == "/api/v1/query_range"
    assert params == {
        "query": "flag:fraud_detector_alert_flags:rate1m",
        "start": "100.000",
        "end": "1000.000",
        "step": "5",
    }
    names = [s.name for s in data.series]
    assert names == ["high_value", "location_change"]
    assert data.series[0].values == (2.0, 3.0) and data.has_data


def test_bars_are_an_instant_query_with_the_range_substituted(api):
    panel = Panel(
        "Scores",
        "",
        (Query("sum by (score) (increase(x_total[$__range]))", "score {{score}}"),),
        kind="bars",
    )
    data = fetch_panel(api, panel, WINDOW)
    path, params = Stub.requests[-1]
    assert path == "/api/v1/query"
    assert params == {"query": "sum by (score) (increase(x_total[900s]))", "time": "1000.000"}
    assert [(s.name, s.values) for s in data.series] == [("score 2", (40.0,))]


def test_an_empty_result_and_a_refused_query_are_told_apart(api):
    empty = Panel("Empty", "", (Query("absent_metric"),))
    broken = Panel("Broken", "", (Query("broken("),))
    data = (fetch_panel(api, empty, WINDOW), fetch_panel(api, broken, WINDOW))
    assert not data[0].has_data and data[0].errors == ()
    assert data[1].errors == ("bad_data: parse error",)
    summary = summarize(data)
    assert summary.empty == ["Empty"]
    assert summary.failed == ["Broken: bad_data: parse error"]


def test_an_unreachable_prometheus_is_an_error_not_an_empty_panel():
    api = PrometheusAPI("http://127.0.0.1:9", timeout=2)  # discard port: nothing listens
    data = fetch_panel(api, Panel("P", "", (Query("up"),)), WINDOW)
    assert data.errors and "cannot reach Prometheus at http://127.0.0.1:9" in data.errors[0]


def test_only_nan_is_no_data():
    panel = Panel("P", "", (Query("q"),))
    nan = Series("s", {}, (1.0, 2.0), (float("nan"), float("nan")))
    assert not PanelData(panel, (QueryResult(panel.queries[0], "q", (nan,)),)).has_data


@pytest.mark.parametrize(
    ("fmt", "labels", "expected"),
    [
        ("{{flag}}", {"flag": "high_value"}, "high_value"),
        ("{{ job }} {{quantile}}", {"job": "detector", "quantile": "0.95"}, "detector 0.95"),
        ("{{missing}}x", {}, "x"),
        ("", {"__name__": "up", "job": "producer"}, 'up{job="producer"}'),
        ("__auto", {"__name__": "up"}, "up"),
        ("", {"kind": "connect"}, '{kind="connect"}'),
    ],
)
def test_legend_follows_grafana_legend_format(fmt, labels, expected):
    assert legend(fmt, labels) == expected


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("15m", 900), ("1h", 3600), ("1h30m", 5400), ("2d", 172800)]
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "15", "15 m", "m", "0s", "1x"])
def test_parse_duration_refuses(text):
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_auto_step():
    assert auto_step(900) == 4  # 225 points
    assert auto_step(60) == 1
    assert auto_step(86400) == 360
