"""Shared body of the test services: load the pipeline, predict a batch of JSON rows, name themselves."""

from __future__ import annotations

import json
import os
from typing import Any

import joblib
import pandas as pd
from bentoml.exceptions import InvalidArgument
from starlette.types import ASGIApp, Receive, Scope, Send


class Instance:
    """``GET /metadata`` answering ``{"instance": $SERVING_INSTANCE}``, as the project's service does.

    The deploy tooling names each color it starts and waits for that name: a test service must
    answer it like the real one, or it would never be ready.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.body = json.dumps({"instance": os.environ.get("SERVING_INSTANCE", "")}).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/metadata" and scope["method"] == "GET":
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(self.body)).encode()),
            ]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": self.body})
            return
        await self.app(scope, receive, send)


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
