"""Distribution distance between two whylogs profiles, column by column, and whether it is real.

The default distance is the Kolmogorov-Smirnov statistic for numeric columns (max CDF gap at the
reference quantiles, from the two KLL sketches) and the Hellinger distance between the
frequent-item distributions for categorical ones. Both lie in [0, 1], so one threshold reads the
same for either kind. A column may name another distance (``monitoring.column_distances``):

- ``psi``: population stability index, sum (q - p) ln(q / p), over binned shares;
- ``jensen_shannon``: the Jensen-Shannon distance (base 2, in [0, 1]) over binned shares;
- ``hellinger``: also for numeric columns, over binned shares;
- ``wasserstein`` (numeric only): the mean gap between the two quantile functions (1st to 99th
  percentile), divided by the reference's interquartile range, so 0.2 reads "moved by a fifth of
  the reference's IQR" whatever the column's unit;
- ``ks`` (numeric only).

Binned numeric shares come from both sketches' CDFs at the reference's deciles (ten bins of a
tenth of the reference each); categorical shares are the frequent items'. A categorical column
given ``ks`` or ``wasserstein``, which need an order, is measured with Hellinger, and the result
names the distance used. Profiles, not raw rows, are compared, so any number of production rows
costs the same.

A distance alone cannot tell a move from sampling noise: the noise shrinks with the number of
rows (KS ~ 1.36 / sqrt(rows) at 5 %), so a fixed threshold is blind at 3,000 rows to moves it
would need, and noisy at 100. Each column therefore also gets a p-value from its two row counts,
whatever its distance: the two-sample KS test for numbers, a chi-square test of the category
counts otherwise. The distance decides the size of the move, the test whether it is beyond
noise: a column drifts when its move is both significant, after Holm's correction across the
columns compared together, and more than the threshold, the smallest move worth an alert.

A quiet column is not proof that nothing moved: a window of a few hundred rows cannot see a
small move. Each column therefore also carries its minimum detectable effect (``detectable``):
the smallest move, in its own distance, that this window would flag in 80 % of windows (both
beyond the threshold and significant at its share of the family's ``alpha``). "No drift" means
"no move of at least this size".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

import numpy as np
from scipy import optimize, special, stats
from scipy.spatial import distance as scipy_distance

from .profiling import DatasetProfileView, frequencies, item_counts

QUANTILES = np.linspace(0.01, 0.99, 99)
DECILES = np.linspace(0.1, 0.9, 9)  # bin edges of the binned distances: ten bins of the reference
SMOOTHING = 1e-4  # PSI: an empty bin counts as this share, else one unseen value is infinite
NUMERIC, CATEGORICAL = "numeric", "categorical"
DEFAULT_DISTANCE = {NUMERIC: "ks", CATEGORICAL: "hellinger"}
ORDERED = {"ks", "wasserstein"}  # need numbers: categorical columns fall back to the default
DISTANCES = ("ks", "psi", "jensen_shannon", "wasserstein", "hellinger")
POWER = 0.8  # the minimum detectable effect is the move flagged in this share of windows


@dataclass(frozen=True)
class ColumnDrift:
    """One column's distance from the reference, its p-value, and the verdict on both."""

    column: str
    kind: str
    distance: str
    statistic: float
    threshold: float
    p_value: float = 0.0
    significant: bool = True
    detectable: float | None = None
    """The smallest move in this distance the window flags with :data:`POWER` (None: no formula for it)."""

    @property
    def drifted(self) -> bool:
        """Beyond the threshold (strictly) and beyond sampling noise."""
        return self.statistic > self.threshold and self.significant


def compare(
    reference: DatasetProfileView,
    current: DatasetProfileView,
    columns: list[str],
    threshold: float,
    overrides: Mapping[str, float] | None = None,
    *,
    alpha: float = 1.0,
    distances: Mapping[str, str] | None = None,
) -> list[ColumnDrift]:
    """Distance and p-value for every named column present in both profiles.

    ``distances`` names a column's distance (default: KS for numbers, Hellinger for categories);
    ``overrides`` its threshold. ``alpha`` is the family-wise false-alarm rate over these columns
    (Holm's step-down); 1.0 judges by the threshold alone, and then no minimum detectable effect
    is worked out (the timeline's per-bucket scores, many a window, are distances only).
    """
    results = []
    for name in columns:
        ref, cur = reference.get_column(name), current.get_column(name)
        if ref is None or cur is None:
            continue
        kind, used, statistic, p_value = _test(ref, cur, (distances or {}).get(name))
        limit = (overrides or {}).get(name, threshold)
        each = alpha / len(columns)  # Holm's bar for a column moving alone
        smallest = detectable(ref, cur, kind, used, threshold=limit, alpha=each) if alpha < 1.0 else None
        results.append(ColumnDrift(name, kind, used, statistic, limit, p_value, detectable=smallest))
    return holm(results, alpha)


