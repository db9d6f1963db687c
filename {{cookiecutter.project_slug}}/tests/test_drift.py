"""Profile-to-profile drift: quiet on fresh data, loud on shifted data."""

from __future__ import annotations

import pandas as pd
import pytest

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
def test_hellinger__bounds(p: dict[str, float], q: dict[str, float], distance: float) -> None:
    assert drift.hellinger(p, q) == pytest.approx(distance)


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
        drift.ColumnDrift(name, "numeric", 0.5, 0.1, p)
        for name, p in [("a", 0.004), ("b", 0.006), ("c", 0.001)]
    ]
    marked = {d.column: d.significant for d in drift.holm(found, alpha=0.01)}
    # sorted: c 0.001 < 0.01/3 (yes), a 0.004 < 0.01/2 (yes), b 0.006 < 0.01/1 (yes)
    assert marked == {"a": True, "b": True, "c": True}
    found[1] = drift.ColumnDrift("b", "numeric", 0.5, 0.1, 0.02)
    found[0] = drift.ColumnDrift("a", "numeric", 0.5, 0.1, 0.006)  # 0.006 >= 0.01/2: stops here
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
