"""What monitoring costs: N logged rows end to end, or a week of 1-minute windows from 4 workers.

``nox -s bench-monitor`` (default 1,000,000 rows) or ``nox -s bench-monitor -- 200000``. Rows
are written the way the service writes them (``TrafficProfiler``: one profile plus one id ->
prediction file per window), with late labels for all of them, then monitored against a
reference profile. The prediction column is the simulated outcome, not a model's output: model
scoring is the service's cost, not monitoring's. Budget: 1,000,000 rows in under 30 s.

``nox -s bench-monitor -- week``: 10,080 profiles (7 days x 1,440 minutes, one service worker,
20 rows each) and as many prediction logs, as the service names them, with a label for every id;
``-- week 4`` for four service workers (40,320 of each). It times the first monitor run over
the week, which finds nothing rolled up and rolls up the 167 finished hours itself, then a
second run in steady state (167 hours read from their roll-ups, the current hour from its
files), label join included in both. Budget: 30 s for each, and 1 GB.
"""

from __future__ import annotations

import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pandas as pd

from {{ cookiecutter.package_name }} import profiling, simulation
from {{ cookiecutter.package_name }}.config import Config, compose
from {{ cookiecutter.package_name }}.data import feature_columns
from {{ cookiecutter.package_name }}.monitoring import dashboards, monitor, replay, rollup
from {{ cookiecutter.package_name }}.monitoring.columns import compare_columns
from {{ cookiecutter.package_name }}.monitoring.labels import assess_labels, labelled_window
from {{ cookiecutter.package_name }}.monitoring.window import load_window, window_bounds, window_files
from {{ cookiecutter.package_name }}.reference import PREDICTION, REFERENCE_PROFILE
from {{ cookiecutter.package_name }}.reports import tables
from {{ cookiecutter.package_name }}.serving.traffic import TrafficProfiler

BUDGET_S = 30.0
WINDOWS = 10
T = TypeVar("T")


def timed(step: Callable[[], T]) -> tuple[T, float]:
    """Run one step; its result and wall-clock seconds."""
    started = time.perf_counter()
    result = step()
    return result, time.perf_counter() - started


def configure(folder: Path) -> Config:
    """Profiles, labels, reference and reports all inside the scratch folder."""
    return compose(
        [
            f"monitoring.reference_profile={folder / 'reference' / 'reference.bin'}",
            f"monitoring.profile_dir={folder / 'profiles'}",
            f"monitoring.prediction_log_dir={folder / 'profiles'}",
            f"monitoring.labels_path={folder / 'labels.csv'}",
            f"monitoring.report_dir={folder / 'reports'}",
        ]
    )


def traffic(cfg: Config, rows: int) -> pd.DataFrame:
    """Synthetic served rows with ids and a prediction column (the simulated outcome)."""
    frame = simulation.make_customers(rows, seed=3, shift="covariate")
    kept = frame[[*feature_columns(frame, cfg.data), cfg.data.id_column, cfg.data.target]]
    return kept.assign(**{PREDICTION: frame[cfg.data.target]})


def write_reference(cfg: Config, folder: Path) -> None:
    """A training-time reference of the sample's size, as ``training.py`` logs it."""
    sample = simulation.make_customers(3000, seed=7)
    frame = sample[feature_columns(sample, cfg.data)]
    folder.mkdir(parents=True)
    reference = frame.assign(
        **{PREDICTION: sample[cfg.data.target], cfg.data.target: sample[cfg.data.target]}
    )
    profiling.write(profiling.profile(reference), folder / REFERENCE_PROFILE)


def log_traffic(cfg: Config, frame: pd.DataFrame) -> int:
    """Write the rows window by window through the service's profiler; the files written."""
    profiler = TrafficProfiler(cfg.monitoring.profile_dir, id_column=cfg.data.id_column)
    kept = frame.drop(columns=[cfg.data.target, PREDICTION])
    predictions = frame[PREDICTION]
    starts = replay.window_starts(
        WINDOWS, cfg.serving.profile_window_s, pd.Timestamp.now(tz="UTC").to_pydatetime()
    )
    for started, window in zip(starts, range(WINDOWS), strict=True):
        profiler.record(kept.iloc[window::WINDOWS], predictions.iloc[window::WINDOWS].tolist())
        profiler.flush(window_start=started)
    return profiler.stats.files_written


def monitored_stages(cfg: Config, scratch: Path) -> dict[str, float]:
    """Merge, compare and label steps timed one by one."""
    start, end = window_bounds(cfg.monitoring)
    paths = window_files(cfg.monitoring.profile_dir, start, end, {".bin"}, scratch)
    reference = monitor.load_reference(cfg)
    loaded, merge_s = timed(lambda: load_window(paths))
    current = loaded.view
    roles = {name: "feature" for name in reference.features} | {PREDICTION: "prediction"}
    _, compare_s = timed(lambda: compare_columns(cfg.monitoring, reference.view, current, roles))
    started = time.perf_counter()
    _, joined = labelled_window(cfg, start, end, scratch)
    if joined is not None:
        labels = profiling.profile(joined[[cfg.data.target]])
        assess_labels(cfg, reference, joined, labels)
    labels_s = time.perf_counter() - started
    return {"merge": merge_s, "compare": compare_s, "labels": labels_s}


