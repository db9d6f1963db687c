"""Late labels: logged predictions joined to ground truth, the realised metric and the label mix."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from .. import evaluation, store
from ..config import Config, resolve
from ..data import DataError, load_table
from ..profiling import DatasetProfileView
from ..reference import PREDICTION, Reference
from ..serving.traffic import CLIENT_COLUMN
from .columns import ColumnReport, compare_columns
from .window import LOG_SUFFIXES, window_files


@dataclass(frozen=True)
class Performance:
    """Realised metrics on labelled requests against the training test metrics."""

    labelled: int
    primary_metric: str
    metrics: dict[str, float]
    training: dict[str, float]
    relative_drop: float
    degraded: bool


def read_logs(paths: list[Path]) -> pd.DataFrame:
    """Concatenate prediction logs (CSV, Parquet or the JSON lines of ``bentoml.monitor``)."""
    frames = [
        pd.read_json(path, lines=True) if path.suffix == ".jsonl" else load_table(path) for path in paths
    ]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


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
    latest = logs.drop_duplicates(subset=[key], keep="last")[[key, PREDICTION]]
    return latest.merge(labels.drop_duplicates(subset=[key], keep="last")[[key, target]], on=key, how="inner")


def realised_metrics(task: str, joined: pd.DataFrame, target: str) -> dict[str, float]:
    """The task's metrics on the labelled requests (no probabilities are logged, so no ROC AUC)."""
    if task == evaluation.REGRESSION:
        return evaluation.regression_metrics(
            joined[target].to_numpy(dtype=float), joined[PREDICTION].to_numpy(dtype=float)
        )
    # Integer codes: scikit-learn sorts label arrays, and sorting a million strings takes seconds.
    truth, predicted = joined[target].astype(str), joined[PREDICTION].astype(str)
    classes = sorted(set(truth.unique()) | set(predicted.unique()))
    codes = [np.asarray(pd.Categorical(column, categories=classes).codes) for column in (truth, predicted)]
    return evaluation.classification_metrics(codes[0], codes[1], None, list(range(len(classes))))


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
    target, meta = str(reference.meta["target"]), reference.meta
    metrics = realised_metrics(str(meta["task"]), joined, target)
    training = {name: float(value) for name, value in meta.get("metrics", {}).items()}
    primary = str(meta.get("primary_metric", cfg.training.primary_metric))
    drop = relative_drop(
        metrics.get(primary, float("nan")),
        training.get(primary, float("nan")),
        bool(meta.get("greater_is_better", True)),
    )
    performance = Performance(
        len(joined), primary, metrics, training, round(drop, 4), drop > cfg.monitoring.max_metric_drop
    )
    return performance, compare_columns(cfg.monitoring, reference.view, labels_view, {target: "label"})


def labelled_window(cfg: Config, start: datetime, end: datetime, scratch: Path) -> pd.DataFrame | None:
    """Logged predictions of the window joined to the labels file; None until labels exist."""
    labels_path = resolve(cfg.monitoring.labels_path)
    log_dir = cfg.monitoring.prediction_log_dir
    no_logs = not store.is_remote(log_dir) and not store.local(log_dir).is_dir()
    if not labels_path.is_file() or no_logs or not cfg.data.id_column:
        return None
    logs = read_logs(window_files(log_dir, start, end, LOG_SUFFIXES, scratch))
    if CLIENT_COLUMN in logs:  # the checks' own requests reuse held-out ids: never join them to labels
        logs = logs[~logs[CLIENT_COLUMN].isin(cfg.monitoring.exclude_clients)]
    if logs.empty:
        return None
    joined = join_labels(cfg, logs, load_table(labels_path), cfg.data.target)
    return joined if len(joined) else None
