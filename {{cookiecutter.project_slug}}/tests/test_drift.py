"""Profile-to-profile drift: quiet on fresh data, loud on shifted data."""

from __future__ import annotations

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
