"""Model selection: candidate versus champion on the same held-out data, and the gate that decides.

:func:`decide` is the pure decision (a table in its test); :func:`compare` scores both registry
aliases on today's test split and hands the scores to it. ``nox -s compare`` writes the result
to ``reports/training/gate.json`` for CI to act on.

Where this registry has no champion (a pull request's job starts an empty one, and gets no
access to the tracking server), the candidate is gated against the held-out scores that
``deploy/production.yaml`` records for the model production serves: the release that proposed
that model recorded them, with a digest of its test rows, so the page can say whether the two
numbers come from the same rows.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import pandas as pd
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion

from .. import evaluation, registry
from ..config import Config, resolve
from ..data import DataError, Split, load_dataset, split
from ..deployment import state
from ..reports import jsonfile
from . import threads

REGISTRY, RECORDED = "registry", jsonfile.RECORDED  # where the champion's score came from
PRODUCTION = "deploy/production.yaml"  # how the page names the file the scores are recorded in


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
    candidate_metrics: dict[str, float] = field(default_factory=dict)  # every metric, recorded on promotion
    test_rows: int | None = None
    test_digest: str | None = None  # see :func:`rows_digest`
    champion_source: str | None = None  # REGISTRY (scored here), RECORDED (production's file), None
    champion_test_rows: int | None = None
    champion_test_digest: str | None = None

    def write(self, path: str | Path) -> Path:
        """Write the decision as JSON (CI reads ``promote``)."""
        return jsonfile.write_json(asdict(self), path)


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
    """Score both aliases on today's test split and decide whether the candidate may go live.

    Without a champion in this registry, the candidate meets the scores production's file records
    (:func:`against_recorded`), and where none are recorded the decision says so. Scoring runs
    within ``training.threads``, as training does.
    """
    with threads.limited(cfg.training.threads):
        return _compare(cfg)


def _compare(cfg: Config) -> GateDecision:
    """:func:`compare` inside its thread limit."""
    client = registry.connect(cfg.mlflow)
    name, metric = cfg.mlflow.model_name, cfg.training.primary_metric
    candidate = registry.version_by_alias(client, name, registry.CANDIDATE)
    if candidate is None:
        raise DataError("no model has the alias 'candidate'; run `nox -s train` first")
    champion = registry.version_by_alias(client, name, registry.CHAMPION)
    data = split(load_dataset(cfg.data), cfg.data, stratify=cfg.task == evaluation.CLASSIFICATION)
    measured = scores(cfg, data, registry.CANDIDATE)
    count, digest = len(data.x_test), rows_digest(data)
    if champion is None:
        decision = against_recorded(cfg, measured[metric], digest)
    else:
        decision = decide(
            metric,
            measured[metric],
            scores(cfg, data, registry.CHAMPION)[metric],
            cfg.training.promotion_margin,
            cfg.training.greater_is_better,
            same_as_champion=same_lineage(client, name, candidate, champion),
        )
        decision = replace(
            decision,
            champion_version=str(champion.version),
            champion_source=REGISTRY,
            champion_test_rows=count,
            champion_test_digest=digest,
        )
    return replace(
        decision,
        candidate_version=str(candidate.version),
        candidate_metrics=measured,
        test_rows=count,
        test_digest=digest,
    )


def scores(cfg: Config, data: Split, alias: str) -> dict[str, float]:
    """Every metric of the model behind ``alias`` on the test split."""
    model = registry.load(cfg.mlflow.model_name, alias)
    if missing := [c for c in model.feature_names_in_ if c not in data.x_test.columns]:
        raise DataError(
            f"the {alias} model needs columns {missing} that {cfg.data.path} does not have as "
            "features: the table's schema changed since it was trained; a model on the new "
            "schema goes live through a release of its own, not this comparison"
        )
    return evaluation.score(cfg.task, model, data.x_test[list(model.feature_names_in_)], data.y_test)


def rows_digest(data: Split) -> str:
    """SHA-256 of the test split as CSV (row labels, features, target): equal digests, same rows.

    The row labels are the table's own, so the digest also changes when the split picks other
    rows of an unchanged table (another ``data.split_seed`` or ``data.test_size``).
    """
    frame = pd.concat([data.x_test, data.y_test], axis=1)
    return hashlib.sha256(frame.to_csv(lineterminator="\n").encode()).hexdigest()


def recorded_champion(cfg: Config) -> tuple[str, state.Scores | None] | None:
    """Production's live model version and the scores its file records; None when nothing is live.

    A project without the file has no production to compare with; a file that does not parse is
    an error (one line naming the field), not a silent "no champion".
    """
    path = resolve(cfg.deploy.desired_dir) / "production.yaml"
    return state.load(path).live_scores() if path.is_file() else None


def against_recorded(cfg: Config, candidate: float, digest: str) -> GateDecision:
    """Gate ``candidate`` against the held-out score recorded for production's live model."""
    metric, margin = cfg.training.primary_metric, cfg.training.promotion_margin
    found = recorded_champion(cfg)
    first = decide(metric, candidate, None, margin, cfg.training.greater_is_better)
    if found is None:
        return replace(first, reason=f"no champion yet: {PRODUCTION} names no live model")
    version, record = found
    if record is None or metric not in record.metrics:
        return replace(first, reason=unrecorded(cfg, version, record), champion_version=version)
    decision = decide(metric, candidate, record.metrics[metric], margin, cfg.training.greater_is_better)
    rows = "the same held-out rows" if record.test_digest == digest else "other held-out rows"
    return replace(
        decision,
        reason=f"{decision.reason}, against the score {PRODUCTION} records for v{version} on {rows}",
        champion_version=version,
        champion_source=RECORDED,
        champion_test_rows=record.test_rows,
        champion_test_digest=record.test_digest,
    )


def unrecorded(cfg: Config, version: str, record: state.Scores | None) -> str:
    """Why there is nothing to compare with, in one sentence that names what is missing."""
    where = "on the tracking server" if registry.is_shared(cfg.mlflow) else "here (a local store)"
    metric = cfg.training.primary_metric
    missing = (
        f"records no held-out scores for its live model v{version} (the release that proposes a "
        "model records them)"
        if record is None
        else f"records v{version}'s {', '.join(sorted(record.metrics))}, not {metric}"
    )
    return (
        f"no champion to compare with: the registry {where} has no 'champion' alias, "
        f"and {PRODUCTION} {missing}"
    )


def same_lineage(client: MlflowClient, name: str, candidate: ModelVersion, champion: ModelVersion) -> bool:
    """Both versions trained on the same data digest with the same config digest."""
    ours = registry.lineage(client, name, str(candidate.version))
    theirs = registry.lineage(client, name, str(champion.version))
    keys = (ours.data_digest, ours.config_digest)
    return all(keys) and keys == (theirs.data_digest, theirs.config_digest)
