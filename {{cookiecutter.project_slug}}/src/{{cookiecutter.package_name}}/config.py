"""Typed configuration: Hydra composes ``conf/``, these dataclasses validate it once.

The schema is registered in Hydra's ConfigStore as ``config_schema`` and named first in
``conf/config.yaml``'s defaults, so a misspelt key or a wrong type fails at composition with
Hydra's message, before any stage does work. Stage functions take these objects, never a raw
DictConfig.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from .errors import PipelineError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONF_DIR = PROJECT_ROOT / "conf"
BENTOML_HOME = PROJECT_ROOT / ".bentoml"  # the project's BentoML store (git-ignored)
# Keys renamed so that each word means one thing; the old name fails with the new one.
RENAMED = {
    "serving.max_latency_ms": "serving.max_queue_ms",  # a queue budget, not a latency target
    "serving.latency_budget_ms": "monitoring.latency_budget_ms",  # only monitoring alerts on it
    "inference.alias": "inference.model_alias",  # one name for the registry alias everywhere
}


class ConfigError(PipelineError):
    """A command-line override names a key that no longer exists."""


def check_renamed(overrides: Iterable[str]) -> None:
    """Refuse overrides of renamed keys with the new name, before Hydra's generic message."""
    for override in overrides:
        key = override.lstrip("+~").split("=", 1)[0]
        if key in RENAMED:
            raise ConfigError(f"{key} is now {RENAMED[key]}: write {RENAMED[key]}=... instead")


@dataclass
class DataConfig:
    """Where the table lives and which columns play which part."""

    path: str = "data/sample/customers.csv"
    target: str = "churned"
    id_column: str | None = "customer_id"
    drop_columns: list[str] = field(default_factory=list)
    categorical: list[str] | None = None
    numeric: list[str] | None = None
    test_size: float = 0.2
    split_seed: int = 42
    drop_missing_target: bool = False
    segments: list[str] = field(default_factory=list)  # feature columns the test metrics are split by


@dataclass
class ValidationConfig:
    """The data contract and the reference distribution new data is held against."""

    contract_path: str = "data/sample/contract.yaml"
    reference_profile: str = "data/sample/reference.bin"
    max_drift: float = 0.3
    report_dir: str = "reports/validation"


@dataclass
class ModelConfig:
    """A swappable estimator (``estimator._target_``) and the preprocessing it needs."""

    name: str = "random_forest"
    estimator: Any = field(default_factory=dict)
    scale_numeric: bool = False
    categorical_encoding: str = "onehot"


@dataclass
class TrainingConfig:
    """Reproducibility knobs and the bars a model must clear."""

    seed: int = 42
    cv_folds: int = 5
    primary_metric: str = "f1_macro"
    greater_is_better: bool = True
    min_primary_metric: float = 0.0
    keep_better_candidate: bool = True
    override_data_gate: bool = False
    promotion_margin: float = 0.0
    report_dir: str = "reports/training"
    threads: int | None = None  # native threads (OpenMP, BLAS); None: the cores this process may use


@dataclass
class MlflowConfig:
    """Tracking store and registry; local sqlite by default, any server URI by override."""

    tracking_uri: str = "sqlite:///.mlflow/mlflow.db"
    artifact_dir: str | None = ".mlflow/artifacts"
    experiment: str = "default"
    model_name: str = "model"


@dataclass
class ServingConfig:
    """How the BentoML service loads and batches."""

    model_alias: str = "champion"
    max_batch_size: int = 512
    max_queue_ms: float = 250.0
    workers: int = 1
    max_rows_per_request: int = 10_000
    max_body_mb: float = 16.0
    max_text_chars: int = 1000
    profile_dir: str = "profiles"
    profile_window_s: float = 60.0
    profiling: bool = True
    report_dir: str = "reports"
    image_repository: str = ""  # set in conf/serving: ghcr.io/<owner>/<repository>


@dataclass
class SimulationConfig:
    """Replayed traffic for demos and tests: which shift, how many rows, where they go."""

    shift: str = "none"
    rows: int = 3000
    seed: int = 11
    windows: int = 6
    url: str | None = None
    endpoint: str = "/predict"
    payload_key: str = "rows"
    batch_rows: int = 100


