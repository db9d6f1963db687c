"""Sweep benchmark (``nox -s bench-sweep``): trials as Ray tasks against Hydra's basic launcher.

Side by side in one run, interleaved round by round so a busy machine slows both alike:

- an 8-trial sweep (``model=random_forest,hgb`` x four seeds) through a local Ray started for
  the sweep (``hydra/launcher=ray``) and through the basic launcher, which runs the trials one
  after another in one process; wall time from the command's start to its exit, Ray's start-up
  included;
- one trial on Ray against the same trial in-process: the wall time of each command and the
  time the trial reports as its own work (``[train] ok in N s``), whose difference is what Ray
  adds around a trial (starting the cluster, a worker, shipping the config back and forth).

Every run trains into a fresh MLflow store, so each starts from the same empty registry. The
table goes to stdout and ``reports/bench/bench-sweep.{json,md}``, with the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SWEEP = ["model=random_forest,hgb", "training.seed=1,2,3,4"]  # 8 trials
ONE = ["model=hgb"]
RAY = ["hydra/launcher=ray"]
OWN_TIME = re.compile(r"\[train\] ok in ([\d.]+)s")
CASES: dict[str, list[str]] = {
    "sweep, 8 trials: basic launcher": SWEEP,
    "sweep, 8 trials: local Ray": RAY + SWEEP,
    "one trial: in-process": ONE,
    "one trial: local Ray": RAY + ONE,
}


def run_once(overrides: list[str], scratch: Path) -> tuple[float, list[float]]:
    """Wall seconds of ``train -m`` with these overrides and each trial's own reported seconds."""
    isolated = [
        f"mlflow.tracking_uri=sqlite:///{scratch}/mlflow.db",
        f"mlflow.artifact_dir={scratch}/artifacts",
        f"training.report_dir={scratch}/training",
        f"hydra.sweep.dir={scratch}/multirun",
    ]
    if overrides[:1] == RAY:  # a Ray of its own, apart from any other on the machine
        isolated.append(f"+hydra.launcher.ray.init._temp_dir={scratch}/ray")
    environment = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
    started = time.perf_counter()
    done = subprocess.run(
        [str(Path(sys.executable).parent / "train"), "-m", *overrides, *isolated],
        capture_output=True,
        text=True,
        check=False,
        env=environment,
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"train -m {' '.join(overrides)} failed:\n{done.stderr[-3000:]}")
    return wall, [float(seconds) for seconds in OWN_TIME.findall(done.stdout + done.stderr)]


def table(rows: list[list[str]]) -> str:
    """A Markdown table of the measurements."""
    header = ["case", "runs", "wall s (median)", "trial's own s (median)", "trials seen"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join([*lines, *("| " + " | ".join(row) + " |" for row in rows)])


def main() -> int:
    """Run every case ``--repeats`` times, interleaved; print and write the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    repeats = parser.parse_args().repeats
    walls: dict[str, list[float]] = {name: [] for name in CASES}
    own: dict[str, list[float]] = {name: [] for name in CASES}
    seen: dict[str, int] = {}
    load = os.getloadavg()[0]
    for round_ in range(repeats):
        for name, overrides in CASES.items():
            with tempfile.TemporaryDirectory(prefix="sweep") as scratch:
                wall, trials = run_once(overrides, Path(scratch))
            walls[name].append(wall)
            own[name].extend(trials)
            seen[name] = len(trials)
            print(f"round {round_ + 1}: {name}: {wall:.1f} s wall, trials {trials}", flush=True)
    rows = [
        [name, str(len(walls[name])), f"{statistics.median(walls[name]):.1f}",
         f"{statistics.median(own[name]):.1f}" if own[name] else "-", str(seen[name])]
        for name in CASES
    ]  # fmt: skip
    basic, ray = (statistics.median(walls[name]) for name in list(CASES)[:2])
    alone, on_ray = (statistics.median(walls[name]) for name in list(CASES)[2:])
    summary = (
        f"8 trials: local Ray {basic / ray:.2f}x the basic launcher's speed (wall); "
        f"one trial on Ray costs {on_ray - alone:+.1f} s wall over in-process "
        f"(load average {load:.1f} -> {os.getloadavg()[0]:.1f}, {os.cpu_count()} cores)"
    )
    text = f"{table(rows)}\n\n{summary}\n"
    print(text)
    out = Path("reports/bench")
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench-sweep.md").write_text(text)
    payload = {"walls": walls, "own": own, "speedup": basic / ray, "one_trial_overhead_s": on_ray - alone}
    (out / "bench-sweep.json").write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
