"""Distribution distance between two whylogs profiles, column by column, and whether it is real.

Numeric columns: the Kolmogorov-Smirnov statistic, computed from the two profiles' KLL
quantile sketches (max CDF gap at the reference quantiles). Categorical columns: the
Hellinger distance between the frequent-item distributions. Both lie in [0, 1], so one
threshold reads the same for either kind. Profiles, not raw rows, are compared, so any
number of production rows costs the same.

A distance alone cannot tell a move from sampling noise: the noise shrinks with the number of
rows (KS ~ 1.36 / sqrt(rows) at 5 %), so a fixed threshold is blind at 3,000 rows to moves it
would need, and noisy at 100. Each column therefore also gets a p-value from its two row counts
(two-sample KS; a chi-square test of the category counts), and a column drifts when its move is
both significant, after Holm's correction across the columns compared together, and at least
the threshold, which is now the smallest move worth an alert.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import special, stats

from .profiling import DatasetProfileView, frequencies, item_counts

QUANTILES = np.linspace(0.01, 0.99, 99)


@dataclass(frozen=True)
class ColumnDrift:
    """One column's distance from the reference, its p-value, and the verdict on both."""

    column: str
    kind: str
    statistic: float
    threshold: float
    p_value: float = 0.0
    significant: bool = True

    @property
    def drifted(self) -> bool:
        """Beyond the threshold (strictly) and beyond sampling noise."""
        return self.statistic > self.threshold and self.significant


def compare(
    reference: DatasetProfileView,
    current: DatasetProfileView,
    columns: list[str],
    threshold: float,
    overrides: dict[str, float] | None = None,
    *,
    alpha: float = 1.0,
) -> list[ColumnDrift]:
    """Distance and p-value for every named column present in both profiles.

    ``alpha`` is the family-wise false-alarm rate over these columns (Holm's step-down); 1.0
    judges by the threshold alone.
    """
    results = []
    for name in columns:
        ref, cur = reference.get_column(name), current.get_column(name)
        if ref is None or cur is None:
            continue
        kind, statistic, p_value = _test(ref, cur)
        results.append(ColumnDrift(name, kind, statistic, (overrides or {}).get(name, threshold), p_value))
    return holm(results, alpha)


def holm(results: list[ColumnDrift], alpha: float) -> list[ColumnDrift]:
    """Mark which p-values stay significant when ``len(results)`` columns are tested at once.

    Sorted ascending, the i-th p-value (from 0) is held to ``alpha / (k - i)``; the first that
    fails stops the procedure. It keeps the chance of any false alarm in a window at ``alpha``.
    """
    if alpha >= 1.0:
        return results
    order = sorted(range(len(results)), key=lambda i: results[i].p_value)
    significant = [False] * len(results)
    for rank, index in enumerate(order):
        if results[index].p_value >= alpha / (len(results) - rank):
            break
        significant[index] = True
    return [replace(result, significant=flag) for result, flag in zip(results, significant, strict=True)]


def _test(ref: object, cur: object) -> tuple[str, float, float]:
    """KS when both sides carry numbers, Hellinger and chi-square over frequent items otherwise."""
    ref_kll, cur_kll = _kll(ref), _kll(cur)
    if ref_kll is not None and cur_kll is not None:
        statistic = ks_statistic(ref_kll, cur_kll)
        return "numeric", statistic, ks_p_value(statistic, _present(ref), _present(cur))
    return (
        "categorical",
        hellinger(frequencies(ref), frequencies(cur)),
        chi_square_p_value(item_counts(ref), item_counts(cur)),
    )


def _kll(column: object) -> object | None:
    """The column's KLL sketch, or None when it saw no numbers."""
    metric = column.get_metric("distribution")  # type: ignore[attr-defined]
    if metric is None or metric.kll.value.is_empty():
        return None
    sketch: object = metric.kll.value
    return sketch


def _present(column: object) -> int:
    """Rows that carried a value (the KS sample size)."""
    counts = column.get_metric("counts")  # type: ignore[attr-defined]
    return int(counts.n.value - counts.null.value) if counts else 0


def ks_statistic(ref_kll: object, cur_kll: object) -> float:
    """Max gap between the two CDFs, evaluated at the reference's quantile points."""
    points = np.unique(np.asarray(ref_kll.get_quantiles(QUANTILES)))  # type: ignore[attr-defined]
    if len(points) == 0:
        return 0.0
    ref_cdf = np.asarray(ref_kll.get_cdf(points))[:-1]  # type: ignore[attr-defined]
    cur_cdf = np.asarray(cur_kll.get_cdf(points))[:-1]  # type: ignore[attr-defined]
    return float(np.max(np.abs(ref_cdf - cur_cdf)))


def ks_p_value(statistic: float, n: int, m: int) -> float:
    """Two-sample KS p-value for samples of ``n`` and ``m`` values (Stephens' approximation).

    Conservative for columns with repeated values (counts, flags), which is the safe side.
    """
    if n == 0 or m == 0:
        return 1.0
    effective = np.sqrt(n * m / (n + m))
    return float(special.kolmogorov((effective + 0.12 + 0.11 / effective) * statistic))


def chi_square_p_value(ref: dict[str, float], cur: dict[str, float]) -> float:
    """Chi-square test that both count tables come from one distribution (1.0 if nothing to test)."""
    keys = sorted(k for k in set(ref) | set(cur) if ref.get(k, 0) + cur.get(k, 0) > 0)
    table = np.array([[ref.get(k, 0.0) for k in keys], [cur.get(k, 0.0) for k in keys]])
    if len(keys) < 2 or table.sum(axis=1).min() <= 0:
        return 1.0
    return float(stats.chi2_contingency(table, correction=False).pvalue)


def hellinger(p: dict[str, float], q: dict[str, float]) -> float:
    """Hellinger distance between two discrete distributions (0 = same, 1 = disjoint)."""
    keys = set(p) | set(q)
    if not keys:
        return 0.0
    gaps = [(np.sqrt(p.get(k, 0.0)) - np.sqrt(q.get(k, 0.0))) ** 2 for k in keys]
    return float(np.sqrt(sum(gaps) / 2))
