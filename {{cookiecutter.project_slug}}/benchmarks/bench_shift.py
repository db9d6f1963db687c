"""What monitoring catches, names right and estimates: windows x strengths x kinds, for both tasks.

``nox -s bench-shift`` (default 30 unshifted windows and 12 per shift, per window size) or
``nox -s bench-shift -- 100 40``; config overrides after the counts measure another setting,
e.g. ``nox -s bench-shift -- 30 12 monitoring.outcome_threshold=0.07``. For each task (this
project's and the other one, configured by overrides) a quick model is fitted on the sample
and its training reference written as training writes it; then windows of 300, 1,000 and
3,000 rows are drawn from the simulator, every row labelled, and judged as ``nox -s monitor``
judges a window: the column tests, the label assessment, the diagnosis and, for the
classifier, the estimate before labels (CBPE on the logged class probabilities).

Kinds and strengths:

- none: fresh rows from the training distribution (every alarm is a false alarm);
- covariate: 10 %, 30 % or all rows from the simulator's covariate-shifted regime;
- label shift: classification, the positive rate moved with P(inputs | outcome) unchanged
  (27 % -> 31 %, 35 %, 40 %); regression, the target scaled with the inputs unchanged (mean
  +5 %, +10 %, +20 %: the same customers stay longer);
- concept: the outcome of 5 %, 10 % or 20 % of rows inverted (classification: flipped;
  regression: mirrored around the mean).

Per row: the share of windows with a drift alarm (detected), with the kind named right, and the
estimate before labels against the metric the labels then realised (means over the windows, and
the share of windows whose realised metric fell inside the estimate's 95 % sampling band). A
second table gives each window size's minimum detectable effect. Windows run on two processes.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from {{ cookiecutter.package_name }} import drift, evaluation, profiling, reference, simulation
from {{ cookiecutter.package_name }}.config import Config, compose
from {{ cookiecutter.package_name }}.data import feature_columns, split
from {{ cookiecutter.package_name }}.monitoring import estimate, monitor
from {{ cookiecutter.package_name }}.monitoring.columns import compare_columns
from {{ cookiecutter.package_name }}.monitoring.labels import LABELLED, Coverage, assess_labels
from {{ cookiecutter.package_name }}.reference import PREDICTION
from {{ cookiecutter.package_name }}.serving.traffic import probability_column
from {{ cookiecutter.package_name }}.training.preprocessing import infer_features
from {{ cookiecutter.package_name }}.training.train import build_pipeline

SIZES = (300, 1000, 3000)
WORKERS = 2
TASKS = {
    "classification": [
        "task=classification", "model=random_forest",
        "model.estimator._target_=sklearn.ensemble.RandomForestClassifier",
        "++model.estimator.class_weight=balanced", "data.target=churned",
        "data.drop_columns=[lifetime_value]", "training.primary_metric=f1_macro",
        "training.greater_is_better=true", "training.min_primary_metric=0.6",
    ],
    "regression": [
        "task=regression", "model=hgb",
        "model.estimator._target_=sklearn.ensemble.HistGradientBoostingRegressor",
        "~model.estimator.class_weight", "data.target=lifetime_value", "data.drop_columns=[churned]",
        "training.primary_metric=rmse", "training.greater_is_better=false",
        "training.min_primary_metric=1000.0",
    ],
}  # fmt: skip
"""Overrides that make the other task out of this project's config (the model files are per task)."""
Draw = Callable[[int, int], pd.DataFrame]


@dataclass(frozen=True)
class Scenario:
    """A kind of shift at one strength, the kind a detection must name, and how to draw its windows."""

    kind: str
    strength: str
    expected: str
    draw: Draw


def fit(cfg: Config, folder: Path) -> tuple[object, reference.Reference]:
    """A quick model on the sample, and its training reference read back as monitoring reads it."""
    sample = simulation.make_customers(3000, seed=7)
    data = split(sample, cfg.data, stratify=cfg.task == evaluation.CLASSIFICATION)
    spec = infer_features(data.x_train, cfg.data)
    model = build_pipeline(cfg, spec).fit(data.x_train[spec.columns], data.y_train)
    scores = evaluation.score(cfg.task, model, data.x_test[spec.columns], data.y_test)
    trained = reference.Training(model, data.x_train[spec.columns], data.y_train, scores)
    reference.write_reference(cfg, trained, folder)
    return model, reference.read(folder / reference.REFERENCE_PROFILE, cfg)


