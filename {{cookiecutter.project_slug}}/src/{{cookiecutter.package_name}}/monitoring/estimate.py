"""Performance before labels: confidence-based performance estimation (CBPE) on logged probabilities.

Labels arrive late, if at all. A classifier's logged class probabilities already say how often it
expects to be right: a row predicted "yes" with P(yes) = 0.8 is a true positive with chance 0.8
and a false positive with chance 0.2. Summing those chances over the window gives the expected
confusion matrix, and from it the expected accuracy and balanced accuracy, before any label.

The estimate holds as long as the probabilities do: it follows covariate shift (rows the model
is unsure of count as likely errors) but cannot see concept drift (the model is as sure as ever,
and wrong), and it inherits the model's miscalibration. That is why every window that later gets
labels reports the estimate beside the realised metric on the same rows, and whether the
realised value fell inside the estimate's sampling band.

The sampling band is where the realised metric of this many rows would fall 95 % of the time if
the probabilities were right: labels drawn from the logged probabilities (seeded), the metric
recomputed on each draw. The alert threshold is the training metric less the allowed drop
(``monitoring.max_metric_drop``), the same bar the realised metric is held to.

Regression gets no estimate: the service logs one number per request and no spread around it, so
a row's expected error is unknown without a second model fitted to the reference's errors
(direct loss estimation), and the reference keeps profiles, not the rows such a model needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from ..reference import PREDICTION
from ..serving.traffic import PROBABILITY_PREFIX, probability_column

DRAWS = 200
BAND_ROWS = 20_000  # rows drawn for the sampling band; more are scaled (:func:`sampling_band`)
MIX_FREE = "balanced_accuracy"
NO_REGRESSION_ESTIMATE = (
    "no estimate before labels for regression: the service logs one number per request and no "
    "spread around it, so a row's expected error is unknown without a second model fitted to "
    "the reference's errors, and the reference keeps profiles, not rows"
)


@dataclass(frozen=True)
class Estimate:
    """The judged metric expected from the logged probabilities, its sampling band and alert bar.

    ``realised`` is the metric measured on the same rows once their labels arrived (None before).
    """

    metric: str
    value: float
    band: tuple[float, float]
    threshold: float
    rows: int
    alert: bool
    metrics: dict[str, float]
    realised: float | None = None

    @property
    def within_band(self) -> bool | None:
        """The realised metric fell inside the band (None before labels)."""
        if self.realised is None:
            return None
        return self.band[0] <= self.realised <= self.band[1]

    def line(self) -> str:
        """One sentence for the report: the estimate, its band and bar, and the realised value."""
        low, high = self.band
        found = (
            f"{self.metric} estimated from the logged probabilities {self.value:.3f} "
            f"(95% sampling band {low:.3f}-{high:.3f}, {self.rows:,} rows; alert below {self.threshold:.3f})"
        )
        if self.alert:
            found += ": ESTIMATED DROP"
        if self.realised is not None:
            inside = "inside" if self.within_band else "outside"
            found += f"; realised on the same rows {self.realised:.3f}, {inside} the band"
        return found


def expected_confusion(probabilities: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Expected counts [true, predicted]: each row adds its class probabilities to its predicted column."""
    classes = probabilities.shape[1]
    return np.asarray(probabilities.T @ np.eye(classes)[predicted])


COUNTED = ("accuracy", MIX_FREE, "f1_macro")


def confusion_metric(confusion: np.ndarray, metric: str) -> float:
    """Accuracy, balanced accuracy or macro F1 of a confusion matrix [true, predicted], as scikit-learn's.

    Balanced accuracy averages the recall of the classes among the true labels; macro F1 the F1
    of the classes among the true or predicted labels (0 where a class has no true positive).
    """
    hits, actual, called = np.diag(confusion).astype(float), confusion.sum(axis=1), confusion.sum(axis=0)
    if metric == "accuracy":
        return float(hits.sum() / max(confusion.sum(), 1))
    if metric == MIX_FREE:
        present = actual > 0
        return float((hits[present] / actual[present]).mean()) if present.any() else float("nan")
    seen = (actual + called) > 0
    return float((2 * hits[seen] / (actual[seen] + called[seen])).mean())


