"""Rows in, answers out: the one model call every server variant shares.

The service, the benchmark's plain FastAPI server and the no-op ceiling all score through
this class, so a benchmark compares serving stacks, not different prediction code. For a
classifier the label is the argmax of ``predict_proba`` (what scikit-learn's ``predict`` does),
so one model call yields both the label and the probabilities. That call is the pipeline's
arithmetic called directly (:mod:`serving.direct`) once it answered the probe rows exactly as
the pipeline does; otherwise the pipeline's own ``predict_proba`` / ``predict``.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel
from sklearn.base import BaseEstimator

from . import schema
from .direct import Predict, direct_call

log = logging.getLogger(__name__)


class Scorer:
    """Rows in, answers out: the model call plus the shapes the API and profiles need."""

    def __init__(
        self,
        model: BaseEstimator,
        columns: list[schema.Column],
        task: str,
        id_column: str | None,
        noop: bool,
        *,
        examples: pd.DataFrame | None = None,
    ) -> None:
        self.model = model
        self.columns = columns
        self.id_column = id_column
        self.classes: list[Any] | None = list(model.classes_) if task == "classification" else None
        self.noop = noop
        method = "predict" if self.classes is None else "predict_proba"
        self.predict: Predict = getattr(model, method)
        direct = None if noop else verified(direct_call(model, method), self.predict, self.probe(examples))
        self.direct = direct is not None
        self.predict = direct or self.predict

    def probe(self, examples: pd.DataFrame | None) -> pd.DataFrame:
        """Rows to check the direct call on load: the model's input example, a null row, a zero row.

        The service accepts null for every feature (the pipeline imputes it) and text it has not
        seen, so these are rows a client could send; the tests compare the two calls on tables
        that are not the sample, row by generated row.
        """
        kinds = {column.name: column.kind for column in self.columns}
        numeric = [name for name, kind in kinds.items() if kind in schema.NUMERIC_TYPES]
        made = pd.DataFrame(
            [dict.fromkeys(kinds), {name: 0 if name in numeric else "" for name in kinds}],
            columns=list(kinds),
        )
        given = [] if examples is None else [examples.reindex(columns=list(kinds))]
        return pd.concat([*given, made], ignore_index=True).astype(dict.fromkeys(numeric, "float64"))

    def frame(self, rows: list[BaseModel]) -> pd.DataFrame:
        """The pipeline's input frame for validated rows (id column included when sent)."""
        return schema.to_frame(rows, self.columns, self.id_column)

    def score(self, frame: pd.DataFrame) -> tuple[list[Any], np.ndarray[Any, Any] | None]:
        """Labels (or values) and, for classifiers, the class probabilities."""
        features = frame[[column.name for column in self.columns]]
        if self.classes is None:
            values = np.zeros(len(frame)) if self.noop else self.predict(features)
            return values.tolist(), None
        if self.noop:
            probabilities = np.full((len(frame), len(self.classes)), 1.0 / len(self.classes))
        else:
            probabilities = self.predict(features)
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


def verified(fast: Predict | None, plain: Predict, probe: pd.DataFrame) -> Predict | None:
    """``fast`` if it answers ``probe`` exactly as ``plain`` does, else ``None`` (and a log line)."""
    if fast is None:
        return None
    try:
        same = np.array_equal(fast(probe), plain(probe))
    except Exception as error:  # a future scikit-learn may move what the loop relies on
        log.warning("the direct model call failed on load (%s); using the pipeline's own", error)
        return None
    if not same:
        log.warning("the direct model call differs from the pipeline's; using the pipeline's own")
        return None
    return fast