def mixture(pool: pd.DataFrame, share: float) -> Draw:
    """Windows with ``share`` of their rows from the simulator's covariate-shifted regime."""

    def draw(rows: int, seed: int) -> pd.DataFrame:
        moved = int(share * rows)
        shifted = simulation.make_customers(max(moved, 1), seed=10_000 + seed, shift="covariate")[:moved]
        return pd.concat([pool.sample(rows - moved, random_state=seed), shifted], ignore_index=True)

    return draw


def positive_rate(pool: pd.DataFrame, target: str, rate: float) -> Draw:
    """Windows whose positive rate is ``rate``, each outcome's inputs as in training (label shift)."""
    positive, negative = pool[pool[target] == "yes"], pool[pool[target] == "no"]

    def draw(rows: int, seed: int) -> pd.DataFrame:
        k = np.random.default_rng(seed).binomial(rows, rate)
        drawn = [positive.sample(k, random_state=seed), negative.sample(rows - k, random_state=seed)]
        return pd.concat(drawn)

    return draw


def scaled(pool: pd.DataFrame, target: str, factor: float) -> Draw:
    """Windows whose target is ``factor`` times its value, inputs untouched (label shift in regression)."""

    def draw(rows: int, seed: int) -> pd.DataFrame:
        frame = pool.sample(rows, random_state=seed)
        return frame.assign(**{target: frame[target] * factor})

    return draw


def inverted(pool: pd.DataFrame, target: str, share: float) -> Draw:
    """Windows with the outcome of ``share`` of rows flipped (classes) or mirrored around the mean."""

    def draw(rows: int, seed: int) -> pd.DataFrame:
        frame = pool.sample(rows, random_state=seed).reset_index(drop=True)
        hit = np.random.default_rng(seed).random(rows) < share
        if not pd.api.types.is_numeric_dtype(frame[target]):
            frame.loc[hit, target] = np.where(frame.loc[hit, target] == "yes", "no", "yes")
        else:
            frame.loc[hit, target] = 2 * frame[target].mean() - frame.loc[hit, target]
        return frame

    return draw


def scenarios(cfg: Config) -> list[Scenario]:
    """Every kind at every strength for the task, the unshifted windows first."""
    target, pool = cfg.data.target, simulation.make_customers(60_000, seed=3)
    found = [Scenario("none", "-", "none", lambda rows, seed: pool.sample(rows, random_state=seed))]
    found += [
        Scenario("covariate", f"{s:.0%} of rows", "covariate drift", mixture(pool, s))
        for s in (0.1, 0.3, 1.0)
    ]
    if cfg.task == evaluation.CLASSIFICATION:
        rates = (0.31, 0.35, 0.4)
        found += [
            Scenario("label shift", f"27% -> {r:.0%}", "label shift", positive_rate(pool, target, r))
            for r in rates
        ]
    else:
        moves = (0.05, 0.1, 0.2)
        found += [
            Scenario("label shift", f"mean +{s:.0%}", "label shift", scaled(pool, target, 1 + s))
            for s in moves
        ]
    shares = (0.05, 0.1, 0.2)
    found += [
        Scenario("concept", f"{s:.0%} inverted", "concept drift", inverted(pool, target, s)) for s in shares
    ]
    return found


def logged(cfg: Config, model: object, frame: pd.DataFrame) -> pd.DataFrame:
    """The window as the service logs it: prediction, class probabilities, and the late label."""
    features = frame[feature_columns(frame, cfg.data)]
    found = pd.DataFrame({PREDICTION: np.asarray(model.predict(features))})  # type: ignore[attr-defined]
    if cfg.task == evaluation.CLASSIFICATION:
        probabilities = model.predict_proba(features)  # type: ignore[attr-defined]
        for position, label in enumerate(model.classes_):  # type: ignore[attr-defined]
            found[probability_column(label)] = probabilities[:, position]
    return found.assign(**{cfg.data.target: frame[cfg.data.target].to_numpy()})


