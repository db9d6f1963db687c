"""Metrics and diagnostic plots for one task; pure functions of (y_true, y_pred)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn import metrics
from sklearn.base import BaseEstimator

CLASSIFICATION, REGRESSION = "classification", "regression"


def score(task: str, model: BaseEstimator, x: pd.DataFrame, y: pd.Series) -> dict[str, float]:
    """The task's metrics of a fitted model on one labelled set."""
    predicted = model.predict(x)  # type: ignore[attr-defined]
    if task == REGRESSION:
        return regression_metrics(y.to_numpy(dtype=float), np.asarray(predicted, dtype=float))
    probabilities = model.predict_proba(x) if hasattr(model, "predict_proba") else None
    return classification_metrics(y.to_numpy(), np.asarray(predicted), probabilities, list(model.classes_))  # type: ignore[attr-defined]


def classification_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray | None, classes: list[object]
) -> dict[str, float]:
    """Accuracy, balanced accuracy, macro F1, and ROC AUC where probabilities exist and both classes occur.

    Balanced accuracy (the mean of per-class recalls) stays put when only the class mix moves,
    which is how monitoring tells a label shift from a concept change.
    """
    result = {
        "accuracy": float(metrics.accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(metrics.balanced_accuracy_score(y_true, y_pred)),
        "f1_macro": float(metrics.f1_score(y_true, y_pred, average="macro")),
    }
    if proba is not None and len(set(y_true)) > 1:
        if len(classes) == 2:
            result["roc_auc"] = float(metrics.roc_auc_score(y_true == classes[1], proba[:, 1]))
        else:
            result["roc_auc"] = float(metrics.roc_auc_score(y_true, proba, multi_class="ovr", labels=classes))
    return result


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """RMSE, MAE and R2."""
    return {
        "rmse": float(np.sqrt(metrics.mean_squared_error(y_true, y_pred))),
        "mae": float(metrics.mean_absolute_error(y_true, y_pred)),
        "r2": float(metrics.r2_score(y_true, y_pred)),
    }


MISSING_SEGMENT = "(missing)"


def segment_metrics(
    task: str, predicted: np.ndarray, x: pd.DataFrame, y: pd.Series, columns: list[str]
) -> dict[str, dict[str, dict[str, float | int]]]:
    """The test metrics per value of each segment column, with the rows behind each.

    A model can hold its headline metric while failing one region or contract type; the rows
    say how much a segment's number can be trusted.
    """
    found: dict[str, dict[str, dict[str, float | int]]] = {}
    for column in columns:
        levels = x[column].astype("string").fillna(MISSING_SEGMENT).to_numpy()
        found[column] = {}
        for level in sorted(set(levels)):
            rows = levels == level
            truth, guess = y.to_numpy()[rows], predicted[rows]
            scores = (
                regression_metrics(truth.astype(float), guess.astype(float))
                if task == REGRESSION
                else classification_metrics(truth, guess, None, [])
            )
            found[column][str(level)] = {"rows": int(rows.sum()), **scores}
    return found


def breakdown(
    task: str, model: BaseEstimator, x: pd.DataFrame, y: pd.Series, segments: list[str] | None = None
) -> dict[str, object]:
    """What a reviewer reads beside the headline metric: per class and confusion, or residuals.

    With ``segments`` (``data.segments``), the test metrics per value of those columns too.
    JSON-ready: class labels as strings, counts as ints, matrix rows in the order of ``classes``.
    """
    predicted = np.asarray(model.predict(x))  # type: ignore[attr-defined]
    by_segment = {"segments": segment_metrics(task, predicted, x, y, segments)} if segments else {}
    if task == REGRESSION:
        residuals = y.to_numpy(dtype=float) - predicted.astype(float)
        quantiles = np.quantile(residuals, [0.05, 0.5, 0.95])
        return by_segment | {
            "residuals": {
                "mean": float(residuals.mean()),
                "p5": float(quantiles[0]),
                "p50": float(quantiles[1]),
                "p95": float(quantiles[2]),
                "max_abs": float(np.abs(residuals).max()),
            }
        }
    classes = list(model.classes_)  # type: ignore[attr-defined]
    precision, recall, f1, support = metrics.precision_recall_fscore_support(
        y.to_numpy(), predicted, labels=classes, zero_division=0
    )
    per_class = {
        str(label): {"precision": float(p), "recall": float(r), "f1": float(f), "rows": int(n)}
        for label, p, r, f, n in zip(classes, precision, recall, f1, support, strict=True)
    }
    matrix = metrics.confusion_matrix(y.to_numpy(), predicted, labels=classes)
    return by_segment | {
        "per_class": per_class,
        "confusion": {"classes": [str(c) for c in classes], "rows": matrix.tolist()},
    }


def close(figure: Figure) -> None:
    """Release a figure once saved or logged: pyplot keeps every one it made until closed."""
    plt.close(figure)


def diagnostic_plot(task: str, model: BaseEstimator, x: pd.DataFrame, y: pd.Series) -> Figure:
    """Confusion matrix for classification, residuals against predictions for regression."""
    figure, axis = plt.subplots(figsize=(5, 4), dpi=100)
    if task == CLASSIFICATION:
        metrics.ConfusionMatrixDisplay.from_estimator(model, x, y, ax=axis, colorbar=False)
        axis.set_title("Confusion matrix (test split)")
    else:
        predicted = np.asarray(model.predict(x), dtype=float)  # type: ignore[attr-defined]
        axis.scatter(predicted, y.to_numpy(dtype=float) - predicted, s=6, alpha=0.5)
        axis.axhline(0, color="grey", linewidth=1)
        axis.set(xlabel="predicted", ylabel="actual - predicted", title="Residuals (test split)")
    figure.tight_layout()
    return figure
