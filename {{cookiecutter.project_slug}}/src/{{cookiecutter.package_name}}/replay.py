"""Drift simulator: replay synthetic customers, optionally shifted, as production traffic.

With ``monitoring.simulation.url`` the rows go to the running service over HTTP and the service
writes the profiles. Without it, the registry model scores them here and the profiles are
written with the service's own path (``profiling.profile`` + ``profiling.write`` under
``profiling.window_file`` names), one per window. Either way the replay also leaves what a
labelling process would: a prediction log by request id and a labels file with the true
outcomes, so ``nox -s monitor`` can measure realised performance.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, get_args

import numpy as np
import pandas as pd

from {{ cookiecutter.package_name }} import profiling, registry, simulation
from {{ cookiecutter.package_name }}.config import Config, resolve
from {{ cookiecutter.package_name }}.data import DataError, feature_columns
from {{ cookiecutter.package_name }}.monitoring import PREDICTION

Predictor = Callable[[pd.DataFrame], np.ndarray]


@dataclass(frozen=True)
class ReplaySummary:
    """What a replay sent and where it left profiles, prediction logs and labels."""

    shift: str
    rows: int
    windows: int
    via: str
    profiles: list[Path]
    prediction_logs: list[Path]
    labels: Path


def traffic(cfg: Config) -> pd.DataFrame:
    """The configured synthetic customers, with ids unique to this shift and seed."""
    sim = cfg.monitoring.simulation
    if sim.shift not in get_args(simulation.Shift):
        raise DataError(
            f"monitoring.simulation.shift={sim.shift!r}; choose one of {list(get_args(simulation.Shift))}"
        )
    if sim.rows < sim.windows or sim.windows < 1:
        raise DataError(
            f"monitoring.simulation: rows ({sim.rows}) must be at least windows ({sim.windows}) >= 1"
        )
    frame = simulation.make_customers(sim.rows, sim.seed, sim.shift)  # type: ignore[arg-type]
    if cfg.data.id_column in frame.columns:
        frame[cfg.data.id_column] = f"{sim.shift}-{sim.seed}-" + frame[cfg.data.id_column].astype(str)
    return frame


def window_starts(count: int, window_s: float, now: datetime) -> list[datetime]:
    """The starts of the last ``count`` windows, aligned to the window length, oldest first."""
    aligned = datetime.fromtimestamp(now.timestamp() // window_s * window_s, tz=UTC)
    return [aligned - timedelta(seconds=window_s * (count - 1 - k)) for k in range(count)]


def model_predictor(cfg: Config) -> Predictor:
    """The registry model behind ``monitoring.model_alias``, scoring in-process."""
    client = registry.connect(cfg.mlflow)
    alias = cfg.monitoring.model_alias
    if registry.version_by_alias(client, cfg.mlflow.model_name, alias) is None:
        raise DataError(
            f"no model has the alias {alias!r}; train and promote one, or set monitoring.model_alias"
        )
    model = registry.load(cfg.mlflow.model_name, alias)
    return lambda rows: np.asarray(model.predict(rows))  # type: ignore[attr-defined]


def http_predictor(url: str, endpoint: str, payload_key: str, batch_rows: int) -> Predictor:
    """The running service, called in batches of ``batch_rows`` rows per request."""
    address = url.rstrip("/") + endpoint

    def predict(rows: pd.DataFrame) -> np.ndarray:
        answers: list[Any] = []
        for start in range(0, len(rows), batch_rows):
            records = json.loads(rows.iloc[start : start + batch_rows].to_json(orient="records"))
            answers.extend(post(address, {payload_key: records}, len(records)))
        return np.asarray(answers)

    return predict


def post(address: str, body: dict[str, Any], expected: int) -> list[Any]:
    """One JSON request; the answer is a list of predictions (bare, or under ``predictions``)."""
    request = urllib.request.Request(  # noqa: S310 (loopback or configured service URL)
        address, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            answer = json.loads(response.read())
    except urllib.error.HTTPError as error:
        raise DataError(f"{address}: HTTP {error.code}: {error.read()[:200]!r}") from None
    except (urllib.error.URLError, OSError) as error:
        raise DataError(
            f"{address}: service not reachable ({error}); start it or drop simulation.url"
        ) from None
    predictions = answer.get("predictions", answer.get(PREDICTION)) if isinstance(answer, dict) else answer
    if not isinstance(predictions, list) or len(predictions) != expected:
        raise DataError(f"{address}: expected a list of {expected} predictions, got {str(answer)[:200]}")
    return predictions


def append_labels(path: Path, labels: pd.DataFrame, key: str) -> Path:
    """Add labels to the labels file (later labels for an id replace earlier ones)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_file():
        labels = pd.concat([pd.read_csv(path), labels], ignore_index=True).drop_duplicates(
            subset=[key], keep="last"
        )
    labels.to_csv(path, index=False)
    return path


def replay(cfg: Config, now: datetime | None = None) -> ReplaySummary:
    """Send the configured traffic window by window; leave profiles, prediction logs and labels."""
    sim, mon = cfg.monitoring.simulation, cfg.monitoring
    frame, key = traffic(cfg), str(cfg.data.id_column)
    features = feature_columns(frame, cfg.data)
    predict = (
        http_predictor(sim.url, sim.endpoint, sim.payload_key, sim.batch_rows)
        if sim.url
        else model_predictor(cfg)
    )
    worker = f"replay-{sim.shift}-{sim.seed}"
    starts = window_starts(sim.windows, cfg.serving.profile_window_s, now or datetime.now(UTC))
    profiles, logs = [], []
    for started, rows in zip(starts, np.array_split(np.arange(len(frame)), sim.windows), strict=True):
        batch = frame.iloc[rows]
        predictions = predict(batch[features])
        if not sim.url:
            scored = batch[features].assign(**{PREDICTION: predictions})
            profiles.append(
                profiling.write(
                    profiling.profile(scored),
                    profiling.window_file(resolve(mon.profile_dir), started, worker),
                )
            )
        log = profiling.window_file(resolve(mon.prediction_log_dir), started, worker).with_suffix(".csv")
        log.parent.mkdir(parents=True, exist_ok=True)
        batch[[key]].assign(**{PREDICTION: predictions}).to_csv(log, index=False)
        logs.append(log)
    labels = append_labels(resolve(mon.labels_path), frame[[key, cfg.data.target]], key)
    return ReplaySummary(
        sim.shift, len(frame), sim.windows, sim.url or "in-process model", profiles, logs, labels
    )