def detectable(
    ref: object, cur: object, kind: str, used: str, *, threshold: float, alpha: float
) -> float | None:
    """The column's minimum detectable effect in its distance, when that distance is its test's own.

    KS for numbers and Hellinger for categories have a closed form (:func:`detectable_ks`,
    :func:`detectable_hellinger`); the other distances read on scales the test does not, so None.
    """
    if kind == NUMERIC and used == "ks":
        return detectable_ks(_present(ref), _present(cur), threshold, alpha)
    if kind == CATEGORICAL and used == "hellinger":
        counts = item_counts(ref), item_counts(cur)
        categories = len(set(counts[0]) | set(counts[1]))
        rows = sum(counts[0].values()), sum(counts[1].values())
        return detectable_hellinger(*rows, categories, threshold, alpha)
    return None


def detectable_ks(n: int, m: int, threshold: float, alpha: float) -> float:
    """The smallest KS distance flagged in :data:`POWER` of windows of ``m`` rows against ``n``.

    A window is flagged when its observed distance passes both the threshold and the test's
    critical value (the distance whose :func:`ks_p_value` is ``alpha``). Around a true distance
    the observed one is close to normal with standard deviation at most 0.5 sqrt(1/n + 1/m)
    (the largest spread of a gap between two empirical CDFs), so the true distance must sit
    that many deviations beyond the bar that :data:`POWER` needs.
    """
    if n == 0 or m == 0:
        return 1.0
    effective = np.sqrt(n * m / (n + m))
    critical = float(special.kolmogi(alpha)) / (effective + 0.12 + 0.11 / effective) if alpha < 1.0 else 0.0
    spread = 0.5 / effective
    return float(min(1.0, max(threshold, critical) + stats.norm.ppf(POWER) * spread))


def detectable_hellinger(n: float, m: float, categories: int, threshold: float, alpha: float) -> float:
    """The smallest Hellinger distance flagged in :data:`POWER` of windows (chi-square test, ``categories``).

    For small moves Pearson's two-sample chi-square is 8 N H^2 (N = nm / (n + m)): with H^2 =
    1/2 sum (sqrt p - sqrt q)^2 ~ 1/8 sum (p - q)^2 / r, and chi-square = N sum (p - q)^2 / r.
    Under a true distance H it follows a noncentral chi-square with noncentrality 8 N H^2; the
    window is flagged when it passes both the test's critical value and 8 N threshold^2.
    """
    if n <= 0 or m <= 0 or categories < 2:
        return 1.0
    effective, df = n * m / (n + m), categories - 1
    bar = max(float(stats.chi2.isf(alpha, df)) if alpha < 1.0 else 0.0, 8 * effective * threshold**2)

    def short_of_power(noncentrality: float) -> float:
        return float(stats.ncx2.sf(bar, df, noncentrality)) - POWER

    noncentrality = optimize.brentq(short_of_power, 1e-9, bar + 100.0 * (df + 10))
    return float(min(1.0, np.sqrt(noncentrality / (8 * effective))))


def share_bounds(share: float, distance: float) -> tuple[float, float]:
    """The two-class shares as far as Hellinger ``distance`` below and above ``share`` (0 and 1 at most).

    Turns a two-class column's detectable distance into rates a person reads: "27 % could be
    told from 22 % or 32 %, not from anything closer".
    """

    def gap(other: float) -> float:
        return hellinger(np.array([share, 1 - share]), np.array([other, 1 - other])) - distance

    low = optimize.brentq(gap, 0.0, share) if share > 0 and gap(0.0) > 0 else 0.0
    high = optimize.brentq(gap, share, 1.0) if share < 1 and gap(1.0) > 0 else 1.0
    return float(low), float(high)


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


