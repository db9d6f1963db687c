"""Mermaid ``xychart-beta`` bar charts, which GitHub renders natively in job summaries and PR comments."""

from __future__ import annotations

import json
from collections.abc import Sequence

from .jsonfile import Json
from .tables import number, quote

CHART_BARS = 8  # bars one chart draws, the largest; its table lists every row
CHART_FROM = 0.5  # a drift chart is drawn once some column reaches this share of its threshold
LABEL_CHARS = 20  # longer chart labels are cut in the middle, so the bars keep the width


def bar_chart(
    title: str,
    labels: Sequence[str],
    bars: Sequence[float],
    axis: str,
    threshold: float | None = None,
) -> str:
    """A Mermaid ``xychart-beta`` horizontal bar chart of the first ``CHART_BARS`` bars.

    Horizontal, so that each label has a row of its own: under upright bars, ten column names
    overlap into one unreadable strip at the 1012 px of a job summary. Callers put the bars that
    matter first and keep every row in a table. ``threshold`` is drawn as a line across the bars.
    """
    shown = [float(value) for value in bars[:CHART_BARS]]
    quoted = ", ".join(json.dumps(label, ensure_ascii=False) for label in short_labels(labels[:CHART_BARS]))
    top = max([*shown, threshold or 0.0, 0.0]) * 1.1 or 1.0
    chart = [
        "```mermaid",
        "---",  # the height follows the bars, so three bars are not drawn half a page tall
        f"config: {json.dumps({'xyChart': {'height': 100 + 40 * len(shown)}})}",
        "---",
        "xychart-beta horizontal",
        f"    title {json.dumps(_label(title), ensure_ascii=False)}",
        f"    x-axis [{quoted}]",
        f"    y-axis {json.dumps(_label(axis), ensure_ascii=False)} 0 --> {top:.4g}",
        f"    bar [{', '.join(f'{v:.4g}' for v in shown)}]",
    ]
    if threshold is not None:
        chart.append(f"    line [{', '.join(f'{threshold:.4g}' for _ in shown)}]")
    return "\n".join([*chart, "```"])


def short_labels(labels: Sequence[str]) -> list[str]:
    """Labels of at most ``LABEL_CHARS``, still distinct: Mermaid draws equal labels as one bar.

    A long name is cut in the middle, as its start and its end (``_2024``, ``_ratio``) are what
    tell similar columns apart.
    """
    found: list[str] = []
    for text in map(_label, labels):
        label = short = text if len(text) <= LABEL_CHARS else f"{text[: LABEL_CHARS - 7]}…{text[-6:]}"
        copies = 1
        while label in found:
            copies += 1
            label = f"{short[: LABEL_CHARS - len(str(copies)) - 2]} #{copies}"
        found.append(label)
    return found


def _label(text: str) -> str:
    """Mermaid labels cannot hold double quotes."""
    return text.replace('"', "'")


def drift_chart(title: str, rows: Sequence[Json]) -> str | None:
    """The columns nearest their thresholds as bars, in % of each one's threshold, which is a line.

    Thresholds differ by column, so each distance is drawn as a share of its own. While every
    column stays under ``CHART_FROM`` of its threshold, bars near zero would only repeat the
    table's "drifted" column: one sentence names the closest column instead. None when no row
    has both numbers.
    """
    shares = sorted(
        ((share, str(d.get("column"))) for d in rows if (share := threshold_share(d)) is not None),
        key=lambda found: (-found[0], found[1]),
    )
    if not shares:
        return None
    closest, column = shares[0]
    if closest < CHART_FROM:
        return f"No column is near its drift threshold: the closest, {quote(column)}, is at {closest:.1%}."
    more = f" ({CHART_BARS} nearest of {len(shares)} columns)" if len(shares) > CHART_BARS else ""
    return bar_chart(
        f"{title}{more}",
        [name for _, name in shares],
        [100 * share for share, _ in shares],
        "% of the column's threshold",
        threshold=100.0,
    )


def threshold_share(row: Json) -> float | None:
    """A drift row's distance over its threshold, or None where either is not a number."""
    statistic, threshold = number(row.get("statistic")), number(row.get("threshold"))
    if statistic is None or threshold is None or threshold <= 0:
        return None
    return statistic / threshold