class Distance(StrEnum):
    """The distances a monitored column can be measured with (:mod:`.drift` defines each).

    An enum, so a misspelt name in ``monitoring.column_distances`` fails at composition with the
    column's key, the bad value and the allowed ones.
    """

    ks = "ks"
    psi = "psi"
    jensen_shannon = "jensen_shannon"
    wasserstein = "wasserstein"
    hellinger = "hellinger"


@dataclass
class MonitoringConfig:
    """Drift thresholds, the production window, and where profiles, labels and metrics live."""

    profile_dir: str = "profiles/production"
    report_dir: str = "reports/monitoring"
    drift_threshold: float = 0.1
    column_thresholds: dict[str, float] = field(default_factory=dict)
    column_distances: dict[str, Distance] = field(default_factory=dict)
    distance_thresholds: dict[Distance, float] = field(default_factory=dict)
    outcome_threshold: float = 0.04
    drift_alpha: float = 0.01
    min_labels: int = 200
    window_hours: float = 24.0
    window_end: str | None = None
    exclude_clients: list[str] = field(default_factory=lambda: ["operator"])
    reference_profile: str | None = None
    reference_bento: str | None = None
    model_alias: str = "champion"
    prediction_log_dir: str = "profiles/production"
    labels_path: str = "labels/labels.csv"
    max_missing_increase: float = 0.05
    min_category_share: float = 0.01
    max_out_of_range: float = 0.01
    max_metric_drop: float = 0.05
    max_error_rate: float = 0.01
    latency_budget_ms: float = 50.0
    metrics_sources: list[str] = field(default_factory=list)
    fail_on_drift: bool = False
    fail_on_unreadable: bool = False
    rollups: bool = True
    simulation: SimulationConfig = field(default_factory=SimulationConfig)


@dataclass
class InferenceConfig:
    """Batch scoring: which file, where to, with which registry alias."""

    input: str = "data/sample/customers.csv"
    output: str = "reports/predictions.csv"
    model_alias: str = "champion"


@dataclass
class DeployConfig:
    """Where desired state, runtime state and check reports live for the local target."""

    desired_dir: str = "deploy"
    state_dir: str = ".deploy"
    report_dir: str = "reports/checks"
    serve_dir: str = "."


@dataclass
class Config:
    """The whole composed configuration of one run."""

    task: str = "classification"
    data: DataConfig = field(default_factory=DataConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    mlflow: MlflowConfig = field(default_factory=MlflowConfig)
    serving: ServingConfig = field(default_factory=ServingConfig)
    monitoring: MonitoringConfig = field(default_factory=MonitoringConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    deploy: DeployConfig = field(default_factory=DeployConfig)


def register() -> None:
    """Make the schema available to ``conf/config.yaml``'s defaults list."""
    ConfigStore.instance().store(name="config_schema", node=Config)


def to_typed(cfg: DictConfig) -> Config:
    """Turn Hydra's composed config into the dataclass tree, resolving interpolations."""
    typed = OmegaConf.to_object(cfg)
    if not isinstance(typed, Config):
        raise TypeError("conf/config.yaml must list 'config_schema' first in its defaults")
    return typed


def compose(overrides: list[str] | None = None, conf_dir: Path = CONF_DIR) -> Config:
    """Compose the config outside a Hydra app (tests, notebooks, the BentoML service)."""
    check_renamed(overrides or [])
    register()
    with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3"):
        return to_typed(hydra_compose(config_name="config", overrides=overrides or []))


def resolve(path: str | Path) -> Path:
    """Relative paths in configs are relative to the project root, wherever the command runs."""
    candidate = Path(path)
    return candidate if candidate.is_absolute() else PROJECT_ROOT / candidate


def report_root(cfg: Config | None) -> Path:
    """The folder every stage's reports go under (``reports/``), which ``summary`` renders."""
    return resolve(cfg.training.report_dir).parent if cfg else resolve("reports")


def use_project_store() -> Path:
    """Point BentoML at ``.bentoml/`` in the project (before bentoml is imported) unless set."""
    home = Path(os.environ.setdefault("BENTOML_HOME", str(BENTOML_HOME)))
    home.mkdir(parents=True, exist_ok=True)
    return home