def confusion_metrics(confusion: np.ndarray) -> dict[str, float]:
    """Every metric of :data:`COUNTED` of one confusion matrix."""
    return {metric: confusion_metric(confusion, metric) for metric in COUNTED}


def sampling_band(probabilities: np.ndarray, predicted: np.ndarray, metric: str) -> tuple[float, float]:
    """2.5th and 97.5th percentiles of ``metric`` over labels drawn from the probabilities (seeded).

    Past :data:`BAND_ROWS` rows the draws use a seeded sample of that many, and their spread
    around the sample's expected metric is narrowed by sqrt(sample / rows), as a mean's is: a
    million logged rows cost what 20,000 do.
    """
    rng = np.random.default_rng(0)
    rows, classes = probabilities.shape
    scale = 1.0
    if rows > BAND_ROWS:
        kept = rng.choice(rows, BAND_ROWS, replace=False)
        probabilities, predicted = probabilities[kept], predicted[kept]
        scale = float(np.sqrt(BAND_ROWS / rows))
    centre = confusion_metric(expected_confusion(probabilities, predicted), metric)
    cumulative = np.cumsum(probabilities, axis=1)
    values = []
    for _ in range(DRAWS):
        drawn = np.minimum((rng.random((len(predicted), 1)) > cumulative).sum(axis=1), classes - 1)
        counts = np.bincount(drawn * classes + predicted, minlength=classes * classes)
        values.append(confusion_metric(counts.reshape(classes, classes), metric))
    low, high = centre + scale * (np.nanpercentile(values, [2.5, 97.5]) - centre)
    return round(float(low), 4), round(float(high), 4)


def scored_rows(logs: pd.DataFrame) -> tuple[np.ndarray, np.ndarray] | None:
    """Each usable row's class probabilities (normalised) and predicted class index, or None.

    Usable: every class's probability logged and the prediction one of the logged classes.
    """
    names = [str(column) for column in logs.columns]
    classes = [name.removeprefix(PROBABILITY_PREFIX) for name in names if name.startswith(PROBABILITY_PREFIX)]
    if len(classes) < 2 or PREDICTION not in logs:
        return None
    probabilities = logs[[probability_column(label) for label in classes]].to_numpy(dtype=float)
    index = {label: position for position, label in enumerate(classes)}
    predicted = logs[PREDICTION].astype(str).map(index).to_numpy(dtype=float)
    usable = ~np.isnan(probabilities).any(axis=1) & ~np.isnan(predicted) & (probabilities.sum(axis=1) > 0)
    if not usable.any():
        return None
    kept = probabilities[usable]
    return kept / kept.sum(axis=1, keepdims=True), predicted[usable].astype(int)


def estimate(
    logs: pd.DataFrame, training: Mapping[str, float], allowed_drop: float, min_rows: int
) -> Estimate | None:
    """CBPE of the window's logged predictions: balanced accuracy when training measured it, else accuracy.

    None without logged class probabilities. Alerts when the estimate is below the training
    value less ``allowed_drop`` (relative) and at least ``min_rows`` rows were scored.
    """
    scored = scored_rows(logs)
    if scored is None:
        return None
    probabilities, predicted = scored
    metrics = confusion_metrics(expected_confusion(probabilities, predicted))
    metric = MIX_FREE if MIX_FREE in training else "accuracy"
    trained = float(training.get(metric, float("nan")))
    threshold = trained - allowed_drop * abs(trained) if np.isfinite(trained) else float("nan")
    value = metrics[metric]
    alert = len(predicted) >= min_rows and bool(value < threshold)
    band = sampling_band(probabilities, predicted, metric)
    rounded = {name: round(number, 4) for name, number in metrics.items()}
    return Estimate(metric, round(value, 4), band, round(threshold, 4), len(predicted), alert, rounded)


def against_labels(found: Estimate | None, realised: Mapping[str, float]) -> Estimate | None:
    """The estimate with the metric its rows realised once labelled, to judge the estimator."""
    if found is None or found.metric not in realised:
        return found
    return replace(found, realised=round(float(realised[found.metric]), 4))
