"""Sweeps: one parent MLflow run, each trial a child run, the best trial through the candidate gate.

``train -m`` runs a sweep (``model=linear,random_forest,hgb``, ``hparams_search=optuna``); with
``hydra/launcher=ray`` (the ``ray`` extra) its trials are Ray tasks, on a local Ray started for
the sweep or on the cluster that ``RAY_ADDRESS`` (or ``hydra.launcher.ray.init.address``) names.
Hydra calls :class:`SweepCallback` (``hydra.callbacks`` in conf/config.yaml) in the process that
starts the sweep: before the first trial it holds the data gate and opens the parent run; each
trial then logs its own run under it (``mlflow.parentRunId``) and leaves the registry alone, as
trials that run at once cannot each compare with, and move, one alias; after the last trial the
best one meets the same gate as a single train (:func:`.train.standing`) and takes ``candidate``
if it stands. Every trial still holds the data gate itself on the table it reads.
"""

from __future__ import annotations

import copy
import json
import os
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import mlflow
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, open_dict

from .. import registry
from ..config import Config, resolve, to_typed
from ..data import load_dataset
from ..errors import PipelineError
from . import train
from .trial import PARENT_ENV

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

RAY_LAUNCHER = "hydra_ray_launcher"
T = TypeVar("T")
_armed = {"train": False}  # only the train command opens sweep runs; every stage shares conf/


def arm() -> None:
    """Let :class:`SweepCallback` act in this process: ``train`` calls it before Hydra starts."""
    _armed["train"] = True


@dataclass(frozen=True)
class Trial:
    """One finished trial as the sweep's report lists it."""

    run_id: str
    model: str
    score: float


@dataclass(frozen=True)
class Outcome:
    """What a sweep produced, as written to ``reports/training/sweep.json``."""

    parent_run_id: str
    launcher: str
    metric: str
    trials: list[Trial] = field(default_factory=list)
    best_run_id: str | None = None
    model_version: str | None = None
    standing: str = ""
    below_bar: bool = False


class SweepCallback(Callback):
    """Opens the sweep's parent run before the first trial and crowns the best after the last."""

    def __init__(self) -> None:
        self.parent: str | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: object) -> None:
        """Data gate, then the parent run, whose id every trial gets in its environment."""
        if not _armed["train"]:
            return
        self.parent = _guarded(lambda: open_sweep(typed(config), launcher_name(config)))
        # Hydra composes each trial's config anew from these overrides (load_sweep_config), so the
        # parent's id travels as one, and Hydra sets it around the trial wherever the trial runs
        config.hydra.overrides.hydra.append(f"++hydra.job.env_set.{PARENT_ENV}={self.parent}")
        if launcher_name(config) == RAY_LAUNCHER:
            prepare_ray(config)

    def on_multirun_end(self, config: DictConfig, **kwargs: object) -> None:
        """The best trial through the candidate gate; the parent run closes with the verdict."""
        if self.parent is None:
            return
        parent = self.parent
        outcome = _guarded(lambda: close_sweep(typed(config), parent, launcher_name(config)))
        report(outcome, typed(config))
        if outcome.below_bar or not outcome.trials:
            sys.exit(1)


def _guarded(work: Callable[[], T]) -> T:
    """Run ``work``; an expected failure is one line on stderr and exit 1, as in every stage."""
    try:
        return work()
    except (PipelineError, FileNotFoundError) as error:  # what every stage reports in one line
        print(f"[train] error: {error}", file=sys.stderr, flush=True)
        sys.exit(1)


def typed(config: DictConfig) -> Config:
    """The sweep's base config (without Hydra's own node) as the typed tree a stage gets."""
    raw = copy.deepcopy(config)
    with open_dict(raw):
        del raw["hydra"]
    return to_typed(raw)


def launcher_name(config: DictConfig) -> str:
    """The launcher's package, e.g. ``hydra_ray_launcher``, or ``hydra`` for the basic launcher."""
    target = str(config.hydra.launcher.get("_target_", ""))
    return target.split(".")[1] if target.startswith("hydra_plugins.") else target.split(".", maxsplit=1)[0]


def open_sweep(cfg: Config, launcher: str) -> str:
    """Refuse a table the gate refuses before any run exists; else open the parent run."""
    train.hold_data_gate(cfg, load_dataset(cfg.data))
    client = registry.connect(cfg.mlflow)
    experiment = client.get_experiment_by_name(cfg.mlflow.experiment)
    assert experiment is not None  # connect() creates it
    tags = {"sweep_launcher": launcher, "mlflow.runName": "sweep", "task": cfg.task}
    run = client.create_run(experiment.experiment_id, tags=tags)
    train.progress(f"sweep run {run.info.run_id} ({launcher} launcher): each trial is a run under it")
    return str(run.info.run_id)


