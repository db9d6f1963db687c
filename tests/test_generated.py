"""Slow tier: curated bakes run their own gate, as a user would right after generating."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import PRE_GEN, Bake, free_port

pytestmark = pytest.mark.slow

CURATED = {
    "classification-local": {
        "ml_task": "classification",
        "deploy_target": "local",
        "mlflow_tracking": "local",
    },
    "regression-both-remote": {"ml_task": "regression", "deploy_target": "both", "mlflow_tracking": "remote"},
}


def run(project: Path, *command: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command in the baked project (conftest keeps nox's venv variables out of it)."""
    environment = {**os.environ, **(env or {})}
    return subprocess.run(
        command, cwd=project, capture_output=True, text=True, check=False, timeout=1800, env=environment
    )


def assert_ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, f"{result.args}\n{result.stdout[-6000:]}\n{result.stderr[-6000:]}"


def test_generated__default_project_passes_its_own_gate_and_pre_commit(bake: Bake) -> None:
    project = bake(init_git="yes", **CURATED["classification-local"])
    assert_ok(run(project, "nox", "-s", "lint", "typecheck", "tests"))
    assert_ok(run(project, "uv", "run", "--locked", "pre-commit", "run", "--all-files"))


LONGEST_NAME = "Quarterly Customer Lifetime Value Forecasting Bank Europe"  # slug: 50, cut at a word
# The top-level modules the project's environment installs, lower-cased (what a package would shadow).
TOP_LEVEL_MODULES = (
    "import importlib.metadata as m, sys; print(' '.join(sorted({name.lower() for name in "
    "m.packages_distributions() if name.isidentifier() and not name.startswith('_') "
    "and name not in sys.stdlib_module_names})))"
)


def test_generated__a_package_name_of_its_own_installs_and_runs_its_stages(bake: Bake) -> None:
    """hatchling finds a package named like the project by itself; any other name must be declared.

    The project's name is the longest a slug may be (50 characters), so the distribution's is too.
    """
    project = bake(project_name=LONGEST_NAME, package_name="churn_model")
    assert len(project.name) == 50
    assert (project / "src" / "churn_model").is_dir()
    assert_ok(run(project, "uv", "sync", "--locked", "--quiet"))
    assert_ok(run(project, "uv", "run", "--locked", "validate-data"))
    assert_ok(run(project, "uv", "run", "--locked", "python", "-c", "import churn_model.deployment.cli"))
    modules = run(project, "uv", "run", "--locked", "python", "-c", TOP_LEVEL_MODULES)
    assert_ok(modules)
    missing = set(modules.stdout.split()) - PRE_GEN.LOCKED_NAMES - {"churn_model"}
    assert not missing, f"add to LOCKED_NAMES in hooks/pre_gen_project.py: {' '.join(sorted(missing))}"


def test_generated__the_first_commit_of_a_bake_passes_the_large_file_hook(bake: Bake) -> None:
    """With init_git=no the user commits: the lock (about 1.2 MB) is meant to go in with the rest."""
    project = bake(init_git="no")
    assert_ok(run(project, "git", "init", "--quiet"))
    assert_ok(run(project, "git", "add", "--all"))
    assert_ok(run(project, "uv", "run", "--locked", "pre-commit", "run", "check-added-large-files"))


def test_generated__regression_project_trains_and_passes_its_fast_tests(bake: Bake, tmp_path: Path) -> None:
    project = bake(**CURATED["regression-both-remote"])
    assert_ok(run(project, "nox", "-s", "lint", "typecheck", "tests", "--", "-m", "not slow"))
    assert_ok(run(project, "nox", "-s", "validate-data"))
    unset = run(project, "nox", "-s", "train", env={"MLFLOW_TRACKING_URI": ""})
    assert unset.returncode != 0
    assert "MLFLOW_TRACKING_URI is empty or not set" in unset.stdout + unset.stderr
    with mlflow_server(project, tmp_path) as uri:
        trained = run(
            project, "nox", "-s", "train", "--", "experiment=quick", env={"MLFLOW_TRACKING_URI": uri}
        )
        assert_ok(trained)
        assert "test rmse=" in trained.stdout
        assert "registered" in trained.stdout


@contextmanager
def mlflow_server(project: Path, folder: Path) -> Iterator[str]:
    """A real ``mlflow server`` on loopback (sqlite backend, proxied artifacts): the shared registry."""
    port = free_port()
    command = ["uv", "run", "--locked", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
               "--backend-store-uri", f"sqlite:///{folder}/server.db", "--artifacts-destination",
               str(folder / "artifacts")]  # fmt: skip
    with (folder / "mlflow-server.log").open("wb") as log:
        server = subprocess.Popen(
            command, cwd=project, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while not healthy(uri):
            output = (folder / "mlflow-server.log").read_text()
            assert server.poll() is None, output
            assert time.monotonic() < deadline, output
            time.sleep(1)
        yield uri
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def healthy(uri: str) -> bool:
    try:
        with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False
