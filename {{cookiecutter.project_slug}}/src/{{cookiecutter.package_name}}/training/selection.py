"""Model selection: candidate versus champion on the same held-out data, and the gate that decides.

:func:`decide` is the pure decision (a table in its test); :func:`compare` scores both registry
aliases on today's test split and hands the scores to it. ``nox -s compare`` writes the result
to ``reports/training/gate.json`` for CI to act on.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion

from .. import evaluation, registry, reports
from ..config import Config
from ..data import DataError, load_dataset, split


@dataclass(frozen=True)
class GateDecision:
    """Whether the candidate may replace the champion, with the numbers that decided it."""

    promote: bool
    reason: str
    metric: str
    candidate: float
    champion: float | None
    margin: float
    candidate_version: str | None = None
    champion_version: str | None = None

    def write(self, path: str | Path) -> Path:
        """Write the decision as JSON (CI reads ``promote``)."""
        return reports.write_json(asdict(self), path)


def decide(
    metric: str,
    candidate: float,
    champion: float | None,
    margin: float,
    greater_is_better: bool,
    *,
    same_as_champion: bool = False,
) -> GateDecision:
    """Promote when there is no champion yet, or a different candidate beats it by ``margin``.

    ``margin`` is in the metric's own units; a candidate exactly ``margin`` better passes. A
    candidate trained on the champion's data with the champion's config is the champion again:
    it is never promoted, whatever the margin, so an unchanged push opens no promotion.
    """
    if champion is None:
        return GateDecision(True, "no champion yet", metric, candidate, None, margin)
    if same_as_champion:
        reason = "same data and training config as the champion: nothing new to promote"
        return GateDecision(False, reason, metric, candidate, champion, margin)
    gain = candidate - champion if greater_is_better else champion - candidate
    if gain >= margin:
        reason = f"candidate is better by {gain:.4f} (margin {margin})"
        return GateDecision(True, reason, metric, candidate, champion, margin)
    reason = f"candidate is better by only {gain:.4f}, needs {margin}"
    return GateDecision(False, reason, metric, candidate, champion, margin)


def compare(cfg: Config) -> GateDecision:
    """Score both aliases on today's test split and decide whether the candidate may go live."""
    client = registry.connect(cfg.mlflow)
    name, metric = cfg.mlflow.model_name, cfg.training.primary_metric
    candidate = registry.version_by_alias(client, name, registry.CANDIDATE)
    if candidate is None:
        raise DataError("no model has the alias 'candidate'; run `nox -s train` first")
    champion = registry.version_by_alias(client, name, registry.CHAMPION)
    data = split(load_dataset(cfg.data), cfg.data, stratify=cfg.task == evaluation.CLASSIFICATION)

    def primary(alias: str) -> float:
        model = registry.load(name, alias)
        if missing := [c for c in model.feature_names_in_ if c not in data.x_test.columns]:
            raise DataError(
                f"the {alias} model needs columns {missing} that {cfg.data.path} does not have as "
                "features: the table's schema changed since it was trained; a model on the new "
                "schema goes live through a release of its own, not this comparison"
            )
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
        same_as_champion=champion is not None and same_lineage(client, name, candidate, champion),
    )
    reason = decision.reason
    if champion is None and not registry.is_shared(cfg.mlflow) and os.environ.get("CI") == "true":
        reason = (
            "no champion to compare with: this CI job's registry is a fresh sqlite file, "
            "not a shared MLflow server (mlflow_tracking=remote keeps one across jobs)"
        )
    return replace(
        decision,
        reason=reason,
        candidate_version=str(candidate.version),
        champion_version=str(champion.version) if champion else None,
    )


def same_lineage(client: MlflowClient, name: str, candidate: ModelVersion, champion: ModelVersion) -> bool:
    """Both versions trained on the same data digest with the same config digest."""
    ours = registry.lineage(client, name, str(candidate.version))
    theirs = registry.lineage(client, name, str(champion.version))
    keys = (ours.data_digest, ours.config_digest)
    return all(keys) and keys == (theirs.data_digest, theirs.config_digest)
