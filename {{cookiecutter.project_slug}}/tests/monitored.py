"""A quickly fitted model with its training reference, and replays of simulated traffic into it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from {{ cookiecutter.package_name }} import evaluation, reference
from {{ cookiecutter.package_name }}.config import Config, compose
from {{ cookiecutter.package_name }}.data import split
from {{ cookiecutter.package_name }}.monitoring import monitor, replay
from {{ cookiecutter.package_name }}.training.preprocessing import infer_features
from {{ cookiecutter.package_name }}.training.train import build_pipeline


@dataclass(frozen=True)
class Fitted:
    folder: Path
    model: Pipeline


def fit(folder: Path, sample: pd.DataFrame) -> Fitted:
    """A quick forest fitted on the sample and its reference, written as training writes it."""
    cfg = compose(["model=random_forest", "model.estimator.n_estimators=15"])
    data = split(sample, cfg.data, stratify=cfg.task == "classification")
    spec = infer_features(data.x_train, cfg.data)
    model = build_pipeline(cfg, spec).fit(data.x_train[spec.columns], data.y_train)
    scores = evaluation.score(cfg.task, model, data.x_test[spec.columns], data.y_test)
    trained = reference.Training(model, data.x_train[spec.columns], data.y_train, scores)
    reference.write_reference(cfg, trained, folder)
    return Fitted(folder, model)


def configure(folder: Path, reference_dir: Path, *overrides: str) -> Config:
    """A config whose profiles, labels and reports live in ``folder``, held against the fixture reference."""
    return compose(
        [
            f"monitoring.reference_profile={reference_dir / 'reference.bin'}",
            f"monitoring.profile_dir={folder / 'profiles'}",
            f"monitoring.prediction_log_dir={folder / 'profiles'}",
            f"monitoring.labels_path={folder / 'labels.csv'}",
            f"monitoring.report_dir={folder / 'reports'}",
            "monitoring.simulation.rows=2000",
            *overrides,
        ]
    )


def replayed(folder: Path, fitted: Fitted, shift: str) -> monitor.Comparison:
    """Replay one shift straight into profiles (the service's writer), then monitor the window."""
    cfg = configure(folder, fitted.folder, f"monitoring.simulation.shift={shift}")
    replay.replay(cfg, predict=lambda rows: np.asarray(fitted.model.predict(rows)))
    return monitor.monitor(cfg)
