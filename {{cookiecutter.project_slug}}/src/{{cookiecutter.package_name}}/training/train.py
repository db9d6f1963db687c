"""Train, evaluate and log one model; register it as ``candidate`` if it clears the bar."""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from hydra.utils import instantiate
from mlflow import ActiveRun, MlflowClient
from mlflow.models import infer_signature
from omegaconf import OmegaConf
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.pipeline import Pipeline

from .. import evaluation, reference, registry, validation
from ..config import PROJECT_ROOT, Config, resolve
from ..data import DataError, Split, digest, load_dataset, refuse_rare_classes, split
from ..reports import jsonfile
from . import folds, threads, trial
from .preprocessing import FeatureSpec, build_preprocessor, categorical_mask, infer_features

SCORERS = {
    "f1_macro": "f1_macro",
    "accuracy": "accuracy",
    "roc_auc": "roc_auc",
    "rmse": "neg_root_mean_squared_error",
    "mae": "neg_mean_absolute_error",
    "r2": "r2",
}


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced, as written to ``reports/training/train.json``."""

    run_id: str
    model_name: str
    model_version: str | None
    registered_as_candidate: bool
    metrics: dict[str, float]
    cv_mean: float
    data_digest: str
    data_path: str
    git_commit: str
    estimator: str
    standing: str = ""  # why the candidate alias moved to this model, or why not
    below_bar: bool = False  # under training.min_primary_metric: a failed training, not a choice
    breakdown: dict[str, Any] = field(default_factory=dict)  # per class and confusion, or residuals
    rows: int = 0
    dropped_missing_target: int = 0


def build_pipeline(cfg: Config, spec: FeatureSpec) -> Pipeline:
    """Preprocessing plus the configured ``_target_`` estimator in one Pipeline."""
    estimator = instantiate(OmegaConf.create(cfg.model.estimator))
    if cfg.model.categorical_encoding == "ordinal" and "categorical_features" in estimator.get_params():
        estimator.set_params(categorical_features=categorical_mask(spec))
    return Pipeline([("preprocess", build_preprocessor(spec, cfg.model)), ("model", estimator)])


def cross_validate(cfg: Config, model: Pipeline, data: Split) -> float:
    """Mean CV score of the primary metric on the training split (sign as the metric reads).

    Each fold prints a line as it finishes, with the time so far and an estimate of what is left.
    """
    metric = cfg.training.primary_metric
    scoring, negated = SCORERS[metric], SCORERS[metric].startswith("neg_")
    splitter = StratifiedKFold if cfg.task == evaluation.CLASSIFICATION else KFold
    cv = splitter(n_splits=cfg.training.cv_folds, shuffle=True, random_state=cfg.training.seed)
    scores = folds.cross_val_scores(
        model,
        data.x_train,
        data.y_train,
        cv,
        scoring,
        report=lambda fold: progress(folds.fold_line(fold, metric, negated)),
    )
    mean = float(np.mean(scores))
    return -mean if negated else mean


def git_commit() -> str:
    """The commit the code was trained from ('unknown' outside a git checkout)."""
    result = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=False
    )
    return result.stdout.strip() or "unknown"


def config_digest(cfg: Config) -> str:
    """SHA-256 of everything that decides the fitted model apart from the data itself.

    Same data digest and same config digest mean the same model (the seed is in the config), so
    a release that changes neither has nothing new to promote. Output folders and the thread
    count (how fast, not what, a fit computes) do not count.
    """
    decisive = {
        "task": cfg.task,
        "model": asdict(cfg.model),
        "training": {k: v for k, v in asdict(cfg.training).items() if k != "threads"} | {"report_dir": None},
        "data": asdict(cfg.data) | {"path": None},
    }
    return hashlib.sha256(json.dumps(decisive, sort_keys=True, default=str).encode()).hexdigest()


def hold_data_gate(cfg: Config, frame: pd.DataFrame) -> str:
    """Refuse, before any MLflow run exists, a table that ``validate-data`` refuses.

    The workflows run validate-data first, but a run by hand (or a sweep) must not train on data
    that breaks the contract and take the ``candidate`` alias from a model that was checked.
    ``training.override_data_gate`` lets values outside the contract through (ranges, categories,
    nulls, drift), never a table of another shape; the run then carries what was overridden.
    Returns the gate's word for the run's ``data_gate`` tag.
    """
    contract = validation.Contract.load(cfg.validation.contract_path)
    report = validation.validate_frame(frame, contract, cfg.validation, cfg.data)
    if report.passed:
        return "passed"
    shape = [v for v in report.violations if v.rule in STRUCTURAL]
    if cfg.training.override_data_gate and not shape:
        first = report.violations[0]
        overridden = f"overridden: {len(report.violations)} violations, first {first.column}: {first.rule}"
        progress(f"data gate {overridden} (training.override_data_gate=true)")
        return overridden
    first = (shape or report.violations)[0]
    raise DataError(
        f"{cfg.data.path} fails the data gate ({len(report.violations)} violations; first: {first.column}: "
        f"{first.rule}: {first.detail}){renamed(report.violations)}; nothing was trained: `nox -s "
        "validate-data` writes the report, and a new table needs its own (`nox -s adopt-data -- "
        "data.path=<file> data.target=<column>`)"
    )


def renamed(violations: list[validation.Violation]) -> str:
    """Columns the contract names that are gone, beside columns it does not know: a rename, likely.

    A table whose columns were renamed after ``validate-data`` passed fails the gate with both
    kinds of violation; naming the pairs is what tells the user what happened.
    """
    gone = [v.column for v in violations if v.rule == "present"]
    new = [v.column for v in violations if v.rule == "unexpected"]
    if not (gone and new):
        return ""
    return (
        f"; columns changed since the contract: {', '.join(gone)} gone, {', '.join(new)} new (renamed? "
        "give them their contract names back, or adopt the table again)"
    )


def refuse_unknown_segments(cfg: Config, spec: FeatureSpec) -> None:
    """``data.segments`` must name feature columns: the metrics are split by what the model sees."""
    unknown = [column for column in cfg.data.segments if column not in spec.columns]
    if unknown:
        raise DataError(
            f"data.segments names {unknown}, which are not feature columns of {cfg.data.path} "
            f"(features: {', '.join(spec.columns)}); fix data.segments in conf/data/, nothing was trained"
        )


# Violations no override lets through: the table is not the one the contract describes.
STRUCTURAL = {"present", "unexpected", "contract", "target", "readable", "min_rows"}


def clears_bar(cfg: Config, value: float) -> bool:
    """The absolute floor a model must reach to become a candidate at all."""
    floor = cfg.training.min_primary_metric
    return value >= floor if cfg.training.greater_is_better else value <= floor


def refuse_rare_classes_for_folds(cfg: Config, frame: pd.DataFrame) -> None:
    """Every class once in the test split and in each CV fold of the rest: refused with names if not."""
    if cfg.task != evaluation.CLASSIFICATION:
        return
    folds, test_share = cfg.training.cv_folds, cfg.data.test_size
    needed = max(2, math.ceil(1 / test_share), math.ceil(folds / (1 - test_share)))
    why = f"one in the {test_share:.0%} test split and one per fold of training.cv_folds={folds}"
    refuse_rare_classes(frame[cfg.data.target], needed, why)


@dataclass(frozen=True)
class Standing:
    """Whether a new model takes the ``candidate`` alias, and why in one line."""

    register: bool
    reason: str
    below_bar: bool = False


def standing(cfg: Config, client: MlflowClient, value: float, data_digest: str) -> Standing:
    """Whether the new model takes the ``candidate`` alias, and why (or why not), in one line.

    It must clear ``training.min_primary_metric``; and, with ``training.keep_better_candidate``,
    be at least as good as the current candidate where the two scores mean the same thing: the
    same data digest and split settings, so the same held-out rows.
    """
    if (parent := trial.parent_run_id()) is not None:  # the sweep gates its best trial at its end
        return Standing(False, trial.trial_reason(parent))
    metric, better = cfg.training.primary_metric, cfg.training.greater_is_better
    if not clears_bar(cfg, value):
        floor = cfg.training.min_primary_metric
        return Standing(False, f"below training.min_primary_metric={floor}: not registered", below_bar=True)
    current = registry.version_by_alias(client, cfg.mlflow.model_name, registry.CANDIDATE)
    if current is None or not cfg.training.keep_better_candidate:
        return Standing(True, "registered as 'candidate'")
    run = client.get_run(str(current.run_id))
    theirs = run.data.metrics.get(f"test_{metric}")
    split_of = {key: run.data.params.get(f"data.{key}") for key in ("test_size", "split_seed")}
    same_rows = run.data.tags.get("data_digest") == data_digest and split_of == {
        "test_size": str(cfg.data.test_size),
        "split_seed": str(cfg.data.split_seed),
    }
    if theirs is None or not same_rows:
        return Standing(
            True,
            f"registered as 'candidate': v{current.version} was scored on other rows (data or split), "
            "so there is no like-for-like score to keep it",
        )
    if (value >= theirs) if better else (value <= theirs):
        return Standing(
            True, f"registered as 'candidate': {metric} {value:.4f} vs v{current.version}'s {theirs:.4f}"
        )
    return Standing(
        False,
        f"{metric} {value:.4f} is worse than the candidate v{current.version}'s {theirs:.4f} on the same "
        "split: not registered, the alias stays (training.keep_better_candidate=false replaces it anyway)",
    )


@contextmanager
def whole_run(client: MlflowClient, name: str) -> Iterator[ActiveRun]:
    """An MLflow run that is deleted when the work inside it fails.

    A run that died halfway (a fit that raised, an interrupted upload) has no model or only
    some of its metrics; left in the experiment it reads like a result. Deleted runs stay
    recoverable (``mlflow gc`` purges them) but out of every search.
    """
    run = mlflow.start_run(run_name=name, tags=trial.trial_tags())  # a sweep's trial: under its parent
    try:
        yield run
    except BaseException:
        mlflow.end_run("FAILED")
        client.delete_run(run.info.run_id)
        raise
    mlflow.end_run()


def progress(message: str) -> None:
    """One line per step of work that can take a while, as it starts (CI logs show it live)."""
    print(f"  {message}", flush=True)


def train(cfg: Config) -> TrainResult:
    """Hold the data gate, fit on the training split, score on the held-out split, log, register.

    Native thread pools are held to ``training.threads`` throughout (see :mod:`.threads`).
    """
    with threads.limited(cfg.training.threads) as count:
        return _train(cfg, count)


def _train(cfg: Config, thread_count: int) -> TrainResult:
    """:func:`train` inside its thread limit."""
    frame = load_dataset(cfg.data)
    gate = hold_data_gate(cfg, frame)  # on the frame training uses: the table is read once
    refuse_rare_classes_for_folds(cfg, frame)
    data = split(frame, cfg.data, stratify=cfg.task == evaluation.CLASSIFICATION)
    spec = infer_features(data.x_train, cfg.data)
    refuse_unknown_segments(cfg, spec)
    model = build_pipeline(cfg, spec)
    client = registry.connect(cfg.mlflow)
    data_digest, commit = digest(frame), git_commit()
    with whole_run(client, cfg.model.name) as run:
        rows = f"{len(data.x_train):,} rows x {len(spec.columns)} features"
        on = f"{thread_count} thread{'s' * (thread_count != 1)}"
        progress(f"cross-validating {cfg.model.name} ({cfg.training.cv_folds} folds, {rows}, {on})")
        cv_mean = cross_validate(cfg, model, data)
        progress(f"fitting on the training split ({rows})")
        model.fit(data.x_train[spec.columns], data.y_train)
        scores = evaluation.score(cfg.task, model, data.x_test[spec.columns], data.y_test)
        stands = standing(cfg, client, scores[cfg.training.primary_metric], data_digest)
        progress(f"logging the run {run.info.run_id}")
        _log_run(cfg, frame, scores=scores, cv_mean=cv_mean, data_digest=data_digest, commit=commit)
        mlflow.set_tag("data_gate", gate)
        version = _log_model(cfg, model, data, spec, register=stands.register)
        trained = reference.Training(model, data.x_train[spec.columns], data.y_train, scores)
        reference.log_reference(cfg, trained)
    if version is not None:
        registry.set_alias(client, cfg.mlflow.model_name, registry.CANDIDATE, version)
    return TrainResult(
        run.info.run_id,
        cfg.mlflow.model_name,
        version,
        version is not None,
        scores,
        cv_mean,
        data_digest,
        cfg.data.path,
        commit,
        str(cfg.model.estimator.get("_target_", "")),
        standing=stands.reason,
        below_bar=stands.below_bar,
        breakdown=evaluation.breakdown(
            cfg.task, model, data.x_test[spec.columns], data.y_test, list(cfg.data.segments)
        ),
        rows=len(frame),
        dropped_missing_target=int(frame.attrs.get("dropped_missing_target", 0)),
    )


def _log_run(
    cfg: Config,
    frame: pd.DataFrame,
    *,
    scores: dict[str, float],
    cv_mean: float,
    data_digest: str,
    commit: str,
) -> None:
    """Params, metrics, plots, dataset input, resolved config, data snapshot, lineage tags."""
    config = OmegaConf.to_yaml(OmegaConf.structured(cfg))
    mlflow.log_params(
        _flatten({"model": cfg.model.estimator, "training": asdict(cfg.training), "data": asdict(cfg.data)})
    )
    mlflow.log_metrics(
        {f"test_{k}": v for k, v in scores.items()} | {f"cv_{cfg.training.primary_metric}": cv_mean}
    )
    mlflow.set_tags(
        {
            "data_digest": data_digest,
            "config_digest": config_digest(cfg),
            "data_path": cfg.data.path,
            "git_commit": commit,
            "task": cfg.task,
            "model": cfg.model.name,
        }
    )
    mlflow.log_text(config, "config/config.yaml")
    mlflow.set_tag("data_snapshot", _data_snapshot(cfg, data_digest))
    dataset = mlflow.data.from_pandas(  # type: ignore[attr-defined]
        frame,
        source=str(cfg.data.path),
        targets=cfg.data.target,
        name=Path(cfg.data.path).stem,
        digest=data_digest,
    )
    mlflow.log_input(dataset, context="training")


def _data_snapshot(cfg: Config, data_digest: str) -> str:
    """The table, stored once per content digest: a later run on the same data points at that copy.

    Copying a large table into every run's artifacts costs its size per run for no information;
    the digest already says the rows are the same.
    """
    active = mlflow.active_run()
    assert active is not None
    earlier = MlflowClient().search_runs(
        [active.info.experiment_id],
        filter_string=f"tags.data_digest = '{data_digest}' and tags.data_snapshot LIKE 'runs:/%'",
        max_results=1,
    )
    if earlier:
        return str(earlier[0].data.tags["data_snapshot"])
    mlflow.log_artifact(str(resolve(cfg.data.path)), artifact_path="data")
    return f"runs:/{active.info.run_id}/data/{Path(cfg.data.path).name}"


def _log_model(cfg: Config, model: Pipeline, data: Split, spec: FeatureSpec, *, register: bool) -> str | None:
    """Log the pipeline (skops, signature, example); register it when it stands as the candidate."""
    x_test = data.x_test[spec.columns]
    figure = evaluation.diagnostic_plot(cfg.task, model, x_test, data.y_test)
    try:
        mlflow.log_figure(figure, "plots/diagnostic.png")
    finally:
        evaluation.close(figure)  # pyplot keeps every figure until closed: a sweep would pile them up
    info = mlflow.sklearn.log_model(
        model,
        name="model",
        serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
        skops_trusted_types=registry.trusted_types_for(model),
        signature=infer_signature(x_test.head(50), model.predict(x_test.head(50))),
        # complete rows where there are some: MLflow writes a missing value as a bare NaN
        input_example=(x_test.dropna() if x_test.notna().all(axis=1).any() else x_test).head(3),
    )
    mlflow.set_tag("model_uri", info.model_uri)  # what a sweep registers when this run is its best
    if not register:
        return None
    registered = mlflow.register_model(
        info.model_uri, cfg.mlflow.model_name, tags={"primary_metric": cfg.training.primary_metric}
    )
    return str(registered.version)


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts to dotted MLflow param names."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat |= _flatten(value, f"{name}.")
        else:
            flat[name] = value
    return flat


def write_result(result: TrainResult, report_dir: str | Path) -> Path:
    """``train.json`` for CI and later stages."""
    return jsonfile.write_json(asdict(result), resolve(report_dir) / "train.json")
