"""Production monitoring: one window of served traffic held against the model's training reference.

The service writes one whylogs profile per window per worker (features plus ``prediction``).
:func:`monitor` merges the profiles of the configured window and compares them column by column
with the reference profile logged at training time (``reference/`` in the model's MLflow run):
distribution drift (:mod:`drift`), missing-value and type changes, unseen categories, the
prediction mix, and, once ground-truth labels arrive, the label mix and the realised metric
against the training metric (concept drift). Everything here is a pure decision over profiles
and tables; :mod:`dashboards` draws it, :mod:`health` reads the service's metrics.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from sklearn.base import BaseEstimator

from {{ cookiecutter.package_name }} import drift, evaluation, profiling, registry, store
from {{ cookiecutter.package_name }}.config import Config, MonitoringConfig, resolve
from {{ cookiecutter.package_name }}.data import DataError, load_table
from {{ cookiecutter.package_name }}.deployment import state
from {{ cookiecutter.package_name }}.health import Health
from {{ cookiecutter.package_name }}.profiling import ColumnProfileView, DatasetProfileView, ProfileError

PREDICTION = "prediction"
REFERENCE_DIR = "reference"
REFERENCE_PROFILE = "reference.bin"
REFERENCE_META = "reference.json"
LOG_SUFFIXES = {".csv", ".parquet", ".pq", ".jsonl"}


@dataclass(frozen=True)
class Reference:
    """The training-time profile and what training knew: task, target, metrics, features."""

    view: DatasetProfileView
    source: str
    meta: dict[str, Any]

    @property
    def features(self) -> list[str]:
        """Model inputs: every profiled column except the prediction and the target."""
        listed = self.meta.get("features")
        if listed:
            return [str(name) for name in listed]
        skip = {PREDICTION, self.meta.get("target")}
        return [name for name in self.view.get_columns() if name not in skip]


@dataclass(frozen=True)
class ColumnReport:
    """One column of the window against the reference: distance, quality changes, alerts."""

    column: str
    role: str
    kind: str
    statistic: float
    threshold: float
    drifted: bool
    missing_reference: float
    missing_current: float
    type_reference: str
    type_current: str
    new_categories: dict[str, float] = field(default_factory=dict)
    alerts: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Performance:
    """Realised metrics on labelled requests against the training test metrics."""

    labelled: int
    primary_metric: str
    metrics: dict[str, float]
    training: dict[str, float]
    relative_drop: float
    degraded: bool


@dataclass
class MonitorResult:
    """Everything the reports show and ``monitor.json`` holds."""

    generated_at: str
    window_start: str
    window_end: str
    files: int
    rows: int
    reference: dict[str, Any]
    columns: list[ColumnReport]
    missing_columns: list[str]
    timeline: list[dict[str, Any]]
    performance: Performance | None = None
    health: Health | None = None

    @property
    def alerts(self) -> list[str]:
        """Every finding a person should look at, data first, then model, then service."""
        found = [f"{name}: column missing from production profiles" for name in self.missing_columns]
        found += [alert for column in self.columns for alert in column.alerts]
        if self.performance and self.performance.degraded:
            perf, nan = self.performance, float("nan")
            realised, trained = (
                perf.metrics.get(perf.primary_metric, nan),
                perf.training.get(perf.primary_metric, nan),
            )
            cause = "concept drift" if self.concept_drift else "inputs moved"
            found.append(
                f"performance: {perf.primary_metric} {realised:.3f} vs {trained:.3f} at training"
                f" ({perf.relative_drop:.0%} worse; {cause})"
            )
        return found + (self.health.alerts if self.health else [])

    @property
    def drift_detected(self) -> bool:
        """Data, prediction, label or concept drift, or a data-quality change; not service health."""
        data_alerts = len(self.alerts) - (len(self.health.alerts) if self.health else 0)
        return data_alerts > 0

    @property
    def concept_drift(self) -> bool:
        """The model got worse while its inputs did not move: the input -> outcome relation changed."""
        degraded = self.performance is not None and self.performance.degraded
        return degraded and not any(c.drifted for c in self.columns if c.role == "feature")

    @property
    def drifted_columns(self) -> list[str]:
        """Columns whose distribution moved past their threshold."""
        return [column.column for column in self.columns if column.drifted]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, with the derived verdicts spelled out for machines."""
        return asdict(self) | {
            "drift_detected": self.drift_detected,
            "concept_drift": self.concept_drift,
            "drifted_columns": self.drifted_columns,
            "alerts": self.alerts,
        }


@dataclass(frozen=True)
class Comparison:
    """A result plus the merged profiles it came from (the charts draw from the sketches)."""

    result: MonitorResult
    reference: Reference
    current: DatasetProfileView
    labels: DatasetProfileView | None = None


