"""Whether this train is a trial of a sweep: what a single train needs to know of sweeps, and no more.

A sweep (``sweep.py``) drives train; train only asks this module whether it runs under a sweep, so
the arrow runs one way.
"""

from __future__ import annotations

import os

PARENT_ENV = "SWEEP_PARENT_RUN_ID"  # set by Hydra around each trial (hydra.job.env_set)


def parent_run_id() -> str | None:
    """The sweep's parent run inside a trial; None in a single train."""
    return os.environ.get(PARENT_ENV) or None


def trial_tags() -> dict[str, str] | None:
    """Tags that file a trial's run under its sweep (MLflow nests runs by ``mlflow.parentRunId``)."""
    parent = parent_run_id()
    return {"mlflow.parentRunId": parent, "sweep": parent} if parent else None


def trial_reason(parent: str) -> str:
    """Why a trial leaves the alias alone, for its train.json and its output."""
    return f"a trial of sweep run {parent}: the sweep registers its best trial after the last one"
