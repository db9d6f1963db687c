"""The service's settings: the ONE mapping from the project config to what a server needs.

A built bento freezes these as its arguments (``bentoml build --args``, see :mod:`.packaging`);
serving from source composes them from ``conf/``. Either way ``SERVING_*`` environment variables
win last (see :mod:`.service` for the list), so an operator can switch profiling or tracing
without rebuilding.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..config import Config, resolve

TRUE = {"1", "true", "yes", "on"}
FLAGS = ("profiling", "batching", "noop_model", "access_log", "tracing")


@dataclass(frozen=True)
class Settings:
    """Everything the service needs, from bento arguments (built) or the Hydra config (source)."""

    service_name: str
    task: str
    id_column: str | None
    model_name: str
    model_alias: str
    model_tag: str | None
    tracking_uri: str
    max_batch_size: int
    max_queue_ms: float
    workers: int
    max_rows_per_request: int
    profile_dir: str
    profile_window_s: float
    profiling: bool
    batching: bool = True
    noop_model: bool = False
    access_log: bool = False
    tracing: bool = False
    # Last, with defaults: bentos built before them still load.
    max_body_mb: float = 16.0
    max_text_chars: int = 1000
    bounds: dict[str, list[float | None]] = field(default_factory=dict)
    """Per feature, ``[allowed_min, allowed_max]`` from the data contract: a value outside is a 400."""


def from_config(cfg: Config, model_tag: str | None = None, tracking_uri: str | None = None) -> Settings:
    """Settings from the composed config; a bento passes its model tag and no tracking URI."""
    serving = cfg.serving
    return Settings(
        service_name=cfg.mlflow.model_name,
        task=cfg.task,
        id_column=cfg.data.id_column,
        model_name=cfg.mlflow.model_name,
        model_alias=serving.model_alias,
        model_tag=model_tag,
        tracking_uri=cfg.mlflow.tracking_uri if tracking_uri is None else tracking_uri,
        max_batch_size=serving.max_batch_size,
        max_queue_ms=serving.max_queue_ms,
        workers=serving.workers,
        max_rows_per_request=serving.max_rows_per_request,
        max_body_mb=serving.max_body_mb,
        max_text_chars=serving.max_text_chars,
        bounds=contract_bounds(cfg.validation.contract_path),
        profile_dir=serving.profile_dir,
        profile_window_s=serving.profile_window_s,
        profiling=serving.profiling,
    )


def contract_bounds(contract_path: str) -> dict[str, list[float | None]]:
    """``[allowed_min, allowed_max]`` per bounded column of the data contract (none without one).

    Read when the bento is built (or the service starts from source): the bento carries the
    bounds its model was packaged under, whatever the contract says later.
    """
    path = resolve(contract_path)
    if not path.is_file():
        return {}
    from ..validation import Contract  # noqa: PLC0415 - pandas and whylogs: only when the bounds are read

    columns = Contract.load(path).columns
    return {
        name: [spec.allowed_min, spec.allowed_max]
        for name, spec in columns.items()
        if spec.allowed_min is not None or spec.allowed_max is not None
    }


def apply_environment(settings: Settings, env: Mapping[str, str]) -> Settings:
    """``SERVING_*`` variables win over built-in settings; a relative profile dir is resolved.

    It is resolved against ``PWD`` (the directory serve started in), not the package's folder.
    """
    changes: dict[str, Any] = {}
    for flag in FLAGS:
        value = env.get(f"SERVING_{flag.upper()}")
        if value is not None:
            changes[flag] = value.strip().lower() in TRUE
    if env.get("SERVING_MODEL_TAG"):
        changes["model_tag"] = env["SERVING_MODEL_TAG"]
    directory = env.get("SERVING_PROFILE_DIR", settings.profile_dir)
    if "://" not in directory and not Path(directory).is_absolute():
        directory = str(Path(env.get("PWD", os.getcwd())) / directory)
    changes["profile_dir"] = directory
    return replace(settings, **changes)
