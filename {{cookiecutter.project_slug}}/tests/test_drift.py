"""Profile-to-profile drift: quiet on fresh data, loud on shifted data."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from {{ cookiecutter.package_name }} import drift, profiling
from {{ cookiecutter.package_name }}.simulation import make_customers

COLUMNS = ["tenure_months", "monthly_charges", "contract", "internet_service", "churned"]


def drifted(shift: str) -> set[str]:
    reference = profiling.profile(make_customers(3000, seed=1))
    current = profiling.profile(make_customers(2000, seed=2, shift=shift))  # type: ignore[arg-type]
    return {d.column for d in drift.compare(reference, current, COLUMNS, threshold=0.2) if d.drifted}


@pytest.mark.parametrize(
    ("shift", "expected"),
    [
        ("none", set()),
        ("covariate", {"tenure_months", "monthly_charges", "internet_service"}),
        ("label", {"churned"}),
    ],
)
def test_drift__flags_exactly_the_shifted_columns(shift: str, expected: set[str]) -> None:
    assert drifted(shift) >= expected
    assert not drifted(shift) & ({"contract"} - expected)
    if not expected:
        assert drifted(shift) == set()


@pytest.mark.parametrize(
    ("p", "q", "distance"),
    [({"a": 1.0}, {"a": 1.0}, 0.0), ({"a": 1.0}, {"b": 1.0}, 1.0), ({}, {}, 0.0)],
)
@pytest.mark.parametrize("measure", [drift.hellinger, drift.jensen_shannon])
def test_bounded_distances__zero_for_the_same_shares_one_for_disjoint(
    measure: Callable[[np.ndarray, np.ndarray], float],
    p: dict[str, float],
    q: dict[str, float],
    distance: float,
) -> None:
    assert measure(*drift.aligned(p, q)) == pytest.approx(distance)


def shares(size: int) -> st.SearchStrategy[np.ndarray]:
    weights = st.lists(st.one_of(st.just(0.0), st.floats(0.01, 1.0)), min_size=size, max_size=size)
    return weights.filter(lambda w: sum(w) > 0).map(lambda w: np.array(w) / sum(w))


@given(st.integers(2, 8).flatmap(lambda size: st.tuples(shares(size), shares(size))))
@example((np.array([0.5, 0.5]), np.array([0.5, 0.5])))  # scipy's Jensen-Shannon said nan here
def test_binned_distances__zero_on_identity_bounded_and_nonnegative(
    pair: tuple[np.ndarray, np.ndarray],
) -> None:
    p, q = pair
    for measure in drift.BINNED.values():
        assert measure(p, p) == pytest.approx(0.0, abs=1e-12)
        assert measure(p, q) >= 0.0
    assert 0.0 <= drift.jensen_shannon(p, q) <= 1.0
    assert 0.0 <= drift.hellinger(p, q) <= 1.0 + 1e-12


def one_column(values: np.ndarray) -> profiling.DatasetProfileView:
    return profiling.profile(pd.DataFrame({"x": values}))


def distance_of(reference: np.ndarray, current: np.ndarray, distance: str) -> drift.ColumnDrift:
    return drift.compare(one_column(reference), one_column(current), ["x"], 0.1, distances={"x": distance})[0]


NORMAL = np.random.default_rng(0).normal(50.0, 10.0, 4000)


@pytest.mark.parametrize("distance", drift.DISTANCES)
def test_compare__every_distance_is_zero_for_one_profile_and_grows_with_the_shift(distance: str) -> None:
    view = one_column(NORMAL)
    same = drift.compare(view, view, ["x"], 0.1, distances={"x": distance})[0]
    assert same.statistic == pytest.approx(0.0, abs=1e-12)
    moved = [distance_of(NORMAL, NORMAL + shift, distance).statistic for shift in (2.0, 5.0, 10.0, 20.0)]
    assert moved == sorted(moved)
    assert moved[0] > same.statistic


@settings(max_examples=15, deadline=None)
@given(st.floats(0.2, 3.0), st.floats(1e-3, 1e3))
def test_wasserstein__reads_in_reference_iqrs_whatever_the_unit(shift: float, unit: float) -> None:
    iqr = float(np.subtract(*np.percentile(NORMAL, [75, 25])))
    moved = distance_of(NORMAL * unit, (NORMAL + shift * iqr) * unit, "wasserstein")
    assert moved.statistic == pytest.approx(shift, rel=0.05)


@pytest.mark.parametrize(
    ("values", "wanted", "used"),
    [
        # column kind   distance asked     distance used: ks and wasserstein need an order
        (NORMAL, None, "ks"),
        (NORMAL, "psi", "psi"),
        (NORMAL, "hellinger", "hellinger"),
        (np.array(["a", "b", "b"] * 500), None, "hellinger"),
        (np.array(["a", "b", "b"] * 500), "jensen_shannon", "jensen_shannon"),
        (np.array(["a", "b", "b"] * 500), "wasserstein", "hellinger"),
        (np.array(["a", "b", "b"] * 500), "ks", "hellinger"),
    ],
)
def test_compare__names_the_distance_it_used(values: np.ndarray, wanted: str | None, used: str) -> None:
    found = drift.compare(
        one_column(values), one_column(values[::-1]), ["x"], 0.1, distances={"x": wanted} if wanted else {}
    )
    assert found[0].distance == used


@pytest.mark.parametrize("column", ["tenure_months", "contract"])
def test_compare__the_p_value_is_the_columns_test_whatever_the_distance(column: str) -> None:
    # The distance sizes the move; the KS / chi-square test of the counts judges the noise.
    reference = profiling.profile(make_customers(2000, seed=1))
    current = profiling.profile(make_customers(600, seed=2, shift="covariate"))
    p_values = {
        drift.compare(reference, current, [column], 0.1, distances={column: name})[0].p_value
        for name in drift.DISTANCES
    }
    assert len(p_values) == 1


def test_compare__per_column_threshold_overrides_the_default() -> None:
    reference = profiling.profile(make_customers(2000, seed=1))
    current = profiling.profile(make_customers(2000, seed=2))
    results = drift.compare(
        reference, current, ["tenure_months"], threshold=0.5, overrides={"tenure_months": 0.0}
    )
    assert results[0].threshold == 0.0
    assert results[0].drifted


FEATURES = ["tenure_months", "monthly_charges", "total_charges", "contract", "internet_service", "region"]


def alarms(windows: list[object], alpha: float = 0.01) -> int:
    reference = profiling.profile(make_customers(2400, seed=1)[FEATURES])
    return sum(
        any(
            d.drifted
            for d in drift.compare(reference, profiling.profile(w[FEATURES]), FEATURES, 0.1, alpha=alpha)
        )  # type: ignore[index]
        for w in windows
    )


def test_compare__small_fresh_windows_stay_quiet_and_a_30_percent_shift_is_caught() -> None:
    fresh = [make_customers(300, seed=100 + s) for s in range(20)]
    assert alarms(fresh) == 0
    mixed = [
        pd.concat([make_customers(210, seed=200 + s), make_customers(90, seed=300 + s, shift="covariate")])
        for s in range(10)
    ]
    assert alarms(mixed) == 10


def test_holm__the_smallest_p_value_meets_alpha_over_k_and_the_first_failure_stops() -> None:
    found = [
        drift.ColumnDrift(name, "numeric", "ks", 0.5, 0.1, p)
        for name, p in [("a", 0.004), ("b", 0.006), ("c", 0.001)]
    ]
    marked = {d.column: d.significant for d in drift.holm(found, alpha=0.01)}
    # sorted: c 0.001 < 0.01/3 (yes), a 0.004 < 0.01/2 (yes), b 0.006 < 0.01/1 (yes)
    assert marked == {"a": True, "b": True, "c": True}
    found[1] = drift.ColumnDrift("b", "numeric", "ks", 0.5, 0.1, 0.02)
    found[0] = drift.ColumnDrift("a", "numeric", "ks", 0.5, 0.1, 0.006)  # 0.006 >= 0.01/2: stops here
    assert {d.column: d.significant for d in drift.holm(found, alpha=0.01)} == {
        "a": False,
        "b": False,
        "c": True,
    }


@pytest.mark.parametrize(("statistic", "rows"), [(0.05, 300), (0.05, 3000), (0.1, 3000), (0.2, 300)])
def test_ks_p_value__shrinks_with_the_move_and_with_the_rows(statistic: float, rows: int) -> None:
    p = drift.ks_p_value(statistic, rows, 2400)
    assert 0.0 <= p <= 1.0
    assert drift.ks_p_value(statistic * 1.5, rows, 2400) < p
    assert drift.ks_p_value(statistic, rows * 4, 2400) < p
    assert drift.ks_p_value(0.0, rows, 2400) == 1.0


def test_chi_square_p_value__same_mix_is_not_significant_a_moved_one_is() -> None:
    reference = {"no": 730.0, "yes": 270.0}
    assert drift.chi_square_p_value(reference, {"no": 73.0, "yes": 27.0}) > 0.5
    assert drift.chi_square_p_value(reference, {"no": 600.0, "yes": 400.0}) < 1e-6
    assert drift.chi_square_p_value({"only": 10.0}, {"only": 5.0}) == 1.0