# ---------------------------------------------------------------- reference at training time


def reference_frame(model: BaseEstimator, x: pd.DataFrame, y: pd.Series, target: str) -> pd.DataFrame:
    """Training inputs with the model's predictions and the true target, as production will log them."""
    return x.assign(**{PREDICTION: model.predict(x), target: y.to_numpy()})  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Training:
    """What training hands to monitoring: the fitted model, its training split and test scores."""

    model: BaseEstimator
    x: pd.DataFrame
    y: pd.Series
    scores: dict[str, float]


def write_reference(cfg: Config, trained: Training, folder: str | Path) -> Path:
    """``reference.bin`` (inputs, prediction, target) and ``reference.json`` (task, metrics) in ``folder``."""
    meta = {
        "task": cfg.task,
        "target": cfg.data.target,
        "primary_metric": cfg.training.primary_metric,
        "greater_is_better": cfg.training.greater_is_better,
        "metrics": trained.scores,
        "features": list(trained.x.columns),
        "rows": len(trained.x),
    }
    frame = reference_frame(trained.model, trained.x, trained.y, cfg.data.target)
    path = profiling.write(profiling.profile(frame), Path(folder) / REFERENCE_PROFILE)
    (Path(folder) / REFERENCE_META).write_text(json.dumps(meta, indent=2))
    return path


def log_reference(cfg: Config, trained: Training) -> None:
    """Log the reference as ``reference/`` in the active MLflow run, beside the model."""
    with tempfile.TemporaryDirectory() as folder:
        write_reference(cfg, trained, folder)
        mlflow.log_artifacts(folder, artifact_path=REFERENCE_DIR)


def fetch_reference(cfg: Config, alias: str, destination: str | Path) -> Path:
    """Download the ``reference/`` folder of the model behind ``alias`` into ``destination``."""
    client = registry.connect(cfg.mlflow)
    version = registry.version_by_alias(client, cfg.mlflow.model_name, alias)
    if version is None:
        raise DataError(f"no model has the alias {alias!r}; run `nox -s train` and promote a model first")
    model = {"name": cfg.mlflow.model_name, "version": str(version.version), "alias": alias}
    return download_reference(model, str(version.run_id), destination)


def download_reference(model: dict[str, str], run_id: str, destination: str | Path) -> Path:
    """``reference/`` of a model's training run into ``destination``, with ``model.json`` naming it.

    Monitoring reads it from here; packaging puts it inside the BentoML model, so every bento and
    image carries the profile its traffic is held against.
    """
    target = resolve(destination)
    target.mkdir(parents=True, exist_ok=True)
    try:
        mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=REFERENCE_DIR, dst_path=str(target))
    except (MlflowException, OSError) as error:
        raise DataError(
            f"model {model['name']} v{model['version']} has no reference profile ({error}); retrain it"
        ) from None
    folder = target / REFERENCE_DIR
    (folder / "model.json").write_text(json.dumps(model))
    return folder


def bento_reference(cfg: Config, bento: str) -> Path:
    """``reference/`` inside a bento; ``live`` names the bento live in deploy/production.yaml."""
    from {{ cookiecutter.package_name }} import packaging  # noqa: PLC0415  (packaging imports this module; bentoml is slow to load)

    if bento == "live":
        desired = state.load(resolve(cfg.deploy.desired_dir) / "production.yaml")
        release = desired.release(desired.live)
        if release is None:
            raise DataError("deploy/production.yaml has no live release yet; promote a bento first")
        bento = release.bento
    return packaging.bento_reference(bento)


def load_reference(cfg: Config) -> Reference:
    """The configured reference file, the one a bento carries, or the registry model's own."""
    if cfg.monitoring.reference_profile:
        path = resolve(cfg.monitoring.reference_profile)
    elif cfg.monitoring.reference_bento:
        path = bento_reference(cfg, cfg.monitoring.reference_bento) / REFERENCE_PROFILE
    else:
        path = (
            fetch_reference(cfg, cfg.monitoring.model_alias, resolve(cfg.monitoring.report_dir))
            / REFERENCE_PROFILE
        )
    if not path.is_file():
        raise ProfileError(
            f"{path}: reference profile not found; set monitoring.reference_profile or retrain"
        )
    meta_path = path.with_name(REFERENCE_META)
    meta: dict[str, Any] = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    model_path = path.with_name("model.json")
    if model_path.is_file():
        meta["model"] = json.loads(model_path.read_text())
    meta.setdefault("target", cfg.data.target)
    meta.setdefault("task", cfg.task)
    return Reference(profiling.read(path), str(path), meta)