def judge(cfg: Config, model: object, ref: reference.Reference, frame: pd.DataFrame) -> monitor.MonitorResult:
    """One labelled window, judged as ``monitor`` judges it: columns, estimate, labels, diagnosis."""
    logs = logged(cfg, model, frame)
    features = frame[feature_columns(frame, cfg.data)].reset_index(drop=True)
    view = profiling.profile(features.assign(**{PREDICTION: logs[PREDICTION]}))
    roles = {name: "feature" for name in ref.features} | {PREDICTION: "prediction"}
    result = monitor.MonitorResult(
        generated_at="", window_start="", window_end="", files=1, rows=len(frame), clients={},
        excluded_clients=[], reference={}, missing_columns=[], timeline=[],
        columns=compare_columns(cfg.monitoring, ref.view, view, roles, monitor.contract_ranges(cfg)),
    )  # fmt: skip
    training = {name: float(value) for name, value in ref.meta["metrics"].items() if value is not None}
    before = estimate.estimate(logs, training, cfg.monitoring.max_metric_drop, cfg.monitoring.min_labels)
    labels_view = profiling.profile(logs[[cfg.data.target]])
    result.performance, label_columns = assess_labels(cfg, ref, logs, labels_view)
    result.columns = [*result.columns, *label_columns]
    result.labels = Coverage(LABELLED, len(logs), len(logs), estimate=before)
    return result


@dataclass(frozen=True)
class Outcome:
    """What one window showed: alarm, kind, the estimate against the realised metric, the label's MDE."""

    detected: bool
    kind: str
    estimated: float | None
    realised: float | None
    in_band: bool | None
    estimate_alert: bool
    label_detectable: float | None


def run_cell(
    task: str, name: str, size: int, seeds: range, overrides: list[str]
) -> tuple[str, str, int, list[Outcome]]:
    """Every window of one scenario and size (a worker process fits its own model once per task)."""
    cfg, model, ref = _fitted(task, overrides)
    scenario = next(item for item in scenarios(cfg) if f"{item.kind} {item.strength}" == name)
    outcomes = []
    for seed in seeds:
        result = judge(cfg, model, ref, scenario.draw(size, seed))
        perf = result.performance
        checked = perf.estimate if perf is not None else None
        label = next((c for c in result.columns if c.role == "label"), None)
        outcomes.append(
            Outcome(
                result.drift_detected, result.diagnosis[0],
                checked.value if checked else None, checked.realised if checked else None,
                checked.within_band if checked else None, bool(checked and checked.alert),
                label.detectable if label else None,
            )
        )  # fmt: skip
    return task, name, size, outcomes


_FITTED: dict[str, tuple[Config, object, reference.Reference]] = {}
_SCRATCH = tempfile.mkdtemp(prefix="bench-shift-")


def _fitted(task: str, overrides: list[str]) -> tuple[Config, object, reference.Reference]:
    """This process's model and reference for the task, fitted once (seeded: the same in every process)."""
    if task not in _FITTED:
        threadpool_limits(1)  # one thread per process: two processes on two cores, OpenMP idle-spinning none
        own = compose(overrides).task == task  # this project's task: its own model and metric as configured
        cfg = compose([*overrides] if own else [*TASKS[task], *overrides])
        folder = Path(_SCRATCH) / task
        folder.mkdir(parents=True, exist_ok=True)
        _FITTED[task] = (cfg, *fit(cfg, folder))
    return _FITTED[task]


def _mean(values: list[float | None]) -> str:
    kept = [value for value in values if value is not None]
    return f"{np.mean(kept):.3f}" if kept else "-"


def _share(flags: list[bool | None]) -> str:
    kept = [flag for flag in flags if flag is not None]
    return f"{np.mean(kept):.0%}" if kept else "-"


def row(task: str, scenario: Scenario, size: int, outcomes: list[Outcome]) -> list[str]:
    """One table row: detection, right kind, estimate against realised."""
    count = len(outcomes)
    detected = sum(item.detected for item in outcomes)
    right = sum(item.kind == scenario.expected for item in outcomes)
    return [
        task, scenario.kind, scenario.strength, f"{size:,}", str(count), f"{detected / count:.0%}",
        f"{right / count:.0%}", _mean([o.estimated for o in outcomes]), _mean([o.realised for o in outcomes]),
        _share([o.in_band for o in outcomes]),
        _share([o.estimate_alert if o.estimated is not None else None for o in outcomes]),
    ]  # fmt: skip


