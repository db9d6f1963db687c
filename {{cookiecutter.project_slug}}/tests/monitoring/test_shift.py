"""Moderate shifts are caught, what a window cannot see is stated, and each kind is named right."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from {{ cookiecutter.package_name }} import drift, profiling
from {{ cookiecutter.package_name }}.config import MonitoringConfig, compose
from {{ cookiecutter.package_name }}.monitoring import dashboards, monitor
from {{ cookiecutter.package_name }}.monitoring.columns import compare_columns
from {{ cookiecutter.package_name }}.monitoring.labels import LABELLED, Coverage, Performance, assess_labels
from {{ cookiecutter.package_name }}.reference import PREDICTION, Reference

OUTCOME = "churned"
REFERENCE = {"source": "reference.bin", "rows": 2400}  # what the page says it held the window against


def outcome_view(rate: float, rows: int, seed: int) -> profiling.DatasetProfileView:
    """A profile of a two-class outcome column with ``rate`` positives (drawn, so it varies)."""
    positive = np.random.default_rng(seed).uniform(size=rows) < rate
    return profiling.profile(pd.DataFrame({OUTCOME: np.where(positive, "yes", "no")}))


def flagged(reference: profiling.DatasetProfileView, rate: float, windows: int, rows: int = 1000) -> int:
    """How many of ``windows`` windows of ``rows`` at ``rate`` the default label check flags."""
    cfg = MonitoringConfig()
    return sum(
        compare_columns(cfg, reference, outcome_view(rate, rows, seed), {OUTCOME: "label"})[0].drifted
        for seed in range(1, windows + 1)
    )


@pytest.fixture(scope="module")
def training_outcome() -> profiling.DatasetProfileView:
    return outcome_view(0.27, 2400, seed=0)


def test_label_check__27_to_35_percent_positives_is_caught_in_95_percent_of_1000_row_windows(
    training_outcome: profiling.DatasetProfileView,
) -> None:
    assert flagged(training_outcome, 0.35, windows=60) >= 57  # 95 % of 60


def test_label_check__unshifted_1000_row_windows_raise_no_alarm(
    training_outcome: profiling.DatasetProfileView,
) -> None:
    assert flagged(training_outcome, 0.27, windows=60) == 0


def test_detectable__a_quiet_label_column_states_the_smallest_move_it_could_have_seen(
    training_outcome: profiling.DatasetProfileView,
) -> None:
    cfg = MonitoringConfig()
    small, large = (
        compare_columns(cfg, training_outcome, outcome_view(0.27, rows, 99), {OUTCOME: "label"})[0]
        for rows in (300, 3000)
    )
    assert not small.drifted
    assert small.detectable is not None
    assert large.detectable is not None
    assert small.detectable > large.detectable >= cfg.outcome_threshold  # fewer rows see less
    low, high = drift.share_bounds(0.27, small.detectable)
    assert low < 0.27 < high


def test_detectable_hellinger__a_move_of_that_size_is_flagged_in_about_80_percent_of_windows(
    training_outcome: profiling.DatasetProfileView,
) -> None:
    cfg = MonitoringConfig()
    counts = profiling.item_counts(training_outcome.get_column(OUTCOME))
    share = counts["yes"] / sum(counts.values())
    rows = 1000
    alpha = cfg.drift_alpha / 2  # the labels are their own family
    smallest = drift.detectable_hellinger(sum(counts.values()), rows, 2, cfg.outcome_threshold, alpha)
    _, rate = drift.share_bounds(share, smallest)
    caught = flagged(training_outcome, rate, windows=80, rows=rows) / 80
    assert 0.6 <= caught <= 0.95  # 80 % by design; the normal approximation is close, not exact


def test_detectable_ks__a_location_shift_of_that_size_is_flagged_in_about_80_percent_of_windows() -> None:
    rng = np.random.default_rng(4)
    reference = profiling.profile(pd.DataFrame({"x": rng.normal(size=3000)}))
    threshold, alpha, rows = 0.1, 0.005, 1000
    smallest = drift.detectable_ks(3000, rows, threshold, alpha)
    shift = 2 * stats.norm.ppf((1 + smallest) / 2)  # N(0,1) vs N(shift,1): KS = 2 Phi(shift/2) - 1
    caught = 0
    for seed in range(60):
        window = profiling.profile(pd.DataFrame({"x": np.random.default_rng(seed).normal(shift, 1, rows)}))
        found = drift.compare(reference, window, ["x"], threshold, alpha=alpha)[0]
        caught += found.drifted
        assert found.detectable == pytest.approx(smallest)
    assert 0.6 <= caught / 60 <= 1.0  # the spread used is the largest possible: conservative


def regression_reference(truth: np.ndarray, predicted: np.ndarray) -> Reference:
    """A regression reference whose training metrics are those of ``predicted`` against ``truth``."""
    errors = truth - predicted
    r2 = 1 - np.sum(errors**2) / np.sum((truth - truth.mean()) ** 2)
    rmse, mae = float(np.sqrt(np.mean(errors**2))), float(np.mean(np.abs(errors)))
    metrics = {"rmse": rmse, "mae": mae, "r2": float(r2)}
    meta = {"task": "regression", "target": "value", "primary_metric": "rmse", "greater_is_better": False}
    view = profiling.profile(pd.DataFrame({"value": truth, PREDICTION: predicted}))
    return Reference(view, "test", meta | {"metrics": metrics, "features": []})


def diagnosed(reference: Reference, truth: np.ndarray, predicted: np.ndarray) -> str:
    """The kind of drift named for a labelled window with nothing but its outcome to go on."""
    cfg = compose(["monitoring.min_labels=100"])
    joined = pd.DataFrame({PREDICTION: predicted, "value": truth})
    result = monitor.MonitorResult(
        generated_at="", window_start="", window_end="", files=1, rows=len(truth), clients={},
        excluded_clients=[], reference={}, columns=[], missing_columns=[], timeline=[],
        labels=Coverage(LABELLED, len(truth), len(truth)),
    )  # fmt: skip
    labels_view = profiling.profile(joined[["value"]])
    result.performance, result.columns = assess_labels(cfg, reference, joined, labels_view)
    assert result.drift_detected
    assert any(line.startswith("smallest drop these labels can confirm: ") for line in result.diagnosis[1])
    return result.diagnosis[0]


@pytest.fixture(scope="module")
def regression_model() -> tuple[Reference, np.ndarray, np.ndarray]:
    """A model that predicts 100 + 10 x, on customers whose value is that plus noise."""
    rng = np.random.default_rng(8)
    x = rng.normal(size=3000)
    truth, predicted = 100 + 10 * x + rng.normal(0, 3, size=3000), 100 + 10 * x
    return regression_reference(truth[:2000], predicted[:2000]), truth[2000:], predicted[2000:]


@pytest.mark.parametrize("move", [1.1, 1.2])
def test_diagnosis__a_regression_target_moved_up_is_label_shift_not_concept_drift(
    regression_model: tuple[Reference, np.ndarray, np.ndarray], move: float
) -> None:
    reference, truth, predicted = regression_model
    assert diagnosed(reference, truth * move, predicted) == "label shift"


def test_diagnosis__a_regression_relation_broken_for_a_fifth_of_rows_is_concept_drift(
    regression_model: tuple[Reference, np.ndarray, np.ndarray],
) -> None:
    reference, truth, predicted = regression_model
    mirrored = truth.copy()
    hit = np.random.default_rng(2).uniform(size=len(truth)) < 0.2
    mirrored[hit] = 2 * truth.mean() - truth[hit]
    assert diagnosed(reference, mirrored, predicted) == "concept drift"


def test_detectable_drop__an_unconfirmed_drop_states_how_large_a_drop_these_labels_could_confirm() -> None:
    perf = Performance(
        labelled=1000, primary_metric="f1_macro", metrics={"balanced_accuracy": 0.66},
        training={"balanced_accuracy": 0.70}, relative_drop=0.057, degraded=False, interval=(0.63, 0.69),
        judged_metric="balanced_accuracy", allowed_drop=0.05,
    )  # fmt: skip
    assert perf.detectable_drop == pytest.approx(0.05 + 0.03 / 0.70, abs=1e-4)  # 9 %: more than the 6 % seen
    lower = dataclasses.replace(perf, greater_is_better=False, metrics={"balanced_accuracy": 0.66})
    assert lower.detectable_drop == pytest.approx(0.05 + 0.03 / 0.70, abs=1e-4)  # the other half-width


def test_markdown__a_quiet_column_shows_the_smallest_move_this_window_could_see(
    training_outcome: profiling.DatasetProfileView,
) -> None:
    window = outcome_view(0.27, 300, 5)
    quiet = compare_columns(MonitoringConfig(), training_outcome, window, {OUTCOME: "label"})
    result = monitor.MonitorResult(
        generated_at="", window_start="", window_end="", files=1, rows=300, clients={},
        excluded_clients=[], reference=REFERENCE, columns=quiet, missing_columns=[], timeline=[],
    )  # fmt: skip
    page = dashboards.markdown(result)
    assert "Smallest move this window could see" in page
    assert f"| {OUTCOME} | hellinger | {quiet[0].detectable:.3f} | {quiet[0].statistic:.3f} |" in page
