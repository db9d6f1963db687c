"""Production monitoring: one window of served traffic held against the model's training reference.

The service writes one whylogs profile per window per worker (features plus ``prediction``).
:func:`monitor` merges the profiles of the configured window (:mod:`.window`) and compares them
column by column with the training reference (:mod:`..reference`): distribution drift, missing
values, types and unseen categories (:mod:`.columns`), the prediction mix, and, once ground-truth
labels arrive, the label mix and the realised metric against the training metric (:mod:`.labels`).
The latest time bucket is also held against the one before it (:func:`since_previous`).
:mod:`.dashboards` draws the result, :mod:`.health` reads the service's metrics.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .. import drift, profiling, reference, store, validation
from ..config import Config, MonitoringConfig, resolve
from ..data import DataError
from ..deployment import state
from ..profiling import DatasetProfileView, ProfileError
from ..reference import PREDICTION, REFERENCE_PROFILE, Reference
from ..serving import packaging
from . import rollup
from .columns import ColumnReport, compare_columns, thresholds
from .health import Health, profile_failures_line
from .labels import Coverage, Performance, assess_labels, labelled_window
from .window import future_files, load_window, prediction_point, window_bounds, window_files

ROLES = ("feature", "prediction", "label")
ALERT_KINDS = ("drift", "data-quality", "unreadable", "service")  # worst first: the page's verdict


@dataclass
class MonitorResult:
    """Everything the reports show and ``monitor.json`` holds."""

    generated_at: str
    window_start: str
    window_end: str
    files: int
    rows: int
    clients: dict[str, int]
    excluded_clients: list[str]
    reference: dict[str, Any]
    columns: list[ColumnReport]
    missing_columns: list[str]
    timeline: list[dict[str, Any]]
    labels: Coverage = field(default_factory=lambda: Coverage("not assessed"))
    unreadable_files: dict[str, str] = field(default_factory=dict)
    rolled_up: dict[str, str] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    future_files: list[str] = field(default_factory=list)
    performance: Performance | None = None
    health: Health | None = None

    @property
    def findings(self) -> dict[str, list[str]]:
        """Every finding a person should look at, by kind (:data:`ALERT_KINDS`, worst first).

        ``drift``: a column's distribution moved (inputs, predictions, labels) or the realised
        metric fell. ``data-quality``: the data itself broke (a column missing, missing values,
        a type change, new categories, values outside the contract, files stamped in the future).
        ``unreadable``: files skipped because they cannot be read (a torn upload), which says
        nothing about the traffic. ``service``: error rate, latency, and profiles the service
        failed to write (traffic monitoring cannot see yet); it never retrains either.
        """
        drift_found: list[str] = []
        quality = [f"{name}: column missing from production profiles" for name in self.missing_columns]
        for column in self.columns:
            moved = f"{column.column}: {column.role} drift "  # the distance's own alert (columns.py)
            drift_found += [alert for alert in column.alerts if alert.startswith(moved)]
            quality += [alert for alert in column.alerts if not alert.startswith(moved)]
        if self.performance and self.performance.degraded:
            drift_found.append(self._performance_alert(self.performance))
        guess = self.labels.estimate
        if guess is not None and guess.alert and not (self.performance and self.performance.enough_labels):
            drift_found.append(f"performance estimate: {guess.line()}")  # labels, once judged, decide
        if self.future_files:
            quality.append(
                f"profiles: {len(self.future_files)} files stamped in the future (a writer's clock?)"
            )
        unreadable = len(self.unreadable_files)
        found = {
            "drift": drift_found,
            "data-quality": quality,
            "unreadable": [f"profiles: {unreadable} unreadable files skipped"] if unreadable else [],
            "service": self.health.alerts if self.health else [],
        }
        return {kind: items for kind, items in found.items() if items}

    @staticmethod
    def _performance_alert(perf: Performance) -> str:
        """The judged metric against training, with its interval and how much worse."""
        nan = float("nan")
        realised, trained = (
            perf.metrics.get(perf.judged_metric, nan),
            perf.training.get(perf.judged_metric, nan),
        )
        low, high = perf.interval
        return (
            f"performance: {perf.judged_metric} {realised:.3f} (95% {low:.3f}-{high:.3f}, "
            f"{perf.labelled:,} labels) vs {trained:.3f} at training ({perf.relative_drop:.0%} worse)"
        )

    @property
    def alerts(self) -> list[str]:
        """Every finding, the worst kind first: drift, data quality, unreadable files, service."""
        return [alert for items in self.findings.values() for alert in items]

    @property
    def alert_kinds(self) -> list[str]:
        """The kinds of finding this window raised, worst first; empty when all is quiet."""
        return list(self.findings)

    @property
    def drift_detected(self) -> bool:
        """A distribution moved or the metric fell; never a data-quality finding or an unreadable file.

        Only drift means the model no longer fits the traffic, so only drift starts retraining: a
        torn file says nothing about the traffic, and retraining on broken data (missing values, a
        changed type, an upstream bug's new category) would teach the model the bug.
        """
        return "drift" in self.findings

    @property
    def diagnosis(self) -> tuple[str, list[str]]:
        """The kind of drift the evidence points to, and the evidence, one line each.

        Inputs moved: covariate drift (the model sees data unlike its training). Inputs held but
        the metric fell, its whole interval beyond the allowed drop: concept drift (the input ->
        outcome relation changed; the outcome mix may move with it), unless the relation held
        (regression: R^2 after refitting truth on the prediction by a line stayed at training's),
        when the outcome's level or scale moved: label shift. Inputs held, metric held, outcome
        mix moved: label shift. Only the predictions moved: prediction drift. Nothing
        significant: none.
        """
        moved = {role: [c.column for c in self.columns if c.role == role and c.drifted] for role in ROLES}
        perf = self.performance
        evidence = [
            f"inputs: {', '.join(moved['feature']) or 'none'} moved beyond noise",
            f"predictions: {'mix moved' if moved['prediction'] else 'mix held'}",
            f"labels: {self.labels.line()}",
        ]
        if perf is not None:
            low, high = perf.interval
            judged = "judged" if perf.enough_labels else "too few labels to judge"
            evidence.append(f"label mix: {'moved' if moved['label'] else 'held'}")
            trained = perf.training.get(perf.judged_metric, float("nan"))
            interval = f"95% interval {low:.3f}-{high:.3f} vs {trained:.3f} at training"
            evidence.append(f"{perf.judged_metric}: {interval} ({judged})")
            evidence.append(f"smallest drop these labels can confirm: {perf.detectable_drop:.0%}")
            evidence += [perf.relation_line()] if perf.recalibrated_r2 is not None else []
        if moved["feature"]:
            return "covariate drift", evidence
        if perf is not None and perf.degraded and not perf.relation_held:
            return "concept drift", evidence
        if moved["label"] or (perf is not None and perf.degraded):
            return "label shift", evidence
        if moved["prediction"]:
            return "prediction drift", evidence
        return "none", evidence

    @property
    def concept_drift(self) -> bool:
        """Worse while inputs and outcome mix held: the input -> outcome relation changed."""
        return self.diagnosis[0] == "concept drift"

    @property
    def drifted_columns(self) -> list[str]:
        """Columns whose distribution moved past their threshold."""
        return [column.column for column in self.columns if column.drifted]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, with the derived verdicts spelled out for machines."""
        kind, evidence = self.diagnosis
        return asdict(self) | {
            "drift_detected": self.drift_detected,
            "alert_kinds": self.alert_kinds,
            "drift_kind": kind,
            "evidence": evidence,
            "concept_drift": kind == "concept drift",
            "drifted_columns": self.drifted_columns,
            "alerts": self.alerts,
        }


@dataclass(frozen=True)
class Comparison:
    """A result plus the merged profiles it came from (the charts draw from the sketches)."""

    result: MonitorResult
    reference: Reference
    current: DatasetProfileView
    labels: DatasetProfileView | None = None


def bento_reference(cfg: Config, bento: str) -> Path:
    """``reference/`` inside a bento; ``live`` names the bento live in deploy/production.yaml."""
    if bento == "live":
        desired = state.load(resolve(cfg.deploy.desired_dir) / "production.yaml")
        release = desired.release(desired.live)
        if release is None:
            raise DataError("deploy/production.yaml has no live release yet; promote a bento first")
        bento = release.bento
    return packaging.bento_reference(bento)


def load_reference(cfg: Config) -> Reference:
    """The configured reference file, the one a bento carries, or the registry model's own."""
    if cfg.monitoring.reference_profile:
        path = resolve(cfg.monitoring.reference_profile)
    elif cfg.monitoring.reference_bento:
        path = bento_reference(cfg, cfg.monitoring.reference_bento) / REFERENCE_PROFILE
    else:
        report_dir = resolve(cfg.monitoring.report_dir)
        folder = reference.fetch_reference(cfg, cfg.monitoring.model_alias, report_dir)
        path = folder / REFERENCE_PROFILE
    return reference.read(path, cfg)


def monitor(cfg: Config, health: Health | None = None, now: datetime | None = None) -> Comparison:
    """Merge the window, compare it with the reference, and assess labels when they exist."""
    logging.getLogger("whylogs").setLevel(logging.WARNING)  # it logs every profile read at INFO
    with tempfile.TemporaryDirectory(prefix="monitor-window-") as scratch:  # object-store downloads
        return compare_window(cfg, health, now, Path(scratch))


def compare_window(cfg: Config, health: Health | None, now: datetime | None, scratch: Path) -> Comparison:
    """:func:`monitor` with a folder for the window's files when they come from an object store."""
    reference = load_reference(cfg)
    start, end = window_bounds(cfg.monitoring, now)
    rolled = roll_up(cfg.monitoring, now or datetime.now(UTC), scratch) if cfg.monitoring.rollups else {}
    excluded = cfg.monitoring.exclude_clients
    paths = window_files(cfg.monitoring.profile_dir, start, end, {".bin"}, scratch, exclude_clients=excluded)
    if not paths:
        raise ProfileError(no_profiles(cfg.monitoring, start, end, health))
    loaded = load_window(paths)
    current, clients, unreadable = loaded.view, loaded.clients, loaded.unreadable
    if unreadable and cfg.monitoring.fail_on_unreadable:
        named = "; ".join(f"{name}: {reason}" for name, reason in sorted(unreadable.items())[:5])
        raise ProfileError(
            f"{len(unreadable)} unreadable profiles ({named}); move them aside or set "
            "monitoring.fail_on_unreadable=false to report them and go on"
        )
    roles = {name: "feature" for name in reference.features} | {PREDICTION: "prediction"}
    columns = compare_columns(cfg.monitoring, reference.view, current, roles, contract_ranges(cfg))
    columns = since_previous(loaded.buckets, columns, cfg.monitoring)
    present = set(current.get_columns())
    result = MonitorResult(
        generated_at=datetime.now(UTC).isoformat(timespec="seconds"),
        window_start=start.isoformat(timespec="seconds"),
        window_end=end.isoformat(timespec="seconds"),
        files=len(paths),
        rows=profiling.row_count(current),
        clients=clients,
        excluded_clients=list(excluded),
        reference={"source": reference.source, "rows": profiling.row_count(reference.view)}
        | _model_info(reference),
        columns=columns,
        missing_columns=[name for name in reference.features if name not in present],
        timeline=trend(loaded.buckets, reference, cfg.monitoring),
        unreadable_files=unreadable,
        rolled_up=rolled,
        versions=loaded.versions,
        future_files=[] if cfg.monitoring.window_end else future_files(cfg.monitoring.profile_dir, end),
        health=health,
    )
    result.labels, joined = labelled_window(cfg, start, end, scratch, reference)
    result.unreadable_files |= result.labels.unreadable
    if joined is None:
        return Comparison(result, reference, current)
    labels_view = profiling.profile(joined[[str(reference.meta["target"])]])
    result.performance, label_columns = assess_labels(cfg, reference, joined, labels_view)
    result.columns = [*result.columns, *label_columns]
    return Comparison(result, reference, current, labels_view)


def no_profiles(cfg: MonitoringConfig, start: datetime, end: datetime, health: Health | None) -> str:
    """Why a window has no profile, with the service's failed writes first when it counts some."""
    empty = f"{cfg.profile_dir}: no profiles between {start:%Y-%m-%d %H:%M} and {end:%Y-%m-%d %H:%M} UTC"
    if health is not None and health.profile_write_failures:
        return f"{empty}, and the service says {profile_failures_line(health.profile_write_failures)}"
    return f"{empty}; widen monitoring.window_hours or run `nox -s simulate-drift`"


def roll_up(cfg: MonitoringConfig, now: datetime, scratch: Path) -> dict[str, str]:
    """Roll up the finished hours of profiles and, when the folder exists, of prediction logs."""
    rolled = rollup.roll_up(cfg.profile_dir, now, scratch)
    logs = cfg.prediction_log_dir
    if store.is_remote(logs) or store.local(logs).is_dir():
        rolled |= rollup.roll_up_predictions(logs, now, scratch)
    return rolled


def trend(
    buckets: dict[datetime, DatasetProfileView], reference: Reference, cfg: MonitoringConfig
) -> list[dict[str, Any]]:
    """Per bucket, oldest first: time, rows, the prediction mix, and each column's drift score.

    Scores are distances only (no test): a bucket is small, and the trend shows when a move
    started, while the window as a whole decides whether it is real.
    """
    columns = [*reference.features, PREDICTION]
    points = []
    for when, view in sorted(buckets.items()):
        scores = drift.compare(
            reference.view, view, columns, cfg.drift_threshold, distances=cfg.column_distances
        )
        point = prediction_point(when, view)
        point["scores"] = {found.column: round(found.statistic, 4) for found in scores}
        points.append(point)
    return points


def since_previous(
    buckets: dict[datetime, DatasetProfileView], columns: list[ColumnReport], cfg: MonitoringConfig
) -> list[ColumnReport]:
    """The columns with the latest bucket's distance from the bucket before it (window over window).

    Against the reference, a column that moved days ago and one that jumped in the last hour look
    alike; against the previous bucket, only the jump shows. Measured with each column's distance,
    threshold and test, from the two buckets' profiles; shown, not alerted on, since the window
    against the reference is what decides.
    """
    if len(buckets) < 2:
        return columns
    previous, latest = (buckets[when] for when in sorted(buckets)[-2:])
    roles = {column.column: column.role for column in columns if column.role != "label"}
    found = drift.compare(
        previous, latest, list(roles), cfg.drift_threshold, thresholds(cfg, roles),
        alpha=cfg.drift_alpha / 2, distances=cfg.column_distances,
    )  # fmt: skip
    moves = {item.column: item for item in found}
    return [_with_move(column, moves.get(column.column)) for column in columns]


def _with_move(column: ColumnReport, move: drift.ColumnDrift | None) -> ColumnReport:
    """The column report with its window-over-window distance and verdict, when it was measured."""
    if move is None:
        return column
    return replace(column, vs_previous=round(move.statistic, 4), moved_since_previous=move.drifted)


def contract_ranges(cfg: Config) -> dict[str, tuple[float | None, float | None]]:
    """``[min, max]`` of each numeric column of the data contract (none without a contract)."""
    path = resolve(cfg.validation.contract_path)
    if not path.is_file():
        return {}
    columns = validation.Contract.load(path).columns
    return {name: (spec.min, spec.max) for name, spec in columns.items() if spec.kind == validation.NUMERIC}


def _model_info(reference: Reference) -> dict[str, Any]:
    """Model name and version when the reference came from the registry."""
    model = reference.meta.get("model", {})
    return {"model": model.get("name"), "version": model.get("version")} if model else {}
