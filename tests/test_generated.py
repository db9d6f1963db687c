"""Slow tier: curated bakes run their own gate, as a user would right after generating."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import Bake

pytestmark = pytest.mark.slow

CURATED = {
    "classification-local": {
        "ml_task": "classification",
        "deploy_target": "local",
        "mlflow_tracking": "local",
    },
    "regression-both-remote": {"ml_task": "regression", "deploy_target": "both", "mlflow_tracking": "remote"},
}


def run(project: Path, *command: str) -> subprocess.CompletedProcess[str]:
    """Run a command in the baked project (conftest keeps nox's venv variables out of it)."""
    return subprocess.run(command, cwd=project, capture_output=True, text=True, check=False, timeout=1800)


def assert_ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, f"{result.args}\n{result.stdout[-6000:]}\n{result.stderr[-6000:]}"


def test_generated__default_project_passes_its_own_gate_and_pre_commit(bake: Bake) -> None:
    project = bake(init_git="yes", **CURATED["classification-local"])
    assert_ok(run(project, "nox", "-s", "lint", "typecheck", "tests"))
    assert_ok(run(project, "uv", "run", "--locked", "pre-commit", "run", "--all-files"))


def test_generated__regression_project_trains_and_passes_its_fast_tests(bake: Bake) -> None:
    project = bake(**CURATED["regression-both-remote"])
    assert_ok(run(project, "nox", "-s", "lint", "typecheck", "tests", "--", "-m", "not slow"))
    assert_ok(run(project, "nox", "-s", "validate-data"))
    trained = run(project, "nox", "-s", "train", "--", "experiment=quick")
    assert_ok(trained)
    assert "test rmse=" in trained.stdout
