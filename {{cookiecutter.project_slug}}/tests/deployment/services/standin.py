"""Shared body of the test services: load the pipeline, predict a batch of JSON rows."""

from __future__ import annotations

import os
from typing import Any

import joblib
import pandas as pd
from bentoml.exceptions import InvalidArgument


class Model:
    """The pipeline the tests trained and registered, saved with joblib for a fast start."""

    def __init__(self) -> None:
        self.pipeline = joblib.load(os.environ["STANDIN_MODEL"])

    def predict(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Predict; input the pipeline cannot take is the client's error (400), never a 500."""
        features = list(self.pipeline.feature_names_in_)
        frame = pd.DataFrame.from_records(rows)
        missing = [column for column in features if column not in frame.columns]
        if missing or frame.empty:
            raise InvalidArgument(f"rows must be non-empty and carry the columns {missing or features}")
        try:
            labels = self.pipeline.predict(frame[features]).tolist()
            probabilities = self.pipeline.predict_proba(frame[features]).tolist()
        except (ValueError, TypeError) as error:
            raise InvalidArgument(f"rows cannot be scored: {error}") from error
        names = [str(name) for name in self.pipeline.classes_]
        return [
            {"prediction": label, "probabilities": dict(zip(names, p, strict=True))}
            for label, p in zip(labels, probabilities, strict=True)
        ]
