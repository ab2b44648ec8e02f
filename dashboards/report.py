"""A PNG of the dashboard's panels, from Prometheus' data, without Grafana.

    tools/bazel run //dashboards:report -- --prometheus-url http://localhost:9090 \\
        --range 15m --output pipeline.png

Why: a picture of a run belongs in a README, a benchmark note or a bug report, and
Grafana is not always running. The panels are the dashboard's own (`panels.py`), fetched
the same way (`fetch.py`), drawn with matplotlib: lines for time series, coloured bands
for up/down states, bars for a distribution, and a clear message where a panel has no data.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: files only

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.ticker import PercentFormatter

from dashboards.fetch import (
    PanelData,
    PrometheusAPI,
    Series,
    Window,
    auto_step,
    fetch_dashboard,
    parse_duration,
    summarize,
)
from dashboards.panels import DASHBOARDS, Dashboard
from libs.cli.flags import flag
from libs.cli.settings import non_negative_int

COLUMNS = 3
CELL_INCHES = (6.4, 3.6)
DPI = 110
MAX_LEGEND = 8  # more series than this: the rest are drawn but not listed
UNIT_LABEL = {"s": "seconds", "percentunit": "", "short": ""}
STATE_COLOURS = {1.0: "#3aa655", 0.0: "#d64545"}  # up, down; anything else grey


TICK_SECONDS = (10, 15, 30, 60, 120, 180, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200)


def _time_axis(ax: Axes, window: Window) -> None:
    """About five ticks on round times; seconds shown only when ticks are under a minute."""
    every = next((s for s in TICK_SECONDS if window.seconds / s <= 6), 86400)
    if every < 60:
        locator = mdates.SecondLocator(bysecond=range(0, 60, every), tz=UTC)
    elif every < 3600:
        locator = mdates.MinuteLocator(byminute=range(0, 60, every // 60), tz=UTC)
    elif every < 86400:
        locator = mdates.HourLocator(byhour=range(0, 24, every // 3600), tz=UTC)
    else:
        locator = mdates.DayLocator(tz=UTC)
    ax.xaxis.set_major_locator(locator)
    fmt = "%H:%M:%S" if every < 60 else "%H:%M" if every < 86400 else "%m-%d"
    ax.xaxis.set_major_formatter(mdates.DateFormatter(fmt, tz=UTC))
    start, end = (datetime.fromtimestamp(t, UTC) for t in (window.start, window.end))
    ax.set_xlim(start, end)


def _dates(series: Series) -> list[datetime]:
    return [datetime.fromtimestamp(t, UTC) for t in series.times]


def _message(ax: Axes, text: str, colour: str = "#777777") -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color=colour)
    ax.set_xticks([])
    ax.set_yticks([])


def _is_zero(series: Series) -> bool:
    return all(v == 0 or not math.isfinite(v) for v in series.values)


def draw_timeseries(ax: Axes, data: PanelData, window: Window) -> None:
    panel = data.panel
    series = [s for s in data.series if s.has_values]
    moved = [s for s in series if not _is_zero(s)]
    # Series that stay at 0 are drawn in grey. When there are many (a DLQ reason per
    # possible error), only the ones that moved are named and the rest counted.
    listed = series if len(series) <= MAX_LEGEND else moved[:MAX_LEGEND]
    for s in series:
        # A series with a few points (a ratio that just became defined) gets markers,
        # or a lone point would not show.
        few = sum(math.isfinite(v) for v in s.values) <= 3
        style = {"marker": "o", "markersize": 3} if few else {}
        if s in moved:
            ax.plot(_dates(s), s.values, label=s.name if s in listed else None, lw=1.3, **style)
        else:
            label = s.name if s in listed else None
            ax.plot(_dates(s), s.values, color="#bbbbbb", lw=0.8, label=label, **style)
    hidden = len(series) - len(listed)
    if listed:
        title = f"+{hidden} more at 0" if hidden else None
        ax.legend(fontsize=7, loc="upper left", title=title, title_fontsize=7)
    elif hidden:
        ax.text(0.02, 0.95, f"{hidden} series, all 0", transform=ax.transAxes, fontsize=7)
    if panel.unit == "percentunit":
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    bottom = panel.min if panel.min is not None else None
    top = panel.max * 1.05 if panel.max is not None else None
    if top is None and all(_is_zero(s) for s in series):
        top = 1.0  # a flat zero line sits at the bottom, not in the middle
    ax.set_ylim(bottom=bottom, top=top)
    _time_axis(ax, window)
    ax.grid(True, alpha=0.3)


def draw_state(ax: Axes, data: PanelData, window: Window) -> None:
    """One band per series, green where 1 (up), red where 0 (down), grey otherwise."""
    series = [s for s in data.series if s.has_values]
    for row, s in enumerate(series):
        segments: dict[str, list[tuple[float, float]]] = {}
        starts = mdates.date2num(_dates(s))
        for i, (t, v) in enumerate(zip(s.times, s.values, strict=True)):
            seconds = (s.times[i + 1] - t) if i + 1 < len(s.times) else window.step
            colour = STATE_COLOURS.get(v, "#bbbbbb")
            segments.setdefault(colour, []).append((starts[i], seconds / 86400))  # in days
        for colour, spans in segments.items():
            ax.broken_barh(spans, (row - 0.35, 0.7), facecolors=colour)
    ax.set_yticks(range(len(series)), [s.name for s in series], fontsize=8)
    ax.set_ylim(-0.6, len(series) - 0.4)
    ax.invert_yaxis()
    _time_axis(ax, window)


def draw_bars(ax: Axes, data: PanelData, window: Window) -> None:
    series = [s for s in data.series if s.has_values]
    names = [s.name for s in series]
    values = [s.values[-1] if math.isfinite(s.values[-1]) else 0.0 for s in series]
    bars = ax.barh(names, values, color="#5b8def")
    ax.bar_label(bars, labels=[f"{v:,.0f}" for v in values], fontsize=8, padding=3)
    ax.invert_yaxis()
    ax.set_xlim(0, max([*values, 1.0]) * 1.15)
    ax.tick_params(axis="y", labelsize=8)
    ax.grid(True, axis="x", alpha=0.3)


DRAW = {"timeseries": draw_timeseries, "state": draw_state, "bars": draw_bars}


def draw_panel(ax: Axes, data: PanelData, window: Window) -> None:
    panel = data.panel
    ax.set_title(panel.title, fontsize=10, loc="left", fontweight="bold")
    if data.errors:
        _message(ax, "query failed:\n" + _wrap(data.errors[0]), colour="#c0392b")
        return
    if not data.has_data:
        exprs = "\n".join(_wrap(r.expr) for r in data.results)
        _message(ax, f"No data in this range for\n{exprs}")
        return
    DRAW[panel.kind](ax, data, window)
    label = panel.axis_label or UNIT_LABEL.get(panel.unit, "")
    if label and panel.kind == "bars":
        ax.set_xlabel(label, fontsize=8)
    elif label:
        ax.set_ylabel(label, fontsize=8)
    ax.tick_params(labelsize=8)


def _wrap(text: str, width: int = 60) -> str:
    return "\n".join(text[i : i + width] for i in range(0, len(text), width))


def render(
    dashboard: Dashboard, data: tuple[PanelData, ...], window: Window, source: str, output: Path
) -> None:
    """Draw `data` (one item per panel, in the dashboard's order) into a PNG at `output`."""
    rows = math.ceil(len(data) / COLUMNS)
    fig, axes = plt.subplots(
        rows,
        COLUMNS,
        figsize=(CELL_INCHES[0] * COLUMNS, CELL_INCHES[1] * rows + 0.6),
        squeeze=False,
    )
    for ax, item in zip(axes.flat, data, strict=False):
        draw_panel(ax, item, window)
    for ax in list(axes.flat)[len(data) :]:
        ax.set_visible(False)
    start = datetime.fromtimestamp(window.start, UTC)
    end = datetime.fromtimestamp(window.end, UTC)
    fig.suptitle(
        f"{dashboard.title} — {start:%Y-%m-%d %H:%M:%S} to {end:%H:%M:%S} UTC "
        f"({window.seconds / 60:g} min, step {window.step:g} s) — {source}",
        fontsize=13,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=DPI)
    plt.close(fig)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="report", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    flag(
        parser,
        "--prometheus-url",
        env="FRAUD_PROMETHEUS_URL",
        default="http://localhost:9090",
        help="Prometheus to query",
    )
    flag(
        parser,
        "--range",
        env="FRAUD_REPORT_RANGE",
        default="15m",
        type=str,
        help="time range ending now: 90s, 15m, 1h",
    )
    flag(
        parser,
        "--step",
        env="FRAUD_REPORT_STEP",
        default=0,
        type=non_negative_int,
        help="seconds between points (0: about 240 points across the range)",
    )
    flag(
        parser,
        "--dashboard",
        env="FRAUD_REPORT_DASHBOARD",
        default=DASHBOARDS[0].uid,
        choices=[d.uid for d in DASHBOARDS],
        help="which dashboard",
    )
    parser.add_argument("--output", type=Path, required=True, help="PNG file to write")
    args = parser.parse_args(argv)
    try:
        args.range_seconds = parse_duration(args.range)
    except ValueError as err:
        parser.error(str(err))
    return args


def output_path(path: Path) -> Path:
    """Relative paths are relative to where `bazel run` was called, not the runfiles."""
    base = os.environ.get("BUILD_WORKING_DIRECTORY")
    return path if path.is_absolute() or not base else Path(base) / path


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    dashboard = next(d for d in DASHBOARDS if d.uid == args.dashboard)
    window = Window(
        end=time.time(),
        seconds=args.range_seconds,
        step=float(args.step) or auto_step(args.range_seconds),
    )
    api = PrometheusAPI(args.prometheus_url)
    try:
        api.get("status/buildinfo")
    except Exception as err:  # say what is wrong before drawing 12 error panels
        print(f"error: {err}", file=sys.stderr)
        return 1
    data = fetch_dashboard(api, dashboard, window)
    output = output_path(args.output)
    render(dashboard, data, window, args.prometheus_url, output)
    summary = summarize(data)
    print(f"wrote {output}: {summary.panels} panels from {args.prometheus_url}, last {args.range}")
    for title in summary.empty:
        print(f"  no data: {title}")
    for line in summary.failed:
        print(f"  failed:  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