def markdown(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join([*lines, *("| " + " | ".join(cells) + " |" for cells in rows)])


def detectable_rows(task: str, ref: reference.Reference, cfg: Config) -> list[list[str]]:
    """Per window size: the smallest input move (KS) and outcome move this window flags in 80 % of windows."""
    found = []
    features = len(ref.features) + 1  # the inputs and the prediction are one family
    alpha = cfg.monitoring.drift_alpha / 2
    rows = profiling.row_count(ref.view)
    target = ref.view.get_column(str(ref.meta["target"]))
    for size in SIZES:
        ks = drift.detectable_ks(rows, size, cfg.monitoring.drift_threshold, alpha / features)
        outcome = "-"
        if task == evaluation.CLASSIFICATION and target is not None:
            share = profiling.frequencies(target).get("yes", 0.0)
            distance = drift.detectable_hellinger(rows, size, 2, cfg.monitoring.outcome_threshold, alpha)
            low, high = drift.share_bounds(share, distance)
            outcome = f"Hellinger {distance:.3f}: positive rate {share:.1%} -> <{low:.1%} or >{high:.1%}"
        elif target is not None:
            outcome = (
                f"target: KS {drift.detectable_ks(rows, size, cfg.monitoring.outcome_threshold, alpha):.3f}"
            )
        found.append([task, f"{size:,}", f"KS {ks:.3f}", outcome])
    return found


def sweep(
    null_windows: int, shifted_windows: int, overrides: list[str]
) -> tuple[list[list[str]], list[list[str]]]:
    """Both tasks, every scenario and size, spread over :data:`WORKERS` processes."""
    jobs = []
    with ProcessPoolExecutor(WORKERS) as pool:
        for task in TASKS:
            cfg, _, _ = _fitted(task, overrides)
            for scenario in scenarios(cfg):
                count = null_windows if scenario.kind == "none" else shifted_windows
                name = f"{scenario.kind} {scenario.strength}"
                for size in SIZES:
                    halves = (range(0, count, 2), range(1, count, 2))
                    jobs += [pool.submit(run_cell, task, name, size, seeds, overrides) for seeds in halves]
        done: dict[tuple[str, str, int], list[Outcome]] = {}
        for job in jobs:
            task, name, size, outcomes = job.result()
            done.setdefault((task, name, size), []).extend(outcomes)
    table, limits = [], []
    for task in TASKS:
        cfg, _, ref = _fitted(task, overrides)
        for scenario in scenarios(cfg):
            for size in SIZES:
                outcomes = done[(task, f"{scenario.kind} {scenario.strength}", size)]
                table.append(row(task, scenario, size, outcomes))
        limits += detectable_rows(task, ref, cfg)
    return table, limits


def main(null_windows: int, shifted_windows: int, overrides: list[str]) -> None:
    """Run the sweep and print both tables."""
    started = datetime.now(UTC)
    print(f"bench-shift: {null_windows} unshifted windows, {shifted_windows} per shift, per size", flush=True)
    print(f"overrides: {overrides or 'none'}", flush=True)
    table, limits = sweep(null_windows, shifted_windows, overrides)
    header = [
        "task", "kind", "strength", "rows", "windows", "detected", "right kind",
        "estimate", "realised", "realised in band", "estimate alerts",
    ]  # fmt: skip
    print()
    print(markdown(header, table))
    print()
    print(markdown(["task", "rows", "smallest input move (80% of windows)", "smallest outcome move"], limits))
    print(f"\n{(datetime.now(UTC) - started).total_seconds():.0f} s")


if __name__ == "__main__":
    counts = [int(value) for value in sys.argv[1:] if value.isdigit()][:2]
    null_count, shifted_count = counts + [30, 12][len(counts) :]
    main(null_count, shifted_count, [value for value in sys.argv[1:] if not value.isdigit()])