# ---------------------------------------------------------------- the production window


def window_bounds(cfg: MonitoringConfig, now: datetime | None = None) -> tuple[datetime, datetime]:
    """``[end - window_hours, end]`` with ``end`` from the config or the current time (UTC)."""
    if cfg.window_end:
        try:
            end = datetime.fromisoformat(cfg.window_end)
        except ValueError:
            raise DataError(
                f"monitoring.window_end={cfg.window_end!r} is not an ISO time like 2026-01-31T12:00"
            ) from None
        end = end if end.tzinfo else end.replace(tzinfo=UTC)
    else:
        end = now or datetime.now(UTC)
    return end - timedelta(hours=cfg.window_hours), end


def window_files(
    location: str | Path, start: datetime, end: datetime, suffixes: set[str], scratch: Path
) -> list[Path]:
    """Local paths of the files in ``location`` whose window time lies in ``[start, end]``, oldest first.

    The window time is the stamp in the name, else the modification time. From an object store,
    only the files of the window are downloaded (into ``scratch``).
    """
    found = store.listing(location, suffixes)
    timed = sorted((profiling.stamp_time(name) or modified, name) for name, modified in found.items())
    return store.fetch(location, {name: found[name] for when, name in timed if start <= when <= end}, scratch)


def load_window(paths: list[Path]) -> tuple[DatasetProfileView, list[dict[str, Any]]]:
    """Merge the window's profiles; also the prediction mix per window start, for the timeline."""
    by_time: dict[datetime, DatasetProfileView] = {}
    for path in paths:
        view, when = profiling.read(path), profiling.window_time(path)
        by_time[when] = by_time[when].merge(view) if when in by_time else view
    merged = profiling.merge(by_time.values())
    if merged is None:
        raise ProfileError("no profiles in the window; widen monitoring.window_hours or check the service")
    return merged, [prediction_point(when, view) for when, view in sorted(by_time.items())]


def prediction_point(when: datetime, view: DatasetProfileView) -> dict[str, Any]:
    """One window's row count and prediction distribution: class shares, or quantiles."""
    point: dict[str, Any] = {"time": when.isoformat(), "rows": profiling.row_count(view)}
    column = view.get_column(PREDICTION)
    if column is None:
        return point
    values = quantiles(column, [0.1, 0.5, 0.9])
    if values is None:
        point["shares"] = drift.frequencies(column)
    else:
        point["quantiles"] = dict(zip(("p10", "p50", "p90"), values, strict=True))
    return point


# ---------------------------------------------------------------- column checks


def quantiles(column: ColumnProfileView, points: list[float]) -> list[float] | None:
    """Values at the given quantiles, from the column's KLL sketch; None when it holds no numbers."""
    metric = column.get_metric("distribution")
    if metric is None or metric.kll.value.is_empty():
        return None
    return [float(value) for value in metric.kll.value.get_quantiles(points)]


def histogram(column: ColumnProfileView, edges: np.ndarray) -> np.ndarray:
    """Share of the column's values in each bin between consecutive edges, from its KLL sketch."""
    return np.asarray(column.get_metric("distribution").kll.value.get_pmf(list(edges[1:-1])))


def missing_share(column: ColumnProfileView) -> float:
    """Share of rows with no value (None or NaN)."""
    counts = column.get_metric("counts")
    total = counts.n.value if counts else 0
    return float(counts.null.value / total) if total else 0.0


def value_type(column: ColumnProfileView) -> str:
    """The column's dominant family of values: numeric, string, boolean or object."""
    metric = column.get_metric("types")
    if metric is None:
        return "unknown"
    seen = metric.to_summary_dict()
    families = {
        "numeric": seen.get("integral", 0) + seen.get("fractional", 0),
        "string": seen.get("string", 0),
        "boolean": seen.get("boolean", 0),
        "object": seen.get("object", 0) + seen.get("tensor", 0),
    }
    best = max(families, key=lambda name: families[name])
    return best if families[best] else "empty"


def new_categories(reference: ColumnProfileView, current: ColumnProfileView) -> dict[str, float]:
    """Categories the current window has and the reference never saw, with their row share."""
    known = set(drift.frequencies(reference))
    counts = current.get_metric("counts")
    total = counts.n.value if counts else 0
    metric = current.get_metric("frequent_items")
    if not total or metric is None:
        return {}
    items = metric.to_summary_dict().get("frequent_strings", [])
    return {item.value: item.est / total for item in items if item.value not in known}


