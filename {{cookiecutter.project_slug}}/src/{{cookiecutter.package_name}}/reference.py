"""The training reference: what production traffic is held against.

Training profiles its own split with the model's predictions and the true target
(``reference.bin``), records what it knew (``reference.json``: task, target, metrics,
features) and logs both as ``reference/`` in the model's MLflow run. Packaging copies that
folder into the BentoML model, so every bento and image carries it; monitoring reads it back
from a file, a bento or the registry.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from sklearn.base import BaseEstimator

from . import profiling, registry
from .config import Config, resolve
from .data import DataError
from .profiling import DatasetProfileView, ProfileError
from .reports import jsonfile

PREDICTION = "prediction"
REFERENCE_DIR = "reference"
REFERENCE_PROFILE = "reference.bin"
REFERENCE_META = "reference.json"


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
    jsonfile.write_json(meta, Path(folder) / REFERENCE_META)  # strict JSON: an undefined metric is null
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


def read(path: Path, cfg: Config) -> Reference:
    """A reference profile file with the ``reference.json`` and ``model.json`` beside it."""
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
