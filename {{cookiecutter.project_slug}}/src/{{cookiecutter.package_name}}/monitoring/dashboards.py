"""Monitoring reports people look at: charts, a self-contained HTML page, a Markdown summary, JSON.

The HTML page carries its charts inline (base64 PNG) and its style in the page, so it opens from
a CI artifact or an e-mail attachment with no network. Distribution charts are drawn from the
profiles' sketches (KLL quantiles for numbers, frequent items for categories), never from raw
rows, so they cost the same for a thousand rows or a billion.
"""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from io import BytesIO
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..config import resolve
from ..profiling import ColumnProfileView, frequencies, histogram, quantiles
from ..reports import charts as mermaid
from ..reports import jsonfile, tables
from .columns import ColumnReport
from .estimate import Estimate
from .labels import Calibration
from .monitor import Comparison, MonitorResult
from .window import UNVERSIONED

REFERENCE_COLOR, CURRENT_COLOR, ALERT_COLOR, OK_COLOR = "#4c72b0", "#dd8452", "#c44e52", "#55a868"
MAX_CATEGORIES = 12
TREND_LINES = 6  # more lines than this on one chart read as noise
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 70rem; color: #222; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
.verdict { padding: .6rem 1rem; border-radius: .4rem; color: white; display: inline-block; }
.bad { background: #c44e52; } .good { background: #55a868; }
table { border-collapse: collapse; margin: .5rem 0; }
td, th { padding: .25rem .7rem; border-bottom: 1px solid #eee; }
th { text-align: left; background: #f6f6f6; } td.flag { color: #c44e52; font-weight: 600; }
img { max-width: 100%; margin: .5rem 0; } .charts img { max-width: 48%; }
"""


@dataclass(frozen=True)
class Section:
    """A titled table, rendered alike in Markdown and HTML."""

    title: str
    header: list[str]
    rows: list[list[str]]
    verdict_column: int | None = None


@dataclass(frozen=True)
class ReportPaths:
    """Where a monitoring run left its outputs."""

    json: Path
    markdown: Path
    html: Path
    charts: list[Path]


# ---------------------------------------------------------------- charts


def overview_chart(result: MonitorResult) -> Figure:
    """Every column's drift score against its threshold; red bars are over."""
    columns = result.columns
    figure, axis = plt.subplots(figsize=(7, 0.35 * len(columns) + 1.2), dpi=100)
    names = [f"{c.column} ({c.role})" if c.role != "feature" else c.column for c in columns]
    colors = [ALERT_COLOR if c.drifted else OK_COLOR for c in columns]
    axis.barh(names, [c.statistic for c in columns], color=colors)
    axis.scatter([c.threshold for c in columns], names, marker="|", s=200, color="black", label="threshold")
    axis.invert_yaxis()
    axis.set(xlim=(0, _top(c.statistic for c in columns)), xlabel="distance (the table names each column's)")
    axis.set(title="Drift score by column")
    axis.legend(loc="lower right")
    figure.tight_layout()
    return figure


def distribution_chart(column: str, reference: ColumnProfileView, current: ColumnProfileView) -> Figure:
    """Reference versus production: histograms from KLL sketches, or category shares."""
    figure, axis = plt.subplots(figsize=(6, 3.4), dpi=100)
    ref_range, cur_range = quantiles(reference, [0.0, 1.0]), quantiles(current, [0.0, 1.0])
    if ref_range is not None and cur_range is not None:
        low, high = min(ref_range[0], cur_range[0]), max(ref_range[1], cur_range[1])
        edges = np.linspace(low, high if high > low else low + 1, 31)
        for view, label, color in (
            (reference, "reference", REFERENCE_COLOR),
            (current, "production", CURRENT_COLOR),
        ):
            axis.stairs(histogram(view, edges), edges, label=label, color=color, fill=True, alpha=0.45)
        axis.set(xlabel=column, ylabel="share of rows")
    else:
        ref, cur = frequencies(reference), frequencies(current)
        names = sorted(set(ref) | set(cur), key=lambda name: -max(ref.get(name, 0.0), cur.get(name, 0.0)))[
            :MAX_CATEGORIES
        ]
        positions = np.arange(len(names))
        axis.bar(
            positions - 0.2, [ref.get(n, 0.0) for n in names], 0.4, label="reference", color=REFERENCE_COLOR
        )
        axis.bar(
            positions + 0.2, [cur.get(n, 0.0) for n in names], 0.4, label="production", color=CURRENT_COLOR
        )
        axis.set_xticks(positions, names, rotation=30, ha="right")
        axis.set(ylabel="share of rows")
    axis.set_title(f"{column}: reference vs production")
    axis.legend()
    figure.tight_layout()
    return figure


def _times(timeline: list[dict[str, Any]]) -> np.ndarray:
    """The points' times as UTC instants matplotlib places on a date axis."""
    naive = [datetime.fromisoformat(point["time"]).replace(tzinfo=None) for point in timeline]
    return np.array(naive, dtype="datetime64[s]")


def _time_axis(axis: Axes) -> None:
    """Dates on a real time axis: two points a day apart are drawn a day apart."""
    locator = mdates.AutoDateLocator(maxticks=8)  # type: ignore[no-untyped-call]
    axis.xaxis.set_major_locator(locator)
    axis.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]


def timeline_chart(timeline: list[dict[str, Any]]) -> Figure:
    """Prediction mix over time: class shares, or the p10-p90 band and median."""
    figure, axis = plt.subplots(figsize=(7, 3.2), dpi=100)
    times = _times(timeline)
    if any("quantiles" in point for point in timeline):
        quantiles = [point.get("quantiles", {}) for point in timeline]
        low, mid, high = ([q.get(k, np.nan) for q in quantiles] for k in ("p10", "p50", "p90"))
        axis.fill_between(times, low, high, color=CURRENT_COLOR, alpha=0.3, label="p10-p90")
        axis.plot(times, mid, marker=".", color=CURRENT_COLOR, label="median")
        axis.set(ylabel="prediction")
    else:
        classes = sorted({name for point in timeline for name in point.get("shares", {})})
        for name in classes:
            axis.plot(
                times, [p.get("shares", {}).get(name, 0.0) for p in timeline], marker=".", label=str(name)
            )
        axis.set(ylabel="share of predictions", ylim=(0, 1))
    _time_axis(axis)
    axis.set(title="Predictions over time (UTC)")
    if axis.get_legend_handles_labels()[0]:
        axis.legend()
    figure.tight_layout()
    return figure


def trend_chart(timeline: list[dict[str, Any]], columns: list[ColumnReport]) -> Figure:
    """Each column's drift score over time, the columns that moved most drawn, their threshold dashed."""
    figure, axis = plt.subplots(figsize=(7, 3.4), dpi=100)
    times = _times(timeline)
    scored = [c for c in columns if c.role != "label"]
    peak = {
        c.column: max((p.get("scores", {}).get(c.column, 0.0) for p in timeline), default=0.0) for c in scored
    }
    for column in sorted(scored, key=lambda c: -peak[c.column])[:TREND_LINES]:
        values = [p.get("scores", {}).get(column.column, np.nan) for p in timeline]
        (line,) = axis.plot(times, values, marker=".", label=column.column)
        axis.axhline(column.threshold, color=line.get_color(), linestyle=":", linewidth=1)
    _time_axis(axis)
    peaks = [peak[c.column] for c in scored]
    axis.set(ylim=(0, _top(peaks)), ylabel="distance", title="Drift score over time (dotted: each threshold)")
    if axis.get_legend_handles_labels()[0]:
        axis.legend(fontsize="small", ncol=2)
    figure.tight_layout()
    return figure


def _top(values: Iterable[float]) -> float:
    """The score axis's end: 1 for the bounded distances, further when PSI or Wasserstein exceed it."""
    return max(1.0, 1.05 * max(values, default=0.0))


def charts(comparison: Comparison) -> dict[str, Figure]:
    """Overview, prediction timeline, and one distribution chart per drifted column (and prediction)."""
    result = comparison.result
    figures = {
        "overview": overview_chart(result),
        "prediction-timeline": timeline_chart(result.timeline),
        "drift-trend": trend_chart(result.timeline, result.columns),
    }
    for column in result.columns:
        source = comparison.labels if column.role == "label" else comparison.current
        if (column.drifted or column.role == "prediction") and source is not None:
            ref, cur = comparison.reference.view.get_column(column.column), source.get_column(column.column)
            figures[f"distribution-{column.column}"] = distribution_chart(column.column, ref, cur)
    return figures


# ---------------------------------------------------------------- tables


def sections(result: MonitorResult) -> list[Section]:
    """The report's tables, in reading order, shared by the Markdown and HTML renderings."""
    found = [Section("Alerts", ["finding"], [[alert] for alert in result.alerts] or [["none"]], 0)]
    kind, evidence = result.diagnosis
    found.append(Section(f"Diagnosis: {kind}", ["evidence"], [[line] for line in evidence]))
    found.append(
        Section(
            "Columns",
            # Seven columns, status second: at GitHub's 1,012 px the eleventh of eleven was off
            # screen. The role is in the column's name, the type in the status when it changed.
            [
                "column",
                "status",
                "distance",
                "score / threshold",
                "p-value",
                "vs previous",
                "missing (ref -> now)",
            ],
            [_column_row(c) for c in result.columns],
            verdict_column=1,
        )
    )
    if result.performance:
        perf = result.performance
        primary = perf.judged_metric
        rows = [
            [n, _num(perf.training.get(n)), _num(v), _interval(perf.interval) if n == primary else "-"]
            for n, v in perf.metrics.items()
        ]
        if perf.roc_auc_absent:
            absent = f"not measured: {perf.roc_auc_absent}"
            rows.append(["roc_auc", _num(perf.training.get("roc_auc")), absent, "-"])
        found.append(
            Section(
                f"Performance: {result.labels.line()}",
                ["metric", "training (test)", "production", "95% interval"],
                rows,
            )
        )
    found += _estimate(result) + _unseen(result)
    if result.performance and result.performance.calibration:
        found.append(_calibration(result.performance.calibration))
    if result.performance and result.performance.by_version:
        metric = result.performance.judged_metric
        rows = [
            [version, str(int(values["labelled"])), _num(values.get(metric))]
            for version, values in result.performance.by_version.items()
        ]
        found.append(Section("Performance by model version", ["version", "labelled", metric], rows))
    if result.unreadable_files:
        rows = [[name, reason] for name, reason in sorted(result.unreadable_files.items())]
        found.append(Section("Unreadable profiles (skipped)", ["file", "why"], rows))
    if result.health:
        found.append(Section("Service health", ["measure", "value"], _health_rows(result)))
    return found


def _estimate(result: MonitorResult) -> list[Section]:
    """The performance estimated before labels, and once labels came, beside what they realised."""
    rows = []
    for rows_of, guess in (("window", result.labels.estimate), ("labelled rows", _checked(result))):
        if guess is None:
            continue
        low, high = guess.band
        realised = "-" if guess.realised is None else f"{guess.realised:.3f}"
        inside = {None: "-", True: "yes", False: "no"}[guess.within_band]
        rows.append([
            f"{rows_of} ({guess.rows:,})", guess.metric, f"{guess.value:.3f}", f"{low:.3f} - {high:.3f}",
            f"{guess.threshold:.3f}" + (" (ALERT)" if guess.alert else ""), realised, inside,
        ])  # fmt: skip
    if rows:
        header = ["rows", "metric", "estimate", "95% sampling band", "alert below", "realised", "in band"]
        return [Section("Estimate before labels (CBPE on the logged probabilities)", header, rows)]
    why = result.labels.estimate_absent
    return [Section("Estimate before labels", ["why none"], [[why]])] if why else []


def _checked(result: MonitorResult) -> Estimate | None:
    """The estimate on the labelled rows, with their realised metric (None before labels)."""
    return result.performance.estimate if result.performance else None


def _unseen(result: MonitorResult) -> list[Section]:
    """What a quiet column rules out: the smallest move this window flags in 80 % of windows."""
    rows = [
        [column.column, column.distance, f"{column.detectable:.3f}", f"{column.statistic:.3f}"]
        for column in result.columns
        if not column.drifted and column.detectable is not None
    ]
    title = "Smallest move this window could see (columns without drift: no move of at least this size)"
    return [Section(title, ["column", "distance", "detectable from", "measured"], rows)] if rows else []


def _calibration(calibration: Calibration) -> Section:
    """The reliability table: per tenth of predicted probability, what came true, and the ECE."""
    rows = [
        [f"{b.low:.1f} - {b.high:.1f}", f"{b.mean_predicted:.3f}", f"{b.observed_rate:.3f}", str(b.count)]
        for b in calibration.bins
    ]
    title = (
        f"Calibration of P({calibration.positive_class}): "
        f"expected calibration error {calibration.expected_error:.3f}"
    )
    return Section(title, ["predicted", "mean predicted", "observed rate", "labelled"], rows)


def _column_row(column: ColumnReport) -> list[str]:
    """One table row per column; the status names what is wrong, if anything.

    The score and its threshold print at one precision that keeps their order, and the test's
    p-value as ``p<0.001`` or ``p=0.03``.
    """
    status = "; ".join(alert.split(": ", 1)[1] for alert in column.alerts) or "ok"
    if column.type_reference != column.type_current and "type" not in status:
        status += f"; type {column.type_reference} -> {column.type_current}"
    name = column.column if column.role == "feature" else f"{column.column} ({column.role})"
    score, threshold = tables.versus(column.statistic, column.threshold)
    missing = f"{column.missing_reference:.1%} -> {column.missing_current:.1%}"
    return [
        name,
        status,
        column.distance,
        f"{score} / {threshold}",
        tables.p_value(column.p_value),
        _since_previous(column),
        missing,
    ]


def _since_previous(column: ColumnReport) -> str:
    """The latest bucket's distance from the one before, marked when that jump alone is beyond noise."""
    if column.vs_previous is None:
        return "-"
    return f"{column.vs_previous:.3f}" + (" (jumped)" if column.moved_since_previous else "")


def _health_rows(result: MonitorResult) -> list[list[str]]:
    """Requests, errors, latency percentiles, resources, per-endpoint counts."""
    health = result.health
    assert health is not None
    rows = [
        ["requests", str(health.requests)],
        ["server errors (5xx)", str(health.server_errors)],
        ["client errors (4xx)", str(health.client_errors)],
        ["error rate", f"{health.error_rate:.2%}"],
    ]
    rows += [[f"latency {name}", f"{value:.1f} ms"] for name, value in health.latency_ms.items()]
    rows += [[name, f"{value:.1f}"] for name, value in health.resources.items()]
    return rows + [
        [f"{endpoint} HTTP {code}", str(n)]
        for endpoint, codes in health.by_endpoint.items()
        for code, n in codes.items()
    ]


def _interval(bounds: tuple[float, float]) -> str:
    return f"{bounds[0]:.3f} - {bounds[1]:.3f}"


def drift_chart(result: MonitorResult) -> str | None:
    """The columns nearest their thresholds as a Mermaid chart, drawn by GitHub itself.

    GitHub renders ```` ```mermaid ```` blocks wherever it renders Markdown, pull request bodies
    and comments included (github/roadmap#372), and in job summaries, which take GitHub-flavoured
    Markdown (github.blog, "Supercharging GitHub Actions with Job Summaries", 2022-05-09).
    """
    rows = [
        {"column": c.column, "statistic": c.statistic, "threshold": c.threshold}
        for c in result.columns
        if c.role != "label"
    ]
    return mermaid.drift_chart("Production drift", rows)


def _num(value: float | None) -> str:
    """Three decimals, or a dash when unknown."""
    return "-" if value is None else f"{value:.3f}"


def verdict(result: MonitorResult) -> str:
    """The worst kind of finding, named for what it is, then the other kinds found.

    Only drift is called drift: a data-quality finding or an unreadable file heads the page as
    itself, with "no drift" said outright, so nobody reads it as a reason to retrain.
    """
    kinds = result.alert_kinds
    if not kinds:
        return "no drift"
    if kinds[0] == "drift":
        first = f"DRIFT DETECTED ({result.diagnosis[0]})"
    elif kinds[0] == "unreadable":
        first = f"UNREADABLE PROFILES ({len(result.unreadable_files)} skipped; no drift)"
    else:
        first = f"{kinds[0].upper()} ALERT (no drift)"
    return first + (f", also {' and '.join(kinds[1:])}" if kinds[1:] else "")


def headline(result: MonitorResult) -> str:
    """One line: the verdict and what the window held."""
    model = result.reference.get("model")
    against = f"model {model} v{result.reference.get('version')}" if model else result.reference["source"]
    window = f"{result.window_start} to {result.window_end}"
    senders = ", ".join(f"{client} {rows:,}" for client, rows in result.clients.items())
    left_out = f"; left out: {', '.join(result.excluded_clients)}" if result.excluded_clients else ""
    served_by = ", ".join(
        f"{version if version == UNVERSIONED else 'v' + version} {rows:,}"
        for version, rows in result.versions.items()
    )
    left_out += f"; served by model {served_by}" if served_by else ""
    return (
        f"{verdict(result)}: {result.rows:,} rows in {result.files:,} profiles ({senders}{left_out}), "
        f"{window}, against {against} ({tables.fmt(result.reference['rows'])} training rows)"
    )


# ---------------------------------------------------------------- renderings


def markdown(result: MonitorResult) -> str:
    """The job-summary rendering: headline, then each table, the drift chart after the columns."""
    lines = ["## Production monitoring", "", f"**{headline(result)}**", ""]
    for section in sections(result):
        lines += [f"### {section.title}", "", tables.table(section.header, section.rows), ""]
        if section.title == "Columns" and (chart := drift_chart(result)):
            lines += [chart, ""]
    lines.append("Charts and the full page: `report.html` in the monitoring artifact.")
    return "\n".join(lines) + "\n"


def page(result: MonitorResult, images: dict[str, bytes]) -> str:
    """The self-contained HTML page: inline style, inline base64 PNG charts, no external URL."""
    verdict = "bad" if result.alert_kinds else "good"
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Production monitoring</title>",
        f"<style>{STYLE}</style></head><body><h1>Production monitoring</h1>",
        f"<p class='verdict {verdict}'>{html.escape(headline(result))}</p>",
    ]
    for section in sections(result):
        parts.append(f"<h2>{html.escape(section.title)}</h2>{_table(section)}")
    parts.append("<h2>Charts</h2><div class='charts'>")
    for name, png in images.items():
        encoded = base64.b64encode(png).decode()
        parts.append(f"<img alt='{html.escape(name)}' src='data:image/png;base64,{encoded}'>")
    parts.append("</div></body></html>")
    return "\n".join(parts)


def _table(section: Section) -> str:
    """An HTML table; cells that report a problem are highlighted."""
    head = "".join(f"<th>{html.escape(cell)}</th>" for cell in section.header)
    body = "".join(
        "<tr>"
        + "".join(f"<td{_flag(section, i, cell)}>{html.escape(cell)}</td>" for i, cell in enumerate(row))
        + "</tr>"
        for row in section.rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _flag(section: Section, index: int, cell: str) -> str:
    """Highlight verdict cells that report a problem."""
    return " class='flag'" if index == section.verdict_column and cell not in {"ok", "none"} else ""


def png(figure: Figure) -> bytes:
    """Render and close a figure (matplotlib keeps open figures alive otherwise)."""
    buffer = BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


def write(comparison: Comparison, folder: str | Path) -> ReportPaths:
    """``monitor.json``, ``monitor.md``, ``report.html`` and one PNG per chart into ``folder``."""
    target = resolve(folder)
    target.mkdir(parents=True, exist_ok=True)
    for stale in target.glob("distribution-*.png"):
        stale.unlink()
    images = {name: png(figure) for name, figure in charts(comparison).items()}
    chart_paths = []
    for name, data in images.items():
        path = target / f"{name}.png"
        path.write_bytes(data)
        chart_paths.append(path)
    result = comparison.result
    json_path = jsonfile.write_json(result.to_dict(), target / "monitor.json")
    md_path = target / "monitor.md"  # beside monitor.json: the job summary shows it for it
    md_path.write_text(markdown(result))
    html_path = target / "report.html"
    html_path.write_text(page(result, images))
    return ReportPaths(json_path, md_path, html_path, chart_paths)


def publish(result: MonitorResult, paths: ReportPaths) -> None:
    """In GitHub Actions: ``drift=true|false``, ``alerts`` (kinds) and the report path as step outputs.

    The job summary is ``nox -s summary``'s: it renders ``monitor.md`` once, with every other report.
    """
    output = os.environ.get("GITHUB_OUTPUT")
    if output:
        with Path(output).open("a") as handle:
            handle.write(
                f"drift={str(result.drift_detected).lower()}\nreport={paths.html}\njson={paths.json}\n"
            )
            handle.write(f"drifted_columns={','.join(result.drifted_columns)}\n")
            handle.write(f"alerts={','.join(result.alert_kinds)}\n")
