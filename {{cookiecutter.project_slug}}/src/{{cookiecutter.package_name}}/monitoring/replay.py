"""Drift simulator: replay synthetic customers, optionally shifted, as production traffic.

With ``monitoring.simulation.url`` the rows (with their ids) go to the running service over
HTTP, and the service profiles them and logs id -> prediction itself. Without a URL, a model
scores them here and they go through the service's own writer (:class:`traffic.TrafficProfiler`),
one flush per window; the files are then renamed to the window they stand for, so a replay of
minutes of traffic in a second still shows as a timeline. The in-process model logs what the
service logs: its registry version, and for a classifier every class's probability with the
label their argmax gives (as ``serving/scoring.py`` does), so the page shows calibration, ROC AUC
and the model that served. Either way the replay also writes
what a labelling process would: the true outcomes by id in ``monitoring.labels_path``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, get_args

import httpx
import numpy as np
import pandas as pd

from .. import registry, simulation
from ..config import Config, resolve
from ..data import DataError, feature_columns
from ..evaluation import CLASSIFICATION
from ..reference import PREDICTION
from ..serving.traffic import TrafficProfiler

JSON = {"Content-Type": "application/json"}

Predictor = Callable[[pd.DataFrame], np.ndarray]
Scores = tuple[list[Any], np.ndarray | None]
"""Labels (or values) and, for a classifier, one row of class probabilities per row."""
STAMP = "%Y%m%dT%H%M%S"  # the service's file-name stamp (traffic.py), 15 characters


@dataclass(frozen=True)
class ReplaySummary:
    """What a replay sent and where it left profiles and labels."""

    shift: str
    rows: int
    windows: int
    via: str
    profiles: list[str]  # paths or URIs
    labels: Path


def traffic(cfg: Config) -> pd.DataFrame:
    """The configured synthetic customers, with ids unique to this shift and seed."""
    sim = cfg.monitoring.simulation
    shifts = list(get_args(simulation.Shift))
    if sim.shift not in shifts:
        raise DataError(f"monitoring.simulation.shift={sim.shift!r}; choose one of {shifts}")
    if sim.rows < sim.windows or sim.windows < 1:
        raise DataError(f"monitoring.simulation: rows ({sim.rows}) must be >= windows ({sim.windows}) >= 1")
    frame = simulation.make_customers(sim.rows, sim.seed, sim.shift)  # type: ignore[arg-type]
    if cfg.data.id_column in frame.columns:
        frame[cfg.data.id_column] = f"{sim.shift}-{sim.seed}-" + frame[cfg.data.id_column].astype(str)
    return frame


def window_starts(count: int, window_s: float, now: datetime) -> list[datetime]:
    """The starts of the last ``count`` windows, aligned to the window length, oldest first."""
    aligned = datetime.fromtimestamp(now.timestamp() // window_s * window_s, tz=UTC)
    return [aligned - timedelta(seconds=window_s * (count - 1 - k)) for k in range(count)]


@dataclass(frozen=True)
class InProcess:
    """A model scoring here, described as the service describes the one it serves."""

    score: Callable[[pd.DataFrame], Scores]
    version: str = ""  # the registry's model version; "" where unknown
    classes: list[Any] = field(default_factory=list)  # a classifier's, in probability order


def labels_only(predict: Predictor) -> InProcess:
    """A bare predictor (labels or values only): no probabilities, no recorded version."""
    return InProcess(lambda rows: (np.asarray(predict(rows)).tolist(), None))


def scored_by(model: Any, task: str, version: str) -> InProcess:  # noqa: ANN401 - any fitted estimator
    """``model`` scoring as the service does: a classifier's label is its probabilities' argmax."""
    if task != CLASSIFICATION:
        return InProcess(lambda rows: (np.asarray(model.predict(rows)).tolist(), None), version)
    classes = list(model.classes_)

    def score(rows: pd.DataFrame) -> Scores:
        probabilities = np.asarray(model.predict_proba(rows))
        return np.asarray(classes, dtype=object)[probabilities.argmax(axis=1)].tolist(), probabilities

    return InProcess(score, version, classes)


def model_predictor(cfg: Config) -> InProcess:
    """The registry model behind ``monitoring.model_alias``, scoring in-process, with its version."""
    client = registry.connect(cfg.mlflow)
    alias = cfg.monitoring.model_alias
    found = registry.version_by_alias(client, cfg.mlflow.model_name, alias)
    if found is None:
        raise DataError(
            f"no model has the alias {alias!r}; train and promote one, or set monitoring.model_alias"
        )
    model = registry.load(cfg.mlflow.model_name, alias)
    return scored_by(model, cfg.task, str(found.version))


def post(session: httpx.Client, address: str, body: dict[str, Any], expected: int) -> list[Any]:
    """One JSON request; the answer holds one prediction per row (``{"predictions": [...]}``)."""
    try:
        response = session.post(address, content=json.dumps(body).encode(), headers=JSON)
    except (httpx.HTTPError, httpx.InvalidURL) as error:
        raise DataError(
            f"{address}: service not reachable ({error}); start it or drop simulation.url"
        ) from None
    if response.is_error:
        raise DataError(f"{address}: HTTP {response.status_code}: {response.content[:300]!r}")
    answer = json.loads(response.content)
    predictions = answer.get("predictions") if isinstance(answer, dict) else answer
    if not isinstance(predictions, list) or len(predictions) != expected:
        raise DataError(f"{address}: expected {expected} predictions, got {str(answer)[:200]}")
    return [item.get(PREDICTION) if isinstance(item, dict) else item for item in predictions]


def send(cfg: Config, frame: pd.DataFrame) -> int:
    """Replay through the service, ``batch_rows`` rows per request; the service writes the profiles."""
    sim = cfg.monitoring.simulation
    address = str(sim.url).rstrip("/") + sim.endpoint
    columns = [*feature_columns(frame, cfg.data), *([cfg.data.id_column] if cfg.data.id_column else [])]
    answered = 0
    with httpx.Client(timeout=30) as session:  # one for every batch, its connection kept alive
        for start in range(0, len(frame), sim.batch_rows):
            batch = frame[columns].iloc[start : start + sim.batch_rows]
            records = json.loads(batch.to_json(orient="records"))
            answered += len(post(session, address, {sim.payload_key: records}, len(records)))
    return answered


def profile_directly(cfg: Config, frame: pd.DataFrame, model: InProcess, now: datetime) -> list[str]:
    """Score window by window and write each through the service's profiler, stamped with its window."""
    sim, key = cfg.monitoring.simulation, cfg.data.id_column
    features = feature_columns(frame, cfg.data)
    profiler = TrafficProfiler(
        cfg.monitoring.profile_dir, id_column=key, model_version=model.version, classes=model.classes
    )
    starts = window_starts(sim.windows, cfg.serving.profile_window_s, now)
    written = []
    for started, rows in zip(starts, np.array_split(np.arange(len(frame)), sim.windows), strict=True):
        batch = frame.iloc[rows]
        kept = batch[[*features, key]] if key else batch[features]
        labels, probabilities = model.score(batch[features])
        profiler.record(kept, labels, probabilities=probabilities)
        path = profiler.flush(window_start=started)
        if path is None:
            raise DataError(f"{cfg.monitoring.profile_dir}: the profile could not be written")
        written.append(path)
    return written


