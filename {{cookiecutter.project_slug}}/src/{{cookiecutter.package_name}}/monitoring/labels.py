"""Late labels: logged predictions joined to ground truth, the realised metric, calibration, the label mix."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from .. import evaluation, store
from ..config import Config, resolve
from ..data import DataError, load_table
from ..profiling import DatasetProfileView
from ..reference import PREDICTION, Reference
from ..serving.traffic import (
    CLIENT_COLUMN,
    CONFIDENCE_COLUMN,
    PROBABILITY_PREFIX,
    VERSION_COLUMN,
    probability_column,
)
from . import estimate
from .columns import ColumnReport, compare_columns
from .estimate import COUNTED, Estimate, confusion_metric
from .window import LOG_SUFFIXES, UNVERSIONED, window_files

BOOTSTRAP_SAMPLES = 200
CALIBRATION_BINS = 10
MIX_FREE = "balanced_accuracy"
"""The classifier metric a change of class mix alone does not move (mean per-class recall)."""


@dataclass(frozen=True)
class ReliabilityBin:
    """Labelled rows whose predicted probability fell in ``[low, high)``: predicted versus observed."""

    low: float
    high: float
    mean_predicted: float
    observed_rate: float
    count: int


@dataclass(frozen=True)
class Calibration:
    """How far a two-class model's logged probabilities are from the rates that came true.

    A model can keep its accuracy while its probabilities drift (its 0.8s come true 60 % of the
    time), which misleads anything that thresholds or prices on them. ``expected_error`` is the
    row-weighted mean gap between predicted and observed over the bins (0 = calibrated).
    """

    positive_class: str
    expected_error: float
    bins: list[ReliabilityBin]


@dataclass(frozen=True)
class Performance:
    """Realised metrics on labelled requests against the training test metrics.

    ``interval`` is a 95 % bootstrap interval of the realised ``judged_metric``. The model counts
    as degraded only when the whole interval lies beyond the allowed drop, and only with at
    least ``min_labels`` labels: a few hundred labels move a metric by sampling noise alone.
    Classifiers are judged on balanced accuracy, which a change of the class mix alone (label
    shift) leaves where it was, so a drop means the input -> outcome relation changed.
    """

    labelled: int
    primary_metric: str
    metrics: dict[str, float]
    training: dict[str, float]
    relative_drop: float
    degraded: bool
    interval: tuple[float, float] = (float("nan"), float("nan"))
    enough_labels: bool = True
    judged_metric: str = ""
    by_version: dict[str, dict[str, float]] = field(default_factory=dict)
    calibration: Calibration | None = None
    roc_auc_absent: str = ""
    """Why a classifier's ROC AUC is not in ``metrics`` (empty when it is, and for regression)."""
    estimate: Estimate | None = None
    """A classifier's estimate before labels (:mod:`.estimate`) on these labelled rows, with the
    metric they realised: how far the estimator can be trusted on the windows without labels."""
    allowed_drop: float = 0.0
    """``monitoring.max_metric_drop`` when judged: the relative drop that is still no alert."""
    greater_is_better: bool = True
    """Whether ``judged_metric`` grows with quality (balanced accuracy) or shrinks (RMSE)."""
    recalibrated_r2: float | None = None
    """Regression: R^2 after the window's own straight-line fit of truth on prediction (None otherwise)."""
    relation_held: bool = False
    """Regression: ``recalibrated_r2`` within the allowed drop of the training R^2. The input ->
    outcome relation held and only the outcome's level or scale moved (label shift): a worse
    metric then says the model is off by a shift and a factor, not that it ranks wrongly."""

    @property
    def detectable_drop(self) -> float:
        """The smallest relative drop of ``judged_metric`` these labels confirm (minimum detectable effect).

        A drop is confirmed when the whole interval lies beyond the allowed drop, so the realised
        value must sit the interval's better half-width further: with few labels a real 6 % drop
        can stay unconfirmed, and the page says so instead of "no concept drift".
        """
        realised = self.metrics.get(self.judged_metric, float("nan"))
        trained = self.training.get(self.judged_metric, float("nan"))
        low, high = self.interval
        if not all(np.isfinite([realised, trained, low, high])) or trained == 0:
            return float("nan")
        better = high - realised if self.greater_is_better else realised - low
        return round(self.allowed_drop + max(0.0, float(better)) / abs(trained), 4)

    def relation_line(self) -> str:
        """The regression relation's evidence, one line: refitted R^2 against training's R^2."""
        trained = self.training.get("r2", float("nan"))
        held = "held" if self.relation_held else "fell"
        refit = f"{self.recalibrated_r2:.3f} vs {trained:.3f} at training"
        return f"relation: R^2 after refitting truth on the prediction {refit} ({held})"


