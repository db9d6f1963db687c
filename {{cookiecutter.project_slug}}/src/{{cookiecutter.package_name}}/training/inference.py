"""Batch inference: score a table with the model behind a registry alias."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .. import registry
from ..config import Config, resolve
from ..data import DataError, load_table


def predict_file(cfg: Config, source: str, output: str, alias: str) -> Path:
    """Write ``source`` with a ``prediction`` column (and the id column first) to ``output``."""
    client = registry.connect(cfg.mlflow)
    if registry.version_by_alias(client, cfg.mlflow.model_name, alias) is None:
        raise DataError(f"no model has the alias {alias!r} yet; run `nox -s train` first")
    model = registry.load(cfg.mlflow.model_name, alias)
    frame = load_table(source)
    features = list(model.feature_names_in_)
    missing = [column for column in features if column not in frame.columns]
    if missing:
        raise DataError(f"{source}: missing feature columns {missing}")
    scored = (
        frame[[cfg.data.id_column]]
        if cfg.data.id_column in frame.columns
        else pd.DataFrame(index=frame.index)
    )
    scored = scored.assign(prediction=model.predict(frame[features]))
    target = resolve(output)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.suffix.lower() in {".parquet", ".pq"}:
        scored.to_parquet(target, index=False)
    else:
        scored.to_csv(target, index=False)
    return target
