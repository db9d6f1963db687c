"""Column checks: one column of the window against the reference, as a report with alerts.

Distribution distance (:mod:`..drift`), missing-value and type changes and unseen categories,
all read from the two profiles' sketches.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import drift
from ..config import MonitoringConfig
from ..profiling import ColumnProfileView, DatasetProfileView, frequencies, missing_share, value_type


@dataclass(frozen=True)
class ColumnReport:
    """One column of the window against the reference: distance, quality changes, alerts."""

    column: str
    role: str
    kind: str
    statistic: float
    threshold: float
    drifted: bool
    missing_reference: float
    missing_current: float
    type_reference: str
    type_current: str
    new_categories: dict[str, float] = field(default_factory=dict)
    alerts: list[str] = field(default_factory=list)


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
) -> ColumnReport:
    """Combine the distance with missing-value, type and category checks into one column report."""
    ref, cur = reference.get_column(found.column), current.get_column(found.column)
    missing_ref, missing_cur = missing_share(ref), missing_share(cur)
    type_ref, type_cur = value_type(ref), value_type(cur)
    unseen = new_categories(ref, cur) if found.kind == "categorical" and type_ref == "string" else {}
    alerts = []
    if found.drifted:
        alerts.append(
            f"{found.column}: {role} drift {found.statistic:.3f} > {found.threshold:.3f} ({found.kind})"
        )
    if missing_cur - missing_ref > cfg.max_missing_increase:
        alerts.append(f"{found.column}: missing values {missing_ref:.1%} -> {missing_cur:.1%}")
    if type_cur not in {type_ref, "empty"}:
        alerts.append(f"{found.column}: values changed type {type_ref} -> {type_cur}")
    notable = {name: share for name, share in unseen.items() if share > cfg.min_category_share}
    if notable:
        alerts.append(f"{found.column}: new categories {sorted(notable)}")
    return ColumnReport(
        found.column,
        role,
        found.kind,
        round(found.statistic, 4),
        found.threshold,
        found.drifted,
        round(missing_ref, 4),
        round(missing_cur, 4),
        type_ref,
        type_cur,
        unseen,
        alerts,
    )


def compare_columns(
    cfg: MonitoringConfig, reference: DatasetProfileView, current: DatasetProfileView, roles: dict[str, str]
) -> list[ColumnReport]:
    """A report for every named column present on both sides, with its role (feature, prediction...)."""
    outcomes = {name: cfg.outcome_threshold for name, role in roles.items() if role != "feature"}
    found = drift.compare(
        reference, current, list(roles), cfg.drift_threshold, outcomes | cfg.column_thresholds
    )
    return [check_column(cfg, item, reference, current, roles[item.column]) for item in found]