def read_log(path: Path) -> pd.DataFrame:
    """One prediction log (CSV, Parquet or the JSON lines of ``bentoml.monitor``)."""
    if path.suffix != ".jsonl":
        return load_table(path)
    try:
        return pd.read_json(path, lines=True)
    except ValueError as error:
        raise DataError(f"{path}: cannot be read as JSON lines ({error})") from None


def read_logs(paths: list[Path]) -> tuple[pd.DataFrame, dict[str, str]]:
    """Concatenated prediction logs, and the files that could not be read, named with the reason.

    A torn or empty file is skipped, as an unreadable profile is: one bad file never costs the
    labelled metric of the whole window.
    """
    frames, unreadable = [], {}
    for path in paths:
        try:
            frames.append(read_log(path))
        except DataError as error:
            unreadable[path.name] = str(error).split(": ", 1)[-1]
    return (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()), unreadable


def logged_classes(frame: pd.DataFrame) -> list[str]:
    """The classes whose probability the logs carry (``proba__<class>`` columns), in logged order."""
    names = [str(column) for column in frame.columns]
    return [name.removeprefix(PROBABILITY_PREFIX) for name in names if name.startswith(PROBABILITY_PREFIX)]


def join_labels(cfg: Config, logs: pd.DataFrame, labels: pd.DataFrame, target: str) -> pd.DataFrame:
    """Predictions and their late ground truth, matched on the id column (last prediction per id)."""
    key = cfg.data.id_column
    for name, frame, needed in (
        ("prediction log", logs, [key, PREDICTION]),
        ("labels file", labels, [key, target]),
    ):
        missing = [column for column in needed if column not in frame.columns]
        if missing:
            raise DataError(f"{name}: missing columns {missing}; it needs {needed}")
    scores = [VERSION_COLUMN, CONFIDENCE_COLUMN, *map(probability_column, logged_classes(logs))]
    kept = [key, PREDICTION, *(column for column in scores if column in logs)]
    latest = logs.drop_duplicates(subset=[key], keep="last")[kept]
    return latest.merge(labels.drop_duplicates(subset=[key], keep="last")[[key, target]], on=key, how="inner")


def outcomes(task: str, joined: pd.DataFrame, target: str) -> tuple[np.ndarray, np.ndarray]:
    """Truth and prediction as arrays: floats for regression, integer class codes otherwise.

    Integer codes: scikit-learn sorts label arrays, and sorting a million strings takes seconds.
    """
    if task == evaluation.REGRESSION:
        return joined[target].to_numpy(dtype=float), joined[PREDICTION].to_numpy(dtype=float)
    truth, predicted = joined[target].astype(str), joined[PREDICTION].astype(str)
    classes = sorted(set(truth.unique()) | set(predicted.unique()))
    codes = [np.asarray(pd.Categorical(column, categories=classes).codes) for column in (truth, predicted)]
    return codes[0], codes[1]


