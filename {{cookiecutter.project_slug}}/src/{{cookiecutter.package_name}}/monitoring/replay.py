"""Drift simulator: replay synthetic customers, optionally shifted, as production traffic.

With ``monitoring.simulation.url`` the rows (with their ids) go to the running service over
HTTP, and the service profiles them and logs id -> prediction itself. Without a URL, a model
scores them here and they go through the service's own writer (:class:`traffic.TrafficProfiler`),
one flush per window; the files are then renamed to the window they stand for, so a replay of
minutes of traffic in a second still shows as a timeline. Either way the replay also writes
what a labelling process would: the true outcomes by id in ``monitoring.labels_path``.
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

from .. import registry, simulation
from ..config import Config, resolve
from ..data import DataError, feature_columns
from ..reference import PREDICTION
from ..serving.traffic import TrafficProfiler

Predictor = Callable[[pd.DataFrame], np.ndarray]
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


def post(address: str, body: dict[str, Any], expected: int) -> list[Any]:
    """One JSON request; the answer holds one prediction per row (``{"predictions": [...]}``)."""
    request = urllib.request.Request(  # noqa: S310 (the configured service URL)
        address, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            answer = json.loads(response.read())
    except urllib.error.HTTPError as error:
        raise DataError(f"{address}: HTTP {error.code}: {error.read()[:300]!r}") from None
    except (urllib.error.URLError, OSError) as error:
        raise DataError(
            f"{address}: service not reachable ({error}); start it or drop simulation.url"
        ) from None
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
    for start in range(0, len(frame), sim.batch_rows):
        records = json.loads(frame[columns].iloc[start : start + sim.batch_rows].to_json(orient="records"))
        answered += len(post(address, {sim.payload_key: records}, len(records)))
    return answered


def profile_directly(cfg: Config, frame: pd.DataFrame, predict: Predictor, now: datetime) -> list[str]:
    """Score window by window and write each through the service's profiler, stamped with its window."""
    sim, key = cfg.monitoring.simulation, cfg.data.id_column
    features = feature_columns(frame, cfg.data)
    profiler = TrafficProfiler(cfg.monitoring.profile_dir, id_column=key)
    starts = window_starts(sim.windows, cfg.serving.profile_window_s, now)
    written = []
    for started, rows in zip(starts, np.array_split(np.arange(len(frame)), sim.windows), strict=True):
        batch = frame.iloc[rows]
        kept = batch[[*features, key]] if key else batch[features]
        profiler.record(kept, predict(batch[features]).tolist())
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


def replay(cfg: Config, predict: Predictor | None = None, now: datetime | None = None) -> ReplaySummary:
    """Send the configured traffic; leave profiles (directly or via the service) and labels."""
    sim, key = cfg.monitoring.simulation, str(cfg.data.id_column)
    frame = traffic(cfg)
    if sim.url:
        send(cfg, frame)
        profiles: list[str] = []
    else:
        profiles = profile_directly(cfg, frame, predict or model_predictor(cfg), now or datetime.now(UTC))
    labels = append_labels(resolve(cfg.monitoring.labels_path), frame[[key, cfg.data.target]], key)
    return ReplaySummary(sim.shift, len(frame), sim.windows, sim.url or "in-process model", profiles, labels)
