"""Model selection: candidate versus champion on the same held-out data, and the gate that decides.

:func:`decide` is the pure decision (a table in its test); :func:`compare` scores both registry
aliases on today's test split and hands the scores to it. ``nox -s compare`` writes the result
to ``reports/training/gate.json`` for CI to act on.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from .. import evaluation, registry
from ..config import Config
from ..data import DataError, load_table, split


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
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(asdict(self), indent=2))
        return target


def decide(
    metric: str, candidate: float, champion: float | None, margin: float, greater_is_better: bool
) -> GateDecision:
    """Promote when there is no champion yet, or the candidate beats it by at least ``margin``.

    ``margin`` is in the metric's own units; a candidate exactly ``margin`` better passes.
    """
    if champion is None:
        return GateDecision(True, "no champion yet", metric, candidate, None, margin)
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