def check_column(
    cfg: MonitoringConfig,
    found: drift.ColumnDrift,
    reference: DatasetProfileView,
    current: DatasetProfileView,
    role: str,
) -> ColumnReport:
    """Combine the distance with missing-value, type and category checks into one column report."""
    ref, cur = reference.get_column(found.column), current.get_column(found.column)
    missing_ref, missing_cur = missing_share(ref), missing_share(cur)
    type_ref, type_cur = value_type(ref), value_type(cur)
    unseen = new_categories(ref, cur) if found.kind == "categorical" and type_ref == "string" else {}
    alerts = []
    if found.drifted:
        alerts.append(
            f"{found.column}: {role} drift {found.statistic:.3f} > {found.threshold:.3f} ({found.kind})"
        )
    if missing_cur - missing_ref > cfg.max_missing_increase:
        alerts.append(f"{found.column}: missing values {missing_ref:.1%} -> {missing_cur:.1%}")
    if type_cur not in {type_ref, "empty"}:
        alerts.append(f"{found.column}: values changed type {type_ref} -> {type_cur}")
    notable = {name: share for name, share in unseen.items() if share > cfg.min_category_share}
    if notable:
        alerts.append(f"{found.column}: new categories {sorted(notable)}")
    return ColumnReport(
        found.column,
        role,
        found.kind,
        round(found.statistic, 4),
        found.threshold,
        found.drifted,
        round(missing_ref, 4),
        round(missing_cur, 4),
        type_ref,
        type_cur,
        unseen,
        alerts,
    )


def compare_columns(
    cfg: MonitoringConfig, reference: DatasetProfileView, current: DatasetProfileView, roles: dict[str, str]
) -> list[ColumnReport]:
    """A report for every named column present on both sides, with its role (feature, prediction...)."""
    outcomes = {name: cfg.outcome_threshold for name, role in roles.items() if role != "feature"}
    found = drift.compare(
        reference, current, list(roles), cfg.drift_threshold, outcomes | cfg.column_thresholds
    )
    return [check_column(cfg, item, reference, current, roles[item.column]) for item in found]


# ---------------------------------------------------------------- late labels


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
    if logs.empty:
        return None
    joined = join_labels(cfg, logs, load_table(labels_path), cfg.data.target)
    return joined if len(joined) else None


# ---------------------------------------------------------------- the whole run


def monitor(cfg: Config, health: Health | None = None, now: datetime | None = None) -> Comparison:
    """Merge the window, compare it with the reference, and assess labels when they exist."""
    logging.getLogger("whylogs").setLevel(logging.WARNING)  # it logs every profile read at INFO
    with tempfile.TemporaryDirectory(prefix="monitor-window-") as scratch:  # object-store downloads
        return compare_window(cfg, health, now, Path(scratch))


def compare_window(cfg: Config, health: Health | None, now: datetime | None, scratch: Path) -> Comparison:
    """:func:`monitor` with a folder for the window's files when they come from an object store."""
    reference = load_reference(cfg)
    start, end = window_bounds(cfg.monitoring, now)
    paths = window_files(cfg.monitoring.profile_dir, start, end, {".bin"}, scratch)
    if not paths:
        raise ProfileError(
            f"{cfg.monitoring.profile_dir}: no profiles between {start:%Y-%m-%d %H:%M} and "
            f"{end:%Y-%m-%d %H:%M} UTC; widen monitoring.window_hours or run `nox -s simulate-drift`"
        )
    current, timeline = load_window(paths)
    roles = {name: "feature" for name in reference.features} | {PREDICTION: "prediction"}
    columns = compare_columns(cfg.monitoring, reference.view, current, roles)
    present = set(current.get_columns())
    result = MonitorResult(
        generated_at=datetime.now(UTC).isoformat(timespec="seconds"),
        window_start=start.isoformat(timespec="seconds"),
        window_end=end.isoformat(timespec="seconds"),
        files=len(paths),
        rows=profiling.row_count(current),
        reference={"source": reference.source, "rows": profiling.row_count(reference.view)}
        | _model_info(reference),
        columns=columns,
        missing_columns=[name for name in reference.features if name not in present],
        timeline=timeline,
        health=health,
    )
    joined = labelled_window(cfg, start, end, scratch)
    if joined is None:
        return Comparison(result, reference, current)
    labels_view = profiling.profile(joined[[str(reference.meta["target"])]])
    result.performance, label_columns = assess_labels(cfg, reference, joined, labels_view)
    result.columns = [*result.columns, *label_columns]
    return Comparison(result, reference, current, labels_view)


def _model_info(reference: Reference) -> dict[str, Any]:
    """Model name and version when the reference came from the registry."""
    model = reference.meta.get("model", {})
    return {"model": model.get("name"), "version": model.get("version")} if model else {}