def main(rows: int) -> float:
    """Time each stage and print the table; the total seconds."""
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        cfg = configure(folder)
        write_reference(cfg, folder / "reference")
        frame = traffic(cfg, rows)
        frame[[cfg.data.id_column, cfg.data.target]].to_csv(cfg.monitoring.labels_path, index=False)
        cpu_started = time.process_time()
        _, profile_s = timed(lambda: log_traffic(cfg, frame))
        seconds = {"profile": profile_s, **monitored_stages(cfg, folder)}
        cpu_s = time.process_time() - cpu_started
        comparison = monitor.monitor(cfg)  # the same work again, whole, for the report's input
        cpu_started = time.process_time()
        _, seconds["report"] = timed(lambda: dashboards.write(comparison, cfg.monitoring.report_dir))
        cpu_s += time.process_time() - cpu_started
    total = sum(seconds.values())
    verdict = "within" if total < BUDGET_S else "OVER"
    header = [
        "rows",
        *(f"{name} (s)" for name in seconds),
        "total (s)",
        "CPU (s)",
        f"wall < {BUDGET_S:.0f} s",
    ]
    cells = [rows, *(round(value, 2) for value in [*seconds.values(), total, cpu_s]), verdict]
    print(tables.table(header, [cells]))
    result = comparison.result
    labelled = result.performance.labelled if result.performance else 0
    print(f"\n{result.rows:,} rows in {result.files} profiles, {labelled:,} labelled.")
    print("Wall time on a shared machine includes waiting for a CPU; CPU time is the work itself.")
    return total


WEEK_HOURS, ROWS_PER_FILE = 168, 20
WEEK_BUDGET_MB = 1024.0


def write_week(cfg: Config, folder: Path, now: datetime, workers: int) -> int:
    """One hour of distinct minute profiles and prediction logs, linked under every hour of the week.

    Links, not copies: each hour holds the same bytes, and writing every file would take
    longer than the run being measured. The last hour is the current, unfinished one. Every id
    gets a label. Returns the profiles written (as many prediction logs).
    """
    frame = traffic(cfg, 60 * workers * ROWS_PER_FILE)
    frame[[cfg.data.id_column, cfg.data.target]].to_csv(cfg.monitoring.labels_path, index=False)
    first = (now - timedelta(hours=WEEK_HOURS - 1)).replace(minute=0, second=0, microsecond=0)
    template = folder / "hour"
    template.mkdir()
    for index in range(60 * workers):
        rows = frame.iloc[index * ROWS_PER_FILE : (index + 1) * ROWS_PER_FILE]
        features = rows.drop(columns=[cfg.data.id_column, cfg.data.target])
        profiling.write(profiling.profile(features), template / f"{index:04d}.bin")
        logged = rows[[cfg.data.id_column, PREDICTION]].assign(client="web-app", model_version="")
        logged.to_parquet(template / f"{index:04d}.parquet", index=False)
    profiles = Path(cfg.monitoring.profile_dir)
    profiles.mkdir(parents=True)
    for hour in range(WEEK_HOURS):
        start = first + timedelta(hours=hour)
        for index in range(60 * workers):
            minute, worker = divmod(index, workers)
            stem = f"{start + timedelta(minutes=minute):{profiling.STAMP}}-host-{worker}-{index:05d}"
            os.link(template / f"{index:04d}.bin", profiles / profiling.profile_name(stem, "web-app"))
            os.link(template / f"{index:04d}.parquet", profiles / f"{stem}{rollup.PREDICTIONS}")
    return WEEK_HOURS * 60 * workers


def cpu_seconds() -> float:
    """CPU seconds of this process and of the roll-up's worker processes it has waited for."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed_run(cfg: Config, now: datetime) -> tuple[monitor.Comparison, float, float]:
    """One monitor run over the week: its comparison, wall seconds and CPU seconds."""
    cpu_started = cpu_seconds()
    comparison, seconds = timed(lambda: monitor.monitor(cfg, now=now))
    return comparison, seconds, cpu_seconds() - cpu_started


def week(workers: int) -> None:
    """Write the week, then time the first monitor run (it rolls up every hour) and a steady-state one."""
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        cfg = configure(folder)
        cfg.monitoring.window_hours = float(WEEK_HOURS)
        write_reference(cfg, folder / "reference")
        files = write_week(cfg, folder, now, workers)
        _, first_s, first_cpu = timed_run(cfg, now)
        comparison, steady_s, steady_cpu = timed_run(cfg, now)
    peak_mb = max(
        resource.getrusage(who).ru_maxrss / 1024 for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    result = comparison.result
    within = max(first_s, steady_s) < BUDGET_S and peak_mb < WEEK_BUDGET_MB
    labelled = result.performance.labelled if result.performance else 0
    header = [
        "profiles + logs",
        "rows",
        "labelled ids",
        "read from",
        "first run (s)",
        "CPU (s)",
        "steady state (s)",
        "CPU (s)",
        "peak MB",
        "budget",
    ]
    cells = [
        f"{files:,} + {files:,}",
        result.rows,
        labelled,
        result.files,
        round(first_s, 1),
        round(first_cpu, 1),
        round(steady_s, 1),
        round(steady_cpu, 1),
        round(peak_mb),
        "within" if within else "OVER",
    ]
    print(tables.table(header, [cells]))
    print(
        f"\nBudget: {BUDGET_S:.0f} s for the first run and for each later one, and {WEEK_BUDGET_MB:.0f} MB. "
        f"The first run rolls up hours in up to {rollup.workers_available()} processes (the CPUs it may "
        "use); CPU counts theirs too. Wall time on a shared machine includes waiting for a CPU."
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["week"]:
        week(int(sys.argv[2]) if len(sys.argv) > 2 else 1)
    else:
        main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
