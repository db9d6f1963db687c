"""Stage benchmark (``nox -s bench-stages``): what a user waits for, start-up apart from work.

Each stage runs as a user runs it (its console script in the synced environment, no re-sync),
``--repeats`` times, the stages interleaved so a busy machine slows them alike. A stage's work
is the time it reports itself (``[stage] ok in N s``); start-up is the rest of the wall time:
the interpreter, imports, composing the config. ``deploy status`` reports no time of its own,
so its wall time is its start-up. Train is run once per round with the quick experiment.
The table goes to stdout and ``reports/bench/bench-stages.{json,md}``, with the load average.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from {{ cookiecutter.package_name }}.reports import jsonfile, tables

STAGES: dict[str, list[str]] = {
    "summary": ["summary"],
    "deploy status": ["deploy", "status", "production"],
    "validate-data": ["validate-data"],
    "compare": ["compare"],
    "train (quick)": ["train", "experiment=quick"],
}
OWN_TIME = re.compile(r"\] ok in ([\d.]+) ?s")


@dataclass
class Timings:
    """One stage's runs: wall seconds and the seconds it reported as its own work."""

    wall: list[float] = field(default_factory=list)
    work: list[float] = field(default_factory=list)

    def row(self, name: str) -> list[object]:
        """The table's line: medians of start-up (wall minus work), work and wall."""
        startup = [wall - work for wall, work in zip(self.wall, self.work, strict=True)]
        medians = (statistics.median(values) for values in (startup, self.work, self.wall))
        return [name, len(self.wall), *(f"{value:.2f}" for value in medians)]


def run_once(command: list[str]) -> tuple[float, float]:
    """Wall seconds of one run and the work seconds it reported (0 when it reports none)."""
    started = time.perf_counter()
    done = subprocess.run(["uv", "run", "--no-sync", *command], capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    found = OWN_TIME.search(done.stdout + done.stderr)
    if done.returncode not in (0, 1):  # deploy status exits 1 when nothing runs: still a measurement
        sys.exit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return wall, float(found.group(1)) if found else 0.0


def main() -> int:
    """Run the rounds, print and write the table."""
    parser = argparse.ArgumentParser(prog="bench-stages", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="rounds of every stage")
    args = parser.parse_args()
    timings = {name: Timings() for name in STAGES}
    for _ in range(args.repeats):
        for name, command in STAGES.items():
            wall, work = run_once(command)
            timings[name].wall.append(wall)
            timings[name].work.append(work)
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    header = ["stage", "runs", "start-up s (median)", "work s (median)", "wall s (median)"]
    markdown = "\n\n".join(
        [
            "### Stage start-up and work",
            tables.table(header, [timing.row(name) for name, timing in timings.items()]),
            f"Load average (1, 5, 15 min) at the end: {load}; {os.cpu_count()} cores.",
        ]
    )
    print(markdown)
    target = Path("reports/bench/bench-stages.json")
    jsonfile.write_json({name: vars(timing) for name, timing in timings.items()} | {"load": load}, target)
    target.with_suffix(".md").write_text(markdown + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