def metrics_of(task: str, truth: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """The task's metrics from labels alone (ROC AUC, which needs probabilities: :func:`roc_auc`)."""
    if task == evaluation.REGRESSION:
        return evaluation.regression_metrics(truth, predicted)
    classes: list[object] = list(range(int(max(truth.max(initial=0), predicted.max(initial=0))) + 1))
    return evaluation.classification_metrics(truth, predicted, None, classes)


ERRORS = ("rmse", "mae", "r2")


def error_metric(truth: np.ndarray, predicted: np.ndarray, metric: str) -> float:
    """RMSE, MAE or R^2 as :func:`..evaluation.regression_metrics` has them (constant truth: R^2 1 or 0)."""
    errors = truth - predicted
    if metric == "rmse":
        return float(np.sqrt(np.mean(errors**2)))
    if metric == "mae":
        return float(np.mean(np.abs(errors)))
    spread = float(np.sum((truth - truth.mean()) ** 2))
    if spread == 0:
        return 1.0 if not errors.any() else 0.0  # scikit-learn's force_finite
    return 1.0 - float(np.sum(errors**2)) / spread


def bootstrap_interval(
    task: str, truth: np.ndarray, predicted: np.ndarray, metric: str
) -> tuple[float, float]:
    """2.5th and 97.5th percentiles of ``metric`` over resamples of the labelled rows (seeded).

    A classifier's resamples are counted into confusion matrices (:func:`confusion_metric`) and
    a regressor's errors summed with numpy (:func:`error_metric`): the same numbers as
    scikit-learn's, without its input checks, which cost 6-25 ms a resample.
    """
    rng = np.random.default_rng(0)
    values = []
    classifier = task != evaluation.REGRESSION
    fast = metric in (COUNTED if classifier else ERRORS)
    classes = int(max(truth.max(initial=0), predicted.max(initial=0))) + 1 if classifier else 0
    for _ in range(BOOTSTRAP_SAMPLES):
        rows = rng.integers(0, len(truth), len(truth))
        if not fast:
            values.append(metrics_of(task, truth[rows], predicted[rows]).get(metric, float("nan")))
        elif classifier:
            cells = np.bincount(truth[rows] * classes + predicted[rows], minlength=classes * classes)
            values.append(confusion_metric(cells.reshape(classes, classes), metric))
        else:
            values.append(error_metric(truth[rows], predicted[rows], metric))
    low, high = np.nanpercentile(values, [2.5, 97.5])
    return round(float(low), 4), round(float(high), 4)


@dataclass(frozen=True)
class Positive:
    """A two-class model's positive (second) class and its probability on each labelled row."""

    label: str
    probability: np.ndarray


def positive_probability(joined: pd.DataFrame, target: str) -> Positive | None:
    """The second class's probability per labelled row, for a two-class model that logged it.

    Read from its ``proba__<class>`` column; logs written before those columns existed give it
    from the confidence (the confidence when that class was predicted, else one minus it). None
    with more classes, or when some row has neither.
    """
    classes = logged_classes(joined)
    if classes:
        columns = [probability_column(label) for label in classes]
        if len(classes) != 2 or joined[columns].isna().any(axis=None):
            return None
        return Positive(classes[1], joined[columns[1]].to_numpy(dtype=float))
    if CONFIDENCE_COLUMN not in joined or joined[CONFIDENCE_COLUMN].isna().any():
        return None
    seen = sorted(set(joined[target].astype(str)) | set(joined[PREDICTION].astype(str)))
    if len(seen) != 2:
        return None
    confidence = joined[CONFIDENCE_COLUMN].to_numpy(dtype=float)
    predicted = joined[PREDICTION].astype(str).to_numpy() == seen[1]
    return Positive(seen[1], np.where(predicted, confidence, 1.0 - confidence))


NO_PROBABILITIES = (
    "the logs carry no class probabilities (written before the service logged them, "
    "or only the top class's confidence of a model with more than two classes)"
)


def roc_auc(joined: pd.DataFrame, target: str, positive: Positive | None) -> tuple[dict[str, float], str]:
    """ROC AUC on labelled traffic as training measures it (:mod:`..evaluation`), or why there is none.

    Two classes: the AUC of the positive class's probability. More: the macro one-versus-rest
    AUC over every logged class's probability, which needs every class among the labels.
    """
    truth = joined[target].astype(str).to_numpy()
    if positive is not None:
        if len(set(truth.tolist())) < 2:
            return {}, f"every label is {truth[0]!r}: ROC AUC needs both outcomes among the labels"
        return {"roc_auc": round(float(roc_auc_score(truth == positive.label, positive.probability)), 4)}, ""
    classes = sorted(logged_classes(joined))  # scikit-learn wants the labels in sorted order
    if not classes:
        return {}, NO_PROBABILITIES
    probabilities = joined[[probability_column(label) for label in classes]]
    why = _multiclass_gap(truth, probabilities, classes)
    if why:
        return {}, why
    score = roc_auc_score(truth, probabilities.to_numpy(dtype=float), multi_class="ovr", labels=classes)
    return {"roc_auc": round(float(score), 4)}, ""


def _multiclass_gap(truth: np.ndarray, probabilities: pd.DataFrame, classes: list[str]) -> str:
    """What keeps one-versus-rest ROC AUC from being measured on these rows ("" when nothing)."""
    unscored = int(probabilities.isna().any(axis=1).sum())
    if unscored:
        return f"{unscored:,} of {len(truth):,} labelled rows were logged without every class's probability"
    seen = set(truth.tolist())
    unknown = sorted(seen - set(classes))
    if unknown:
        return f"labels {unknown} are not classes the model scored"
    absent = [label for label in classes if label not in seen]
    if absent:
        return f"no label of class {absent} yet: one-versus-rest ROC AUC needs every class among the labels"
    return ""


def reliability(positive: np.ndarray, probability: np.ndarray, positive_class: str) -> Calibration:
    """Observed positive rate against mean predicted probability in tenths of probability, and the ECE.

    Empty bins are left out; 1.0 falls in the last bin.
    """
    edges = np.linspace(0.0, 1.0, CALIBRATION_BINS + 1)
    exact = np.round(probability, 9)  # 1 - 0.8 is 0.19999...: it belongs with the 0.2s
    index = np.clip(np.digitize(exact, edges[1:-1]), 0, CALIBRATION_BINS - 1)
    bins = [
        _reliability_bin(edges[b], edges[b + 1], positive[index == b], probability[index == b])
        for b in range(CALIBRATION_BINS)
        if (index == b).any()
    ]
    gaps = sum(abs(b.mean_predicted - b.observed_rate) * b.count for b in bins)
    return Calibration(positive_class, round(gaps / max(len(probability), 1), 4), bins)


def _reliability_bin(
    low: float, high: float, positive: np.ndarray, probability: np.ndarray
) -> ReliabilityBin:
    """One bin's bounds, mean predicted probability, observed positive rate and rows."""
    return ReliabilityBin(
        round(float(low), 2),
        round(float(high), 2),
        round(float(probability.mean()), 4),
        round(float(positive.mean()), 4),
        len(probability),
    )


def calibrated(joined: pd.DataFrame, target: str, positive: Positive | None) -> Calibration | None:
    """The reliability of a two-class model's positive probability (None without one)."""
    if positive is None:
        return None
    outcome = joined[target].astype(str).to_numpy() == positive.label
    return reliability(outcome, positive.probability, positive.label)


def recalibrated_r2(truth: np.ndarray, predicted: np.ndarray) -> float | None:
    """R^2 once truth is refitted on the prediction by a straight line: the squared correlation.

    Regression's counterpart of balanced accuracy: moving or rescaling the target (the same
    customers stay 10 % longer) leaves it where it was, while RMSE, MAE and R^2 all worsen. So a
    fall in RMSE with this held is label shift, and a fall in this is concept drift. None when
    either side is constant.
    """
    if len(truth) < 3 or np.std(truth) == 0 or np.std(predicted) == 0:
        return None
    return round(float(np.corrcoef(truth, predicted)[0, 1] ** 2), 4)


def relation_held(recalibrated: float | None, training: dict[str, float], allowed: float) -> bool:
    """The recalibrated R^2 is within ``allowed`` (relative) of the training R^2."""
    trained = training.get("r2", float("nan"))
    if recalibrated is None or not np.isfinite(trained):
        return False
    return recalibrated >= trained - allowed * abs(trained)


def by_version(task: str, joined: pd.DataFrame, target: str, metric: str) -> dict[str, dict[str, float]]:
    """Labelled rows and the judged metric per model version (empty when the logs carry none)."""
    if VERSION_COLUMN not in joined or joined[VERSION_COLUMN].fillna("").eq("").all():
        return {}
    found = {}
    for version, rows in joined.groupby(joined[VERSION_COLUMN].fillna("").astype(str), sort=True):
        value = metrics_of(task, *outcomes(task, rows, target)).get(metric, float("nan"))
        found[str(version) or UNVERSIONED] = {"labelled": float(len(rows)), metric: round(value, 4)}
    return found


def beyond_allowed_drop(
    interval: tuple[float, float], trained: float, greater_is_better: bool, allowed: float
) -> bool:
    """The whole interval is worse than the training value by more than ``allowed`` (relative)."""
    if not np.isfinite(trained):
        return False
    if greater_is_better:
        return interval[1] < trained - allowed * abs(trained)
    return interval[0] > trained + allowed * abs(trained)


def relative_drop(realised: float, trained: float, greater_is_better: bool) -> float:
    """How much worse than at training, as a share of the training value (0 = as good or better)."""
    if not np.isfinite(trained) or trained == 0:
        return 0.0
    worse = trained - realised if greater_is_better else realised - trained
    return max(0.0, float(worse / abs(trained)))


def assess_labels(
    cfg: Config, reference: Reference, joined: pd.DataFrame, labels_view: DatasetProfileView
) -> tuple[Performance, list[ColumnReport]]:
    """Realised versus training metric (concept drift) and the label mix versus training (label shift)."""
    target, meta, task = str(reference.meta["target"]), reference.meta, str(reference.meta["task"])
    truth, predicted = outcomes(task, joined, target)
    classifier = task != evaluation.REGRESSION
    positive = positive_probability(joined, target) if classifier else None
    auc, auc_absent = roc_auc(joined, target, positive) if classifier else ({}, "")
    metrics = metrics_of(task, truth, predicted) | auc
    training = {name: float(value) for name, value in meta.get("metrics", {}).items()}
    primary = str(meta.get("primary_metric", cfg.training.primary_metric))
    judged = MIX_FREE if MIX_FREE in training and MIX_FREE in metrics else primary
    greater_is_better = True if judged == MIX_FREE else bool(meta.get("greater_is_better", True))
    trained = training.get(judged, float("nan"))
    drop = relative_drop(metrics.get(judged, float("nan")), trained, greater_is_better)
    interval = bootstrap_interval(task, truth, predicted, judged)
    enough = len(joined) >= cfg.monitoring.min_labels
    allowed = cfg.monitoring.max_metric_drop
    degraded = enough and beyond_allowed_drop(interval, trained, greater_is_better, allowed)
    refit = None if classifier else recalibrated_r2(truth, predicted)
    before = estimate.estimate(joined, training, allowed, cfg.monitoring.min_labels) if classifier else None
    performance = Performance(
        len(joined), primary, metrics, training, round(drop, 4), degraded, interval, enough, judged,
        by_version(task, joined, target, judged), calibrated(joined, target, positive), auc_absent,
        estimate.against_labels(before, metrics), allowed, greater_is_better, refit,
        relation_held(refit, training, allowed),
    )  # fmt: skip
    return performance, compare_columns(cfg.monitoring, reference.view, labels_view, {target: "label"})


def window_logs(
    cfg: Config, start: datetime, end: datetime, scratch: Path
) -> tuple[pd.DataFrame, dict[str, str]]:
    """The window's logged predictions, the excluded clients' left out, and the unreadable files.

    The checks' own requests reuse held-out ids: they must never be joined to labels. A whole
    hour with a current roll-up is read from it (:mod:`.rollup`).
    """
    log_dir = cfg.monitoring.prediction_log_dir
    if not store.is_remote(log_dir) and not store.local(log_dir).is_dir():
        return pd.DataFrame(), {}
    logs, unreadable = read_logs(window_files(log_dir, start, end, LOG_SUFFIXES, scratch))
    if CLIENT_COLUMN in logs:
        logs = logs[~logs[CLIENT_COLUMN].isin(cfg.monitoring.exclude_clients)]
    return logs, unreadable


@dataclass(frozen=True)
class Coverage:
    """How much of the window's logged traffic has ground truth, and why not when none."""

    status: str
    predictions: int = 0
    labelled: int = 0
    estimated_accuracy: float | None = None
    unreadable: dict[str, str] = field(default_factory=dict)
    """Prediction logs skipped because they could not be read, with the reason."""
    estimate: Estimate | None = None
    """The window's performance estimate before labels (:mod:`.estimate`), for a classifier."""
    estimate_absent: str = ""
    """Why there is no estimate (regression, or no class probabilities logged)."""

    def line(self) -> str:
        """One sentence for the report."""
        if self.status == LABELLED:
            share = self.labelled / self.predictions if self.predictions else 0.0
            found = f"{self.labelled:,} of {self.predictions:,} logged predictions labelled ({share:.1%})"
        else:
            found = f"no labels yet: {self.status}"
        if self.estimate is not None:
            return f"{found}; {self.estimate.line()}"
        if self.estimated_accuracy is not None:
            found += f"; accuracy estimated from the model's confidence {self.estimated_accuracy:.3f}"
        return f"{found}; {self.estimate_absent}" if self.estimate_absent else found


def estimated_accuracy(logs: pd.DataFrame) -> float | None:
    """The mean confidence of the logged predictions: the accuracy to expect before labels arrive.

    A calibrated classifier is right as often as it is sure (the idea behind confidence-based
    performance estimation), so this is an estimate, marked as one, not a measurement.
    """
    if CONFIDENCE_COLUMN not in logs or logs[CONFIDENCE_COLUMN].isna().all():
        return None
    return round(float(logs[CONFIDENCE_COLUMN].mean()), 4)


LABELLED = "labelled"


def labelled_window(
    cfg: Config, start: datetime, end: datetime, scratch: Path, reference: Reference | None = None
) -> tuple[Coverage, pd.DataFrame | None]:
    """Logged predictions of the window joined to the labels file, and what that join covers.

    Missing, empty or unreadable inputs are a coverage status, never an error: monitoring goes on
    without labels and the report says why there are none. With the ``reference``, a
    classifier's performance is estimated from the logged probabilities before any label.
    """
    labels_path = resolve(cfg.monitoring.labels_path)
    if not cfg.data.id_column:
        return Coverage("data.id_column is not set, so predictions cannot be matched to labels"), None
    logs, unreadable = window_logs(cfg, start, end, scratch)
    if logs.empty:
        log_dir = cfg.monitoring.prediction_log_dir
        return Coverage(f"no predictions logged in {log_dir} in the window", unreadable=unreadable), None
    confident = estimated_accuracy(logs)
    coverage, joined = Coverage(LABELLED, len(logs), 0, confident, unreadable), None
    if not labels_path.is_file():
        coverage = replace(coverage, status=f"{cfg.monitoring.labels_path} does not exist")
    else:
        coverage, joined = _joined(cfg, logs, labels_path, coverage)
    return (coverage if reference is None else _with_estimate(cfg, coverage, logs, reference)), joined


def _joined(
    cfg: Config, logs: pd.DataFrame, path: Path, coverage: Coverage
) -> tuple[Coverage, pd.DataFrame | None]:
    """The logs joined to the labels file at ``path``; the coverage says why nothing joined."""
    try:
        labels = load_table(path)
    except DataError as error:
        return replace(coverage, status=str(error)), None
    joined = join_labels(cfg, logs, labels, cfg.data.target)
    if joined.empty:
        unmatched = f"no id in {cfg.monitoring.labels_path} matches a logged prediction"
        return replace(coverage, status=unmatched), None
    return replace(coverage, labelled=len(joined)), joined


def _with_estimate(cfg: Config, coverage: Coverage, logs: pd.DataFrame, reference: Reference) -> Coverage:
    """The coverage with the window's estimate before labels, or why there is none."""
    if str(reference.meta.get("task", cfg.task)) == evaluation.REGRESSION:
        return replace(coverage, estimate_absent=estimate.NO_REGRESSION_ESTIMATE)
    metrics = reference.meta.get("metrics", {}).items()
    training = {name: float(value) for name, value in metrics if value is not None}
    monitoring = cfg.monitoring
    found = estimate.estimate(logs, training, monitoring.max_metric_drop, monitoring.min_labels)
    return replace(coverage, estimate=found, estimate_absent="" if found else NO_PROBABILITIES)
