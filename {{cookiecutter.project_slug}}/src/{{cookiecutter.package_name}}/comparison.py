"""Candidate versus champion on the same held-out data, decided by :mod:`gate`."""

from __future__ import annotations

from {{ cookiecutter.package_name }} import evaluation, registry
from {{ cookiecutter.package_name }}.config import Config
from {{ cookiecutter.package_name }}.data import DataError, load_table, split
from {{ cookiecutter.package_name }}.gate import GateDecision, decide


def compare(cfg: Config) -> GateDecision:
    """Score both aliases on today's test split and decide whether the candidate may go live."""
    client = registry.connect(cfg.mlflow)
    name, metric = cfg.mlflow.model_name, cfg.training.primary_metric
    candidate = registry.version_by_alias(client, name, registry.CANDIDATE)
    if candidate is None:
        raise DataError("no model has the alias 'candidate'; run `nox -s train` first")
    champion = registry.version_by_alias(client, name, registry.CHAMPION)
    data = split(load_table(cfg.data.path), cfg.data, stratify=cfg.task == evaluation.CLASSIFICATION)

    def primary(alias: str) -> float:
        model = registry.load(name, alias)
        return evaluation.score(cfg.task, model, data.x_test[list(model.feature_names_in_)], data.y_test)[
            metric
        ]

    champion_score = primary(registry.CHAMPION) if champion else None
    decision = decide(
        metric,
        primary(registry.CANDIDATE),
        champion_score,
        cfg.training.promotion_margin,
        cfg.training.greater_is_better,
    )
    return GateDecision(
        **{
            **decision.__dict__,
            "candidate_version": str(candidate.version),
            "champion_version": str(champion.version) if champion else None,
        }
    )


def crown(cfg: Config) -> str:
    """Move ``champion`` to the candidate's version (what a merged promotion does)."""
    client = registry.connect(cfg.mlflow)
    candidate = registry.version_by_alias(client, cfg.mlflow.model_name, registry.CANDIDATE)
    if candidate is None:
        raise DataError("no model has the alias 'candidate'; run `nox -s train` first")
    registry.set_alias(client, cfg.mlflow.model_name, registry.CHAMPION, str(candidate.version))
    return str(candidate.version)
