"""Rows in, answers out: the one model call every server variant shares.

The service, the benchmark's plain FastAPI server and the no-op ceiling all score through
this class, so a benchmark compares serving stacks, not different prediction code. For a
classifier the label is the argmax of ``predict_proba`` (what scikit-learn's ``predict`` does),
so one model call yields both the label and the probabilities.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel
from sklearn.base import BaseEstimator

from . import schema


class Scorer:
    """Rows in, answers out: the model call plus the shapes the API and profiles need."""

    def __init__(
        self, model: BaseEstimator, columns: list[schema.Column], task: str, id_column: str | None, noop: bool
    ) -> None:
        self.model = model
        self.columns = columns
        self.id_column = id_column
        self.classes: list[Any] | None = list(model.classes_) if task == "classification" else None
        self.noop = noop

    def frame(self, rows: list[BaseModel]) -> pd.DataFrame:
        """The pipeline's input frame for validated rows (id column included when sent)."""
        return schema.to_frame(rows, self.columns, self.id_column)

    def score(self, frame: pd.DataFrame) -> tuple[list[Any], np.ndarray[Any, Any] | None]:
        """Labels (or values) and, for classifiers, the class probabilities."""
        features = frame[[column.name for column in self.columns]]
        if self.classes is None:
            values = np.zeros(len(frame)) if self.noop else self.model.predict(features)
            return values.tolist(), None
        if self.noop:
            probabilities = np.full((len(frame), len(self.classes)), 1.0 / len(self.classes))
        else:
            probabilities = self.model.predict_proba(features)
        labels = np.asarray(self.classes, dtype=object)[probabilities.argmax(axis=1)]
        return labels.tolist(), probabilities

    def answers(
        self, frame: pd.DataFrame, labels: list[Any], probabilities: np.ndarray[Any, Any] | None
    ) -> list[dict[str, Any]]:
        """One JSON-ready dict per row, in order."""
        ids = frame[self.id_column].tolist() if self.id_column in frame else [None] * len(frame)
        if probabilities is None or self.classes is None:
            return [{"id": i, "prediction": label} for i, label in zip(ids, labels, strict=True)]
        names = [str(c) for c in self.classes]
        return [
            {"id": i, "prediction": label, "probabilities": dict(zip(names, p, strict=True))}
            for i, label, p in zip(ids, labels, probabilities.tolist(), strict=True)
        ]
