"""The PNG report draws every kind of panel, and says so when a panel has nothing to show.

Canned data here; the live test renders from a real Prometheus.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dashboards import report
from dashboards.fetch import PanelData, QueryResult, Series, Window
from dashboards.panels import FRAUD_PIPELINE, Dashboard, Panel, Query, Row

WINDOW = Window(end=1_800_000_000.0, seconds=600.0, step=10.0)
TIMES = tuple(WINDOW.start + i * WINDOW.step for i in range(61))
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def series(name: str, values: list[float]) -> Series:
    return Series(name, {"name": name}, TIMES[: len(values)], tuple(values))


def data_for(panel: Panel, *found: Series, error: str | None = None) -> PanelData:
    query = panel.queries[0]
    return PanelData(panel, (QueryResult(query, query.expr, tuple(found), error),))


def canned(panel: Panel) -> PanelData:
    ramp = [float(i) for i in range(61)]
    if panel.kind == "state":
        return data_for(
            panel, series("detector", [1.0] * 30 + [0.0] * 31), series("producer", [1.0] * 61)
        )
    if panel.kind == "bars":
        return data_for(
            panel, *(Series(f"score {s}", {}, (WINDOW.end,), (10.0 * s,)) for s in (2, 3, 4, 5))
        )
    if panel.unit == "percentunit":
        return data_for(panel, series("precision", [math.nan] * 5 + [0.9] * 56))
    return data_for(panel, series("a", ramp), series("zero", [0.0] * 61))


def test_renders_the_whole_dashboard(tmp_path):
    data = tuple(canned(p) for p in FRAUD_PIPELINE.panels)
    out = tmp_path / "sub" / "dashboard.png"
    report.render(FRAUD_PIPELINE, data, WINDOW, "http://prometheus:9090", out)
    blob = out.read_bytes()
    assert blob.startswith(PNG_SIGNATURE) and len(blob) > 50_000


def test_panels_without_data_or_with_errors_still_render(tmp_path):
    empty = Panel("Nothing yet", "", (Query("job:fraud_x:rate1m"),))
    failing = Panel("Refused", "", (Query("broken("),))
    only_nan = Panel("All NaN", "", (Query("q"),))
    zeros = Panel("All zero", "", (Query("q"),))
    dashboard = Dashboard("t", "Test", "", (Row("r", (empty, failing, only_nan, zeros)),))
    data = (
        data_for(empty),
        data_for(failing, error="bad_data: parse error"),
        data_for(only_nan, series("s", [math.nan] * 10)),
        data_for(zeros, series("s", [0.0] * 10)),
    )
    out = tmp_path / "t.png"
    report.render(dashboard, data, WINDOW, "stub", out)
    assert out.read_bytes().startswith(PNG_SIGNATURE)


def test_no_data_message_names_the_query():
    import matplotlib.pyplot as plt

    panel = Panel("Nothing yet", "", (Query("job:fraud_x:rate1m"),))
    fig, ax = plt.subplots()
    report.draw_panel(ax, data_for(panel), WINDOW)
    texts = [t.get_text() for t in ax.texts]
    plt.close(fig)
    assert texts == ["No data in this range for\njob:fraud_x:rate1m"]


def test_legend_lists_series_that_moved_and_counts_the_zeros():
    import matplotlib.pyplot as plt

    panel = Panel("DLQ", "", (Query("q", "{{reason}}"),))
    found = [series("not_json", [0.0, 2.0, 1.0]), *(series(f"r{i}", [0.0] * 3) for i in range(9))]
    fig, ax = plt.subplots()
    report.draw_panel(ax, data_for(panel, *found), WINDOW)
    legend = ax.get_legend()
    names = [t.get_text() for t in legend.get_texts()]
    title = legend.get_title().get_text()
    plt.close(fig)
    assert names == ["not_json"] and title == "+9 more at 0"


def test_a_few_series_are_all_named_even_at_zero():
    import matplotlib.pyplot as plt

    panel = Panel("DB errors", "", (Query("q", "{{kind}}"),))
    found = [series(kind, [0.0] * 3) for kind in ("connect", "connection", "query")]
    fig, ax = plt.subplots()
    report.draw_panel(ax, data_for(panel, *found), WINDOW)
    names = [t.get_text() for t in ax.get_legend().get_texts()]
    plt.close(fig)
    assert names == ["connect", "connection", "query"]


def test_output_is_relative_to_where_bazel_run_was_called(monkeypatch):
    monkeypatch.setenv("BUILD_WORKING_DIRECTORY", "/home/me/repo")
    assert report.output_path(Path("x.png")) == Path("/home/me/repo/x.png")
    assert report.output_path(Path("/tmp/x.png")) == Path("/tmp/x.png")
    monkeypatch.delenv("BUILD_WORKING_DIRECTORY")
    assert report.output_path(Path("x.png")) == Path("x.png")


def test_flags(monkeypatch):
    monkeypatch.delenv("FRAUD_PROMETHEUS_URL", raising=False)
    args = report.parse_args(["--output", "o.png", "--range", "1h"])
    assert args.range_seconds == 3600 and args.prometheus_url == "http://localhost:9090"
    with pytest.raises(SystemExit):
        report.parse_args(["--output", "o.png", "--range", "soon"])


def test_unreachable_prometheus_fails_with_a_message(tmp_path, capsys):
    code = report.main(
        ["--prometheus-url", "http://127.0.0.1:9", "--output", str(tmp_path / "x.png")]
    )
    assert code == 1
    assert "cannot reach Prometheus at http://127.0.0.1:9" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize(
    ("seconds", "labels"),
    [
        (240, ["20:01", "20:02", "20:03", "20:04"]),
        (60, ["20:03:10", "20:03:20", "20:03:30", "20:03:40", "20:03:50", "20:04:00"]),
        (900, ["19:51", "19:54", "19:57", "20:00", "20:03"]),
    ],
)
def test_time_axis_ticks_on_round_times(seconds, labels):
    import matplotlib.pyplot as plt

    end = datetime(2026, 11, 28, 20, 4, 5, tzinfo=UTC).timestamp()
    window = Window(end=end, seconds=seconds, step=5)
    fig, ax = plt.subplots()
    report._time_axis(ax, window)
    fig.canvas.draw()
    shown = [t.get_text() for t in ax.get_xticklabels()]
    plt.close(fig)
    assert shown == labels
