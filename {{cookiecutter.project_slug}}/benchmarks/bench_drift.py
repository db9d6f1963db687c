"""How often monitoring cries wolf, and how often it catches a real move: a calibration sweep.

``nox -s bench-drift`` (default 100 null windows and 40 per shift) or ``nox -s bench-drift --
200 60``; config overrides after the counts measure another setting, e.g. ``nox -s bench-drift --
100 40 '+monitoring.column_distances={monthly_charges: wasserstein}'``. A quick model is fitted
on the sample and its training reference written as training writes it. Then windows of 300 and
3,000 rows are drawn from the simulator and judged exactly as ``nox -s monitor`` judges a window
(the same column tests, label assessment and diagnosis):

- null: fresh rows from the training distribution (every alarm is a false alarm);
- covariate 30 %: 30 % of rows from the covariate-shifted regime;
- label mix: the outcome moved with P(inputs | outcome) unchanged (classification: the positive
  rate to 40 % and to 15 %; regression: 30 % of rows from the simulator's label shift);
- concept 20 %: the outcome of 20 % of rows inverted (classification: flipped; regression:
  mirrored around the mean), with every row labelled.

Targets: false alarms <= 1 % at both sizes; detection >= 95 % with the kind named right.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from {{ cookiecutter.package_name }} import evaluation, profiling, reference, simulation
from {{ cookiecutter.package_name }}.config import Config, compose
from {{ cookiecutter.package_name }}.data import feature_columns, split
from {{ cookiecutter.package_name }}.monitoring import monitor
from {{ cookiecutter.package_name }}.monitoring.columns import compare_columns
from {{ cookiecutter.package_name }}.monitoring.labels import LABELLED, Coverage, assess_labels
from {{ cookiecutter.package_name }}.reference import PREDICTION
from {{ cookiecutter.package_name }}.reports import tables
from {{ cookiecutter.package_name }}.training.preprocessing import infer_features
from {{ cookiecutter.package_name }}.training.train import build_pipeline

SIZES = (300, 3000)
Window = Callable[[int, int], pd.DataFrame]


def fit(cfg: Config, folder: Path) -> tuple[object, reference.Reference]:
    """A quick forest on the sample, and its training reference read back as monitoring reads it."""
    sample = simulation.make_customers(3000, seed=7)
    data = split(sample, cfg.data, stratify=cfg.task == "classification")
    spec = infer_features(data.x_train, cfg.data)
    model = build_pipeline(cfg, spec).fit(data.x_train[spec.columns], data.y_train)
    scores = evaluation.score(cfg.task, model, data.x_test[spec.columns], data.y_test)
    reference.write_reference(
        cfg, reference.Training(model, data.x_train[spec.columns], data.y_train, scores), folder
    )
    return model, reference.read(folder / reference.REFERENCE_PROFILE, cfg)


def windows(cfg: Config) -> dict[str, tuple[Window, str]]:
    """Scenario name -> (rows, seed) -> labelled frame, and the kind a detection must name."""
    target, pool = cfg.data.target, simulation.make_customers(60_000, seed=3)

    def null(rows: int, seed: int) -> pd.DataFrame:
        return pool.sample(rows, random_state=seed)

    def mixture(shift: simulation.Shift, share: float) -> Window:
        def draw(rows: int, seed: int) -> pd.DataFrame:
            moved = int(share * rows)
            shifted = simulation.make_customers(moved, seed=10_000 + seed, shift=shift)
            return pd.concat([pool.sample(rows - moved, random_state=seed), shifted], ignore_index=True)

        return draw

    def positive_rate(rate: float) -> Window:
        positive, negative = pool[pool[target] == "yes"], pool[pool[target] == "no"]

        def draw(rows: int, seed: int) -> pd.DataFrame:
            k = np.random.default_rng(seed).binomial(rows, rate)
            return pd.concat(
                [positive.sample(k, random_state=seed), negative.sample(rows - k, random_state=seed)]
            )

        return draw

    def inverted(share: float) -> Window:
        def draw(rows: int, seed: int) -> pd.DataFrame:
            frame = pool.sample(rows, random_state=seed).reset_index(drop=True)
            hit = np.random.default_rng(seed).random(rows) < share
            if cfg.task == evaluation.CLASSIFICATION:
                frame.loc[hit, target] = np.where(frame.loc[hit, target] == "yes", "no", "yes")
            else:
                frame.loc[hit, target] = 2 * frame[target].mean() - frame.loc[hit, target]
            return frame

        return draw

    found: dict[str, tuple[Window, str]] = {
        "null": (null, "none"),
        "covariate 30%": (mixture("covariate", 0.3), "covariate drift"),
    }
    if cfg.task == evaluation.CLASSIFICATION:
        found |= {
            "positive rate 40%": (positive_rate(0.40), "label shift"),
            "positive rate 15%": (positive_rate(0.15), "label shift"),
        }
    else:
        found["label 30%"] = (mixture("label", 0.3), "label shift")
    found["concept 20%"] = (inverted(0.2), "concept drift")
    return found


def judge(cfg: Config, model: object, ref: reference.Reference, frame: pd.DataFrame) -> monitor.MonitorResult:
    """One window, judged as ``monitor`` judges it: columns, labels, diagnosis."""
    features = feature_columns(frame, cfg.data)
    predicted = np.asarray(model.predict(frame[features]))  # type: ignore[attr-defined]
    view = profiling.profile(frame[features].assign(**{PREDICTION: predicted}))
    roles = {name: "feature" for name in ref.features} | {PREDICTION: "prediction"}
    result = monitor.MonitorResult(
        generated_at="", window_start="", window_end="", files=1, rows=len(frame), clients={},
        excluded_clients=[], reference={}, missing_columns=[], timeline=[],
        columns=compare_columns(cfg.monitoring, ref.view, view, roles, monitor.contract_ranges(cfg)),
    )  # fmt: skip
    joined = pd.DataFrame({PREDICTION: predicted, cfg.data.target: frame[cfg.data.target].to_numpy()})
    labels_view = profiling.profile(joined[[cfg.data.target]])
    result.performance, label_columns = assess_labels(cfg, ref, joined, labels_view)
    result.columns = [*result.columns, *label_columns]
    result.labels = Coverage(LABELLED, len(joined), len(joined))
    return result


def sweep(null_windows: int, shifted_windows: int, overrides: list[str]) -> list[list[str]]:
    """One row per scenario and window size: alarms, right kind, and the kinds named."""
    cfg = compose(overrides)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        model, ref = fit(cfg, Path(scratch))
        for name, (draw, kind) in windows(cfg).items():
            count = null_windows if name == "null" else shifted_windows
            for size in SIZES:
                kinds = [judge(cfg, model, ref, draw(size, seed)).diagnosis[0] for seed in range(count)]
                alarms = sum(found != "none" for found in kinds)
                right = sum(found == kind for found in kinds)
                named = ", ".join(f"{k} {n}" for k, n in pd.Series(kinds).value_counts().items())
                rate = alarms / count
                rows.append([name, f"{size:,}", str(count), f"{rate:.0%}", f"{right / count:.0%}", named])
                print(f"  {name:<18} {size:>6,} rows: {alarms}/{count} alarmed ({named})", flush=True)
    return rows


def main(null_windows: int, shifted_windows: int, overrides: list[str]) -> None:
    """Run the sweep and print the table."""
    started = datetime.now(UTC)
    cfg = compose(overrides)
    print(f"bench-drift ({cfg.task}): {null_windows} null windows, {shifted_windows} per shift")
    named = {column: str(distance) for column, distance in cfg.monitoring.column_distances.items()}
    print(f"distances: {named or 'defaults (KS for numbers, Hellinger for categories)'}")
    table = sweep(null_windows, shifted_windows, overrides)
    print()
    print(tables.table(["scenario", "rows", "windows", "alarmed", "right kind", "kinds named"], table))
    print(f"\n{(datetime.now(UTC) - started).total_seconds():.0f} s")


if __name__ == "__main__":
    counts = [int(value) for value in sys.argv[1:] if value.isdigit()][:2]
    null_count, shifted_count = counts + [100, 40][len(counts) :]
    main(null_count, shifted_count, [value for value in sys.argv[1:] if not value.isdigit()])
