"""Performance before labels: CBPE on logged probabilities, its band, its alert, and its check."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics

from {{ cookiecutter.package_name }}.monitoring import dashboards, estimate, labels, monitor
from {{ cookiecutter.package_name }}.monitoring.estimate import Estimate
from {{ cookiecutter.package_name }}.monitoring.labels import LABELLED, Coverage

TRAINING = {"accuracy": 0.8, "balanced_accuracy": 0.78}
REFERENCE = {"source": "reference.bin", "rows": 2400}  # what the page says it held the window against


def window(rows: int, seed: int, sureness: float = 1.0) -> pd.DataFrame:
    """Logged rows of a calibrated two-class model: P(yes) drawn, the label drawn from it.

    ``sureness`` below 1 pulls the probabilities toward 0.5: the model meets rows it is unsure of.
    """
    rng = np.random.default_rng(seed)
    yes = 0.5 + sureness * (rng.beta(0.6, 0.6, size=rows) - 0.5)
    truth = np.where(rng.uniform(size=rows) < yes, "yes", "no")
    predicted = np.where(yes >= 0.5, "yes", "no")
    return pd.DataFrame({"prediction": predicted, "proba__no": 1 - yes, "proba__yes": yes, "label": truth})


def test_expected_confusion__each_row_adds_its_probabilities_to_its_predicted_column() -> None:
    probabilities = np.array([[0.9, 0.1], [0.3, 0.7], [0.6, 0.4]])
    found = estimate.expected_confusion(probabilities, np.array([0, 1, 0]))
    assert found.ravel().tolist() == pytest.approx([1.5, 0.3, 0.5, 0.7])  # [true, predicted]
    assert estimate.confusion_metrics(found)["accuracy"] == pytest.approx(2.2 / 3)


def test_estimate__lands_on_the_realised_balanced_accuracy_of_calibrated_probabilities() -> None:
    inside = 0
    for seed in range(40):
        logs = window(1000, seed)
        found = estimate.estimate(logs, TRAINING, 0.05, 200)
        assert found is not None
        assert found.metric == "balanced_accuracy"
        realised = metrics.balanced_accuracy_score(logs["label"], logs["prediction"])
        checked = estimate.against_labels(found, {"balanced_accuracy": realised})
        assert checked is not None
        assert checked.realised == pytest.approx(realised, abs=1e-4)
        inside += bool(checked.within_band)
    assert inside >= 34  # a 95 % band: about 38 of 40


def test_estimate__alerts_when_the_model_grows_unsure_and_not_before() -> None:
    steady = estimate.estimate(window(1000, 1), TRAINING, 0.05, 200)
    unsure = estimate.estimate(window(1000, 1, sureness=0.3), TRAINING, 0.05, 200)
    assert steady is not None
    assert unsure is not None
    assert steady.threshold == pytest.approx(0.78 * 0.95)
    assert not steady.alert
    assert unsure.alert
    assert unsure.value < unsure.threshold
    assert "ESTIMATED DROP" in unsure.line()


def test_estimate__too_few_rows_are_estimated_never_alerted() -> None:
    found = estimate.estimate(window(50, 1, sureness=0.3), TRAINING, 0.05, 200)
    assert found is not None
    assert found.value < found.threshold
    assert not found.alert


def test_estimate__none_without_logged_class_probabilities() -> None:
    unscored = window(100, 1).drop(columns=["proba__no", "proba__yes"])
    assert estimate.estimate(unscored, TRAINING, 0.05, 200) is None


def test_monitor__an_estimated_drop_before_labels_is_drift_and_labels_once_judged_decide() -> None:
    dropped = Estimate("balanced_accuracy", 0.6, (0.57, 0.63), 0.74, 1000, True, {})
    result = monitor.MonitorResult(
        generated_at="", window_start="", window_end="", files=1, rows=1000, clients={},
        excluded_clients=[], reference={}, columns=[], missing_columns=[], timeline=[],
        labels=Coverage("labels/labels.csv does not exist", 1000, 0, estimate=dropped),
    )  # fmt: skip
    assert result.drift_detected
    assert any(alert.startswith("performance estimate: balanced_accuracy") for alert in result.alerts)
    assert "95% sampling band 0.570-0.630" in result.labels.line()


def test_coverage__regression_says_why_it_has_no_estimate() -> None:
    line = Coverage(LABELLED, 10, 10, estimate_absent=estimate.NO_REGRESSION_ESTIMATE).line()
    assert "no estimate before labels for regression" in line


@pytest.mark.parametrize("metric", ["accuracy", "balanced_accuracy", "f1_macro"])
def test_confusion_metric__is_scikit_learns_on_every_resample(metric: str) -> None:
    scorer = {
        "accuracy": metrics.accuracy_score,
        "balanced_accuracy": metrics.balanced_accuracy_score,
        "f1_macro": lambda t, p: metrics.f1_score(t, p, average="macro"),
    }[metric]
    rng = np.random.default_rng(3)
    for classes in (2, 3, 5):
        truth, predicted = rng.integers(0, classes, 80), rng.integers(0, classes, 80)
        cells = np.bincount(truth * classes + predicted, minlength=classes * classes)
        found = estimate.confusion_metric(cells.reshape(classes, classes), metric)
        assert found == pytest.approx(scorer(truth, predicted))


@pytest.mark.parametrize("metric", ["rmse", "mae", "r2"])
def test_bootstrap_interval__regression_is_the_same_with_numpy_as_with_scikit_learn(metric: str) -> None:
    rng = np.random.default_rng(6)
    truth = rng.normal(100, 20, 300)
    predicted = truth + rng.normal(0, 5, 300)
    fast = labels.bootstrap_interval("regression", truth, predicted, metric)
    rows = np.random.default_rng(0)
    slow = [
        labels.metrics_of("regression", truth[pick], predicted[pick])[metric]
        for pick in (rows.integers(0, 300, 300) for _ in range(labels.BOOTSTRAP_SAMPLES))
    ]
    assert fast == pytest.approx(tuple(np.round(np.nanpercentile(slow, [2.5, 97.5]), 4)), abs=1e-4)


def test_markdown__the_page_shows_the_estimate_its_band_and_what_the_labels_then_realised() -> None:
    before = Estimate("balanced_accuracy", 0.701, (0.676, 0.727), 0.741, 1000, True, {})
    checked = dataclasses.replace(before, rows=400, realised=0.69)
    perf = labels.Performance(
        400, "f1_macro", {"balanced_accuracy": 0.69}, {"balanced_accuracy": 0.78}, 0.115, True,
        (0.66, 0.72), judged_metric="balanced_accuracy", estimate=checked, allowed_drop=0.05,
    )  # fmt: skip
    result = monitor.MonitorResult(
        generated_at="", window_start="", window_end="", files=1, rows=1000, clients={},
        excluded_clients=[], reference=REFERENCE, columns=[], missing_columns=[], timeline=[],
        labels=Coverage(LABELLED, 1000, 400, estimate=before), performance=perf,
    )  # fmt: skip
    page = dashboards.markdown(result)
    assert "Estimate before labels (CBPE on the logged probabilities)" in page
    assert "| window (1,000) | balanced_accuracy | 0.701 | 0.676 - 0.727 | 0.741 (ALERT) | - | - |" in page
    labelled = "| labelled rows (400) | balanced_accuracy | 0.701 | 0.676 - 0.727 | 0.741 (ALERT) | 0.690 "
    assert f"{labelled}| yes |" in page
    assert "smallest drop these labels can confirm: " in page


def test_sampling_band__past_its_sample_narrows_as_a_mean_does() -> None:
    logs = window(80_000, 2)
    scored = estimate.scored_rows(logs)
    assert scored is not None
    probabilities, predicted = scored
    metric = "balanced_accuracy"
    low, high = estimate.sampling_band(probabilities, predicted, metric)
    small_low, small_high = estimate.sampling_band(probabilities[:20_000], predicted[:20_000], metric)
    assert (high - low) == pytest.approx((small_high - small_low) / 2, rel=0.25)  # 4x the rows: half as wide
    value = estimate.confusion_metric(estimate.expected_confusion(probabilities, predicted), metric)
    assert low < value < high