def _test(ref: object, cur: object, wanted: str | None) -> tuple[str, str, float, float]:
    """Kind, distance used, its value, and the p-value: KS when both sides carry numbers, else chi-square."""
    ref_kll, cur_kll = _kll(ref), _kll(cur)
    if ref_kll is not None and cur_kll is not None:
        used = str(wanted or DEFAULT_DISTANCE[NUMERIC])
        ks = ks_statistic(ref_kll, cur_kll)
        value = ks if used == "ks" else numeric_distance(used, ref_kll, cur_kll)
        return NUMERIC, used, value, ks_p_value(ks, _present(ref), _present(cur))
    used = str(wanted) if wanted and wanted not in ORDERED else DEFAULT_DISTANCE[CATEGORICAL]
    p, q = aligned(frequencies(ref), frequencies(cur))
    return CATEGORICAL, used, BINNED[used](p, q), chi_square_p_value(item_counts(ref), item_counts(cur))


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


def numeric_distance(distance: str, ref_kll: object, cur_kll: object) -> float:
    """Any distance but KS between two KLL sketches: Wasserstein from quantiles, the rest binned."""
    if distance == "wasserstein":
        return wasserstein(ref_kll, cur_kll)
    if distance == "ks":
        return ks_statistic(ref_kll, cur_kll)
    return BINNED[distance](*binned(ref_kll, cur_kll))


def ks_statistic(ref_kll: object, cur_kll: object) -> float:
    """Max gap between the two CDFs, evaluated at the reference's quantile points."""
    points = np.unique(np.asarray(ref_kll.get_quantiles(QUANTILES)))  # type: ignore[attr-defined]
    if len(points) == 0:
        return 0.0
    ref_cdf = np.asarray(ref_kll.get_cdf(points))[:-1]  # type: ignore[attr-defined]
    cur_cdf = np.asarray(cur_kll.get_cdf(points))[:-1]  # type: ignore[attr-defined]
    return float(np.max(np.abs(ref_cdf - cur_cdf)))


def binned(ref_kll: object, cur_kll: object) -> tuple[np.ndarray, np.ndarray]:
    """Each side's share of values in bins cut at the reference's deciles (ties merge bins)."""
    edges = list(np.unique(np.asarray(ref_kll.get_quantiles(DECILES))))  # type: ignore[attr-defined]
    return (
        np.asarray(ref_kll.get_pmf(edges)),  # type: ignore[attr-defined]
        np.asarray(cur_kll.get_pmf(edges)),  # type: ignore[attr-defined]
    )


def wasserstein(ref_kll: object, cur_kll: object) -> float:
    """Mean gap between the quantile functions (1st-99th percentile) over the reference's spread.

    The spread is the interquartile range; a column with most values equal (IQR 0) uses its
    1st-99th percentile range, and a constant one no scaling.
    """
    ref_q = np.asarray(ref_kll.get_quantiles(QUANTILES))  # type: ignore[attr-defined]
    cur_q = np.asarray(cur_kll.get_quantiles(QUANTILES))  # type: ignore[attr-defined]
    low, high = np.interp([0.25, 0.75], QUANTILES, ref_q)
    spread = next((float(width) for width in (high - low, ref_q[-1] - ref_q[0]) if width > 0), 1.0)
    return float(np.mean(np.abs(ref_q - cur_q)) / spread)


def aligned(p: dict[str, float], q: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """Two category-share tables as arrays over the union of their categories."""
    keys = sorted(set(p) | set(q))
    return np.array([p.get(k, 0.0) for k in keys]), np.array([q.get(k, 0.0) for k in keys])


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


def hellinger(p: np.ndarray, q: np.ndarray) -> float:
    """Hellinger distance between two discrete distributions (0 = same, 1 = disjoint)."""
    return float(np.sqrt(np.sum((np.sqrt(p) - np.sqrt(q)) ** 2) / 2))


def psi(p: np.ndarray, q: np.ndarray) -> float:
    """Population stability index: sum (q - p) ln(q / p), empty bins floored at ``SMOOTHING``.

    Unbounded; the usual reading is < 0.1 stable, 0.1-0.25 a moderate shift, > 0.25 a major one.
    """
    p, q = np.maximum(p, SMOOTHING), np.maximum(q, SMOOTHING)
    return float(np.sum((q - p) * np.log(q / p)))


def jensen_shannon(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon distance in base 2: 0 for the same shares, 1 for disjoint ones."""
    if p.sum() <= 0 or q.sum() <= 0:
        return 0.0 if p.sum() == q.sum() else 1.0
    # The square root of a divergence rounded just below 0 (equal shares) is nan in scipy: call it 0.
    distance = np.nan_to_num(scipy_distance.jensenshannon(p, q, base=2), nan=0.0)
    return float(np.clip(distance, 0.0, 1.0))


BINNED: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "psi": psi,
    "jensen_shannon": jensen_shannon,
    "hellinger": hellinger,
}