def prepare_ray(config: DictConfig) -> None:
    """Ray settings a sweep needs unless the command line gave its own.

    No dashboard: it starts several more processes and adds seconds to a local Ray's start, and
    a sweep reads its results in MLflow. Each trial's native thread pools are held to the CPUs
    Ray gives the task (``hydra.launcher.ray.remote.num_cpus``, Ray's default 1), through
    ``training.threads``: the trials that share a node then share its cores instead of each
    starting a thread per core.
    """
    # Ray replays a driver started by `uv run` on its workers (its uv hook, on by default), in a
    # copy of the project where `uv run` builds an environment without this project's extras, and
    # the workers fail to import ray. Workers run the driver's interpreter on a local Ray and the
    # cluster image's on a cluster; RAY_ENABLE_UV_RUN_RUNTIME_ENV=1 opts back in. Read at import.
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    ray = config.hydra.launcher.ray
    with open_dict(ray):
        ray.init.setdefault("include_dashboard", False)
        if ray.init.get("address") or os.environ.get("RAY_ADDRESS"):
            # hydra-ray-launcher 1.2.2 sets object_store_memory (75 MB) unless given, and Ray
            # 2.60's ray.init refuses it for an existing cluster ("When connecting to an existing
            # cluster, object_store_memory must not be provided"); None passes as not given.
            ray.init["object_store_memory"] = None
        cpus = ray.remote.get("num_cpus", 1)
    task = config.hydra.overrides.task
    given = any(str(o).lstrip("+~").startswith("training.threads=") for o in task)
    if "threads" in config.training and not given:
        task.append(f"training.threads={max(1, int(cpus))}")


def close_sweep(cfg: Config, parent: str, launcher: str) -> Outcome:
    """Find the trials, put the best through :func:`.train.standing`, register it, close the parent."""
    client = registry.connect(cfg.mlflow)
    metric = cfg.training.primary_metric
    runs = trial_runs(client, parent, metric, cfg.training.greater_is_better)
    trials = [
        Trial(r.info.run_id, r.data.tags.get("model", ""), r.data.metrics[f"test_{metric}"]) for r in runs
    ]
    outcome = Outcome(parent, launcher, metric, trials)
    if runs:
        outcome = crown(cfg, client, runs[0], outcome)
    record(client, outcome)
    return outcome


def trial_runs(client: MlflowClient, parent: str, metric: str, greater_is_better: bool) -> list[Run]:
    """The sweep's finished trials, best first (a trial that failed deleted its own run)."""
    experiment = client.get_run(parent).info.experiment_id
    order = "DESC" if greater_is_better else "ASC"
    return list(
        client.search_runs(
            [experiment],
            filter_string=f"tags.mlflow.parentRunId = '{parent}' and attributes.status = 'FINISHED'",
            order_by=[f"metrics.test_{metric} {order}"],
            max_results=10_000,
        )
    )


def crown(cfg: Config, client: MlflowClient, best: Run, outcome: Outcome) -> Outcome:
    """The best trial meets a single train's gate; registered as ``candidate`` if it stands."""
    score = best.data.metrics[f"test_{outcome.metric}"]
    stands = train.standing(cfg, client, score, best.data.tags.get("data_digest", ""))
    version = None
    if stands.register:
        registered = mlflow.register_model(
            best.data.tags["model_uri"], cfg.mlflow.model_name, tags={"primary_metric": outcome.metric}
        )
        version = str(registered.version)
        registry.set_alias(client, cfg.mlflow.model_name, registry.CANDIDATE, version)
    return Outcome(
        outcome.parent_run_id,
        outcome.launcher,
        outcome.metric,
        outcome.trials,
        best_run_id=best.info.run_id,
        model_version=version,
        standing=stands.reason,
        below_bar=stands.below_bar,
    )


def record(client: MlflowClient, outcome: Outcome) -> None:
    """The verdict on the parent run, which ends FINISHED, or FAILED when no trial finished."""
    parent = outcome.parent_run_id
    client.log_param(parent, "trials", len(outcome.trials))
    if outcome.best_run_id is not None:
        client.set_tag(parent, "best_run_id", outcome.best_run_id)
        client.set_tag(parent, "standing", outcome.standing)
        client.log_metric(parent, f"best_test_{outcome.metric}", outcome.trials[0].score)
    client.set_terminated(parent, "FINISHED" if outcome.trials else "FAILED")


def report(outcome: Outcome, cfg: Config) -> Path:
    """Print the verdict in a line or two and write ``sweep.json`` beside ``train.json``."""
    path = resolve(cfg.training.report_dir) / "sweep.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(outcome), indent=2) + "\n")
    if not outcome.trials:
        print(f"  sweep run {outcome.parent_run_id}: no trial finished; report: {path}", file=sys.stderr)
        return path
    best = outcome.trials[0]
    score = f"{outcome.metric}={best.score:.4f}"
    print(f"  {len(outcome.trials)} trials; best {best.model} {score} (run {best.run_id})")
    where = sys.stderr if outcome.below_bar else sys.stdout
    version = f"v{outcome.model_version} " if outcome.model_version else ""
    print(f"  {version}{outcome.standing}; report: {path}", file=where, flush=True)
    return path
