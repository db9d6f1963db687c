"""The data gate's section: its verdict, violations and drift against the reference profile."""

from __future__ import annotations

from collections.abc import Sequence

from .charts import drift_chart
from .jsonfile import Json
from .tables import table

DRIFTED = {True: "⚠️ yes", False: "no"}  # not pass/fail marks: drift is a signal, not an error


def validation_section(report: Json) -> str:
    """Data gate: verdict, violations and per-column drift against the reference profile."""
    verdict = "passed ✅" if report.get("passed") else "FAILED ❌"
    parts = [f"### Data validation: {verdict}", f"`{report.get('path')}`: {report.get('rows')} rows"]
    if violations := report.get("violations"):
        parts.append(
            table(["column", "rule", "detail"], ([v["column"], v["rule"], v["detail"]] for v in violations))
        )
    if drift := report.get("drift"):
        parts.append(drift_table(drift))
        if chart := drift_chart("Drift against the reference profile", drift):
            parts.append(chart)
    return "\n\n".join(parts)


def drift_table(rows: Sequence[Json]) -> str:
    """Per-column distances with their thresholds."""
    header = ["column", "kind", "distance", "threshold", "drifted"]
    return table(
        header,
        (
            [
                d.get("column"),
                d.get("kind"),
                d.get("statistic"),
                d.get("threshold"),
                DRIFTED[bool(d.get("drifted"))],
            ]
            for d in rows
        ),
    )