def append_labels(path: Path, labels: pd.DataFrame, key: str) -> Path:
    """Add labels to the labels file (later labels for an id replace earlier ones)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_file():
        labels = pd.concat([pd.read_csv(path), labels], ignore_index=True)
        labels = labels.drop_duplicates(subset=[key], keep="last")
    labels.to_csv(path, index=False)
    return path


def replay(
    cfg: Config, predict: Predictor | InProcess | None = None, now: datetime | None = None
) -> ReplaySummary:
    """Send the configured traffic; leave profiles (directly or via the service) and labels.

    ``predict`` scores in-process instead of the registry's model: an :class:`InProcess`, or a
    bare predictor of labels, which logs neither probabilities nor a version.
    """
    sim, key = cfg.monitoring.simulation, str(cfg.data.id_column)
    frame = traffic(cfg)
    if sim.url:
        send(cfg, frame)
        profiles: list[str] = []
    else:
        model = labels_only(predict) if callable(predict) else predict or model_predictor(cfg)
        profiles = profile_directly(cfg, frame, model, now or datetime.now(UTC))
    labels = append_labels(resolve(cfg.monitoring.labels_path), frame[[key, cfg.data.target]], key)
    return ReplaySummary(sim.shift, len(frame), sim.windows, sim.url or "in-process model", profiles, labels)
