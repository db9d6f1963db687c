"""Distribution distance between two whylogs profiles, column by column.

Numeric columns: the Kolmogorov-Smirnov statistic, computed from the two profiles' KLL
quantile sketches (max CDF gap at the reference quantiles). Categorical columns: the
Hellinger distance between the frequent-item distributions. Both lie in [0, 1], so one
threshold reads the same for either kind. Profiles, not raw rows, are compared, so any
number of production rows costs the same.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .profiling import DatasetProfileView, frequencies

QUANTILES = np.linspace(0.01, 0.99, 99)


@dataclass(frozen=True)
class ColumnDrift:
    """One column's distance from the reference and whether it passes the threshold."""

    column: str
    kind: str
    statistic: float
    threshold: float

    @property
    def drifted(self) -> bool:
        """Strictly above the threshold counts as drift."""
        return self.statistic > self.threshold


def compare(
    reference: DatasetProfileView,
    current: DatasetProfileView,
    columns: list[str],
    threshold: float,
    overrides: dict[str, float] | None = None,
) -> list[ColumnDrift]:
    """Distance for every named column present in both profiles."""
    results = []
    for name in columns:
        ref, cur = reference.get_column(name), current.get_column(name)
        if ref is None or cur is None:
            continue
        kind, statistic = _distance(ref, cur)
        results.append(ColumnDrift(name, kind, statistic, (overrides or {}).get(name, threshold)))
    return results


def _distance(ref: object, cur: object) -> tuple[str, float]:
    """KS when both sides carry numbers, Hellinger over frequent items otherwise."""
    ref_kll, cur_kll = _kll(ref), _kll(cur)
    if ref_kll is not None and cur_kll is not None:
        return "numeric", ks_statistic(ref_kll, cur_kll)
    return "categorical", hellinger(frequencies(ref), frequencies(cur))


def _kll(column: object) -> object | None:
    """The column's KLL sketch, or None when it saw no numbers."""
    metric = column.get_metric("distribution")  # type: ignore[attr-defined]
    if metric is None or metric.kll.value.is_empty():
        return None
    sketch: object = metric.kll.value
    return sketch


def ks_statistic(ref_kll: object, cur_kll: object) -> float:
    """Max gap between the two CDFs, evaluated at the reference's quantile points."""
    points = np.unique(np.asarray(ref_kll.get_quantiles(QUANTILES)))  # type: ignore[attr-defined]
    if len(points) == 0:
        return 0.0
    ref_cdf = np.asarray(ref_kll.get_cdf(points))[:-1]  # type: ignore[attr-defined]
    cur_cdf = np.asarray(cur_kll.get_cdf(points))[:-1]  # type: ignore[attr-defined]
    return float(np.max(np.abs(ref_cdf - cur_cdf)))


def hellinger(p: dict[str, float], q: dict[str, float]) -> float:
    """Hellinger distance between two discrete distributions (0 = same, 1 = disjoint)."""
    keys = set(p) | set(q)
    if not keys:
        return 0.0
    gaps = [(np.sqrt(p.get(k, 0.0)) - np.sqrt(q.get(k, 0.0))) ** 2 for k in keys]
    return float(np.sqrt(sum(gaps) / 2))
