"""MLflow tracking and model registry: where runs go, how models are named and found.

Aliases are lower-case: ``candidate`` is the newest model that passed training's bar,
``champion`` is what production serves. A model version's lineage (run, data digest, config,
commit) is one :func:`lineage` call away.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import mlflow
import skops.io
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from sklearn.base import BaseEstimator

from .config import MlflowConfig, resolve
from .errors import PipelineError

CANDIDATE, CHAMPION = "candidate", "champion"
# skops refuses to load types it is not told to trust. These are exactly the scikit-learn
# types the template's pipelines (preprocessing + linear, forest, boosting) contain; a new
# estimator that needs more fails loudly at training time, naming what to add.
TRUSTED_TYPES = [
    "functools.partial",  # HistGradientBoosting keeps partial(check_array) for its inputs
    "numpy.dtype",
    "sklearn._loss.link.Interval",
    "sklearn._loss.link.LogitLink",
    "sklearn._loss.link.MultinomialLogit",
    "sklearn._loss.link.IdentityLink",
    "sklearn._loss.loss.HalfBinomialLoss",
    "sklearn._loss.loss.HalfMultinomialLoss",
    "sklearn._loss.loss.HalfSquaredError",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.tree._tree.Tree",
    "sklearn.utils.validation.check_array",
]


@dataclass(frozen=True)
class Lineage:
    """Everything needed to reproduce a model version."""

    model_name: str
    version: str
    run_id: str
    data_digest: str
    data_path: str
    git_commit: str
    config_artifact: str
    config_digest: str
    data_artifact: str


class TrackingError(PipelineError):
    """No tracking URI: the shared MLflow server was not named."""


def connect(cfg: MlflowConfig) -> MlflowClient:
    """Point MLflow at the configured store and make sure the experiment exists."""
    quiet_mlflow()
    uri = cfg.tracking_uri.strip()
    if not uri:
        raise TrackingError(
            "MLFLOW_TRACKING_URI is empty or not set, and this project tracks to a shared MLflow "
            "server (conf/mlflow/remote.yaml): export it locally; on GitHub set the secrets "
            "MLFLOW_TRACKING_URI (and MLFLOW_TRACKING_TOKEN) in Settings > Environments"
        )
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        database = resolve(uri.removeprefix("sqlite:///"))
        database.parent.mkdir(parents=True, exist_ok=True)
        uri = f"sqlite:///{database}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    if mlflow.get_experiment_by_name(cfg.experiment) is None:
        # the real path: on a production host `.mlflow` links a CI job's workspace to a folder
        # that outlives it, and the experiment keeps this location for good
        location = resolve(cfg.artifact_dir).resolve().as_uri() if cfg.artifact_dir else None
        mlflow.create_experiment(cfg.experiment, artifact_location=location)
    mlflow.set_experiment(cfg.experiment)
    return MlflowClient()


def is_shared(cfg: MlflowConfig) -> bool:
    """Whether the registry outlives this machine (a server), unlike a sqlite file or folder."""
    return not cfg.tracking_uri.startswith(("sqlite:", "file:", "/", "."))


def quiet_mlflow() -> None:
    """MLflow's store migrations and telemetry are noise in stage output."""
    os.environ.setdefault("MLFLOW_ENABLE_TELEMETRY", "false")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    for name in ("alembic", "mlflow.store.db.utils", "mlflow.models.model", "mlflow.utils.uv_utils"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # Known advice that does not apply: integer columns are declared in the data contract (and
    # adopt-data names them), and a dataset's source is the path we give, not a guess.
    warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")
    warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted")
    environment = logging.getLogger("mlflow.utils.environment")
    environment.setLevel(logging.WARNING)  # its INFO lines retell the uv export
    if not any(isinstance(f, UnpinnedPip) for f in environment.filters):
        environment.addFilter(UnpinnedPip())


class UnpinnedPip(logging.Filter):
    """Drops MLflow's warning that pip goes unpinned into conda.yaml: the image installs from uv.lock."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep every record but that one."""
        return "Failed to resolve installed pip version" not in record.getMessage()


def trusted_types_for(model: BaseEstimator) -> list[str]:
    """The allow-listed types the model needs; anything else is refused with its name."""
    needed = set(skops.io.get_untrusted_types(data=skops.io.dumps(model)))
    unknown = sorted(needed - set(TRUSTED_TYPES))
    if unknown:
        raise ValueError(
            f"the model contains types skops does not trust: {unknown}; add them to TRUSTED_TYPES"
        )
    return sorted(needed)


def version_by_alias(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """The version behind an alias, or None when the alias (or model) does not exist yet."""
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def set_alias(client: MlflowClient, name: str, alias: str, version: str) -> None:
    """Point an alias at a version (moving it if it pointed elsewhere)."""
    client.set_registered_model_alias(name, alias, version)


def model_uri(name: str, alias: str) -> str:
    """The ``models:/`` URI of an alias."""
    return f"models:/{name}@{alias}"


def load(name: str, alias: str) -> BaseEstimator:
    """Load a registered scikit-learn pipeline by alias (native flavor: no pyfunc overhead)."""
    return mlflow.sklearn.load_model(model_uri(name, alias))


def lineage(client: MlflowClient, name: str, version: str) -> Lineage:
    """Model version -> run -> data digest, data snapshot, config and commit."""
    model_version = client.get_model_version(name, version)
    run = client.get_run(str(model_version.run_id))
    tags = run.data.tags
    return Lineage(
        model_name=name,
        version=version,
        run_id=run.info.run_id,
        data_digest=tags.get("data_digest", ""),
        data_path=tags.get("data_path", ""),
        git_commit=tags.get("mlflow.source.git.commit", tags.get("git_commit", "")),
        config_artifact=f"runs:/{run.info.run_id}/config/config.yaml",
        config_digest=tags.get("config_digest", ""),
        data_artifact=tags.get("data_snapshot")
        or f"runs:/{run.info.run_id}/data/{Path(tags.get('data_path', 'data')).name}",
    )
