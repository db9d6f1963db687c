"""The BentoML-native peer of ``bench-serve``: the same model behind ``batchable=True``.

What a BentoML user reaches for first: BentoML's own adaptive batching, which merges the
``rows`` lists of concurrent requests into one model call and splits the answers back. Same
model, schema and scoring as the service; no profiling, no metrics of ours. Configured by the
environment the bench sets: ``PEER_MODEL_DIR``, ``PEER_TASK``, ``PEER_ID_COLUMN`` (empty: none)
and ``PEER_MAX_LATENCY_MS`` (BentoML's batching window budget).
"""

from __future__ import annotations

import os
from typing import Any

import bentoml
import mlflow
from pydantic import BaseModel

from {{ cookiecutter.package_name }}.serving import schema, scoring

MODEL_DIR = os.environ["PEER_MODEL_DIR"]
ID_COLUMN = os.environ.get("PEER_ID_COLUMN") or None
COLUMNS = schema.read_columns(MODEL_DIR)
REQUEST = schema.request_model(schema.row_model(COLUMNS, ID_COLUMN), 10_000)


@bentoml.service(workers=1, logging={"access": {"enabled": False}}, tracing={"excluded_urls": [".*"]})
class BatchablePeer:
    """One worker whose ``/predict`` BentoML batches across requests."""

    def __init__(self) -> None:
        model = mlflow.sklearn.load_model(MODEL_DIR)
        self.scorer = scoring.Scorer(model, COLUMNS, os.environ["PEER_TASK"], ID_COLUMN, noop=False)

    @bentoml.api(  # type: ignore[untyped-decorator]
        route="/predict",
        input_spec=REQUEST,
        batchable=True,
        max_batch_size=512,
        max_latency_ms=int(os.environ.get("PEER_MAX_LATENCY_MS", "250")),
    )
    def predict(self, rows: list[BaseModel]) -> list[dict[str, Any]]:
        """Every row of the merged requests in one model call; BentoML slices the answers back."""
        frame = self.scorer.frame(rows)
        labels, probabilities = self.scorer.score(frame)
        return self.scorer.answers(frame, labels, probabilities)
