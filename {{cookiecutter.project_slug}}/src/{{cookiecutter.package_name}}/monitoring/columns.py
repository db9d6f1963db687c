"""Column checks: one column of the window against the reference, as a report with alerts.

Distribution distance (:mod:`..drift`), missing-value and type changes, unseen categories, and
values outside the data contract's range (a unit bug, a sign flip), all read from the two
profiles' sketches.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import drift
from ..config import MonitoringConfig
from ..profiling import ColumnProfileView, DatasetProfileView, frequencies, missing_share, value_type
from ..reports import tables


@dataclass(frozen=True)
class ColumnReport:
    """One column of the window against the reference: distance, quality changes, alerts."""

    column: str
    role: str
    kind: str
    distance: str
    statistic: float
    threshold: float
    p_value: float
    drifted: bool
    missing_reference: float
    missing_current: float
    type_reference: str
    type_current: str
    new_categories: dict[str, float] = field(default_factory=dict)
    out_of_range: float = 0.0
    alerts: list[str] = field(default_factory=list)
    vs_previous: float | None = None
    moved_since_previous: bool = False
    detectable: float | None = None
    """The smallest move this window would have flagged (:func:`..drift.detectable`): a quiet column
    rules out moves of this size, not smaller ones."""


Range = tuple[float | None, float | None]
NO_RANGE: Range = (None, None)


def outside_share(column: ColumnProfileView | None, expected: Range) -> float:
    """Share of the column's values below ``expected[0]`` or above ``expected[1]`` (KLL sketch)."""
    low, high = expected
    metric = column.get_metric("distribution") if column is not None else None
    if metric is None or metric.kll.value.is_empty() or (low is None and high is None):
        return 0.0
    sketch = metric.kll.value
    below = float(sketch.get_cdf([low])[0]) if low is not None else 0.0  # strictly below low
    top = high + 1e-9 * max(1.0, abs(high)) if high is not None else None  # high itself is inside
    above = 1.0 - float(sketch.get_cdf([top])[0]) if top is not None else 0.0
    return below + above


def new_categories(reference: ColumnProfileView, current: ColumnProfileView) -> dict[str, float]:
    """Categories the current window has and the reference never saw, with their row share."""
    known = set(frequencies(reference))
    counts = current.get_metric("counts")
    total = counts.n.value if counts else 0
    metric = current.get_metric("frequent_items")
    if not total or metric is None:
        return {}
    items = metric.to_summary_dict().get("frequent_strings", [])
    return {item.value: item.est / total for item in items if item.value not in known}


def check_column(
    cfg: MonitoringConfig,
    found: drift.ColumnDrift,
    reference: DatasetProfileView,
    current: DatasetProfileView,
    role: str,
    *,
    expected: Range = NO_RANGE,
) -> ColumnReport:
    """Combine the distance with missing-value, type, category and range checks into one report."""
    ref, cur = reference.get_column(found.column), current.get_column(found.column)
    missing_ref, missing_cur = missing_share(ref), missing_share(cur)
    type_ref, type_cur = value_type(ref), value_type(cur)
    unseen = new_categories(ref, cur) if found.kind == "categorical" and type_ref == "string" else {}
    alerts = []
    if found.drifted:  # at a precision that keeps the order, never "0.070 > 0.070"
        statistic, threshold = tables.versus(found.statistic, found.threshold)
        alerts.append(
            f"{found.column}: {role} drift {statistic} > {threshold}"
            f" ({found.distance}, {tables.p_value(found.p_value)})"
        )
    if missing_cur - missing_ref > cfg.max_missing_increase:
        alerts.append(f"{found.column}: missing values {missing_ref:.1%} -> {missing_cur:.1%}")
    if type_cur not in {type_ref, "empty"}:
        alerts.append(f"{found.column}: values changed type {type_ref} -> {type_cur}")
    notable = {name: share for name, share in unseen.items() if share > cfg.min_category_share}
    if notable:
        alerts.append(f"{found.column}: new categories {sorted(notable)}")
    outside = outside_share(cur, expected)
    if outside > cfg.max_out_of_range:
        alerts.append(
            f"{found.column}: {outside:.1%} of values outside the contract's range {list(expected)}"
        )
    return ColumnReport(
        found.column,
        role,
        found.kind,
        found.distance,
        round(found.statistic, 4),
        found.threshold,
        float(f"{found.p_value:.3g}"),
        found.drifted,
        round(missing_ref, 4),
        round(missing_cur, 4),
        type_ref,
        type_cur,
        unseen,
        round(outside, 4),
        alerts,
        detectable=None if found.detectable is None else round(found.detectable, 4),
    )


def compare_columns(
    cfg: MonitoringConfig,
    reference: DatasetProfileView,
    current: DatasetProfileView,
    roles: dict[str, str],
    ranges: dict[str, Range] | None = None,
) -> list[ColumnReport]:
    """A report for every named column present on both sides, with its role (feature, prediction...).

    The columns are one family for the significance test, held to half of ``drift_alpha``: the
    inputs with the predictions are one family, the labels (when they arrive) the other, so
    ``drift_alpha`` bounds the chance of any false alarm in a window. ``ranges`` are the data
    contract's expected ``[min, max]`` per column.
    """
    found = drift.compare(
        reference, current, list(roles), cfg.drift_threshold, thresholds(cfg, roles),
        alpha=cfg.drift_alpha / 2, distances=cfg.column_distances,
    )  # fmt: skip
    expected = ranges or {}
    return [
        check_column(
            cfg, item, reference, current, roles[item.column], expected=expected.get(item.column, NO_RANGE)
        )
        for item in found
    ]


def thresholds(cfg: MonitoringConfig, roles: dict[str, str]) -> dict[str, float]:
    """Each column's threshold: its own, else its configured distance's, else its role's.

    ``drift_threshold`` is tuned for KS and ``outcome_threshold`` for Hellinger; a column measured
    with another distance reads on that distance's scale, so it takes ``distance_thresholds``.
    """
    found = {}
    for name, role in roles.items():
        limit = cfg.drift_threshold if role == "feature" else cfg.outcome_threshold
        distance = cfg.column_distances.get(name)
        if distance is not None:
            limit = cfg.distance_thresholds.get(distance, limit)
        found[name] = cfg.column_thresholds.get(name, limit)
    return found
