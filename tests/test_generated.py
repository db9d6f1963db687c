"""Slow tier: curated bakes run their own gate, as a user would right after generating."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
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
    """Run a command in the baked project (conftest keeps nox's venv variables out of it).

    The timeout only stops a hang: the slow tier alone took 24 min beside other work (load 15).
    """
    environment = {**os.environ, **(env or {})}
    return subprocess.run(
        command, cwd=project, capture_output=True, text=True, check=False, timeout=3600, env=environment
    )


def assert_ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, f"{result.args}\n{result.stdout[-6000:]}\n{result.stderr[-6000:]}"


def test_generated__default_project_passes_its_own_gate_and_pre_commit(bake: Bake) -> None:
    """`nox`: lint, typecheck and the fast tier, what a user runs before every push."""
    project = bake(init_git="yes", **CURATED["classification-local"])
    gate = run(project, "nox")
    assert_ok(gate)
    assert gate.stderr.count("nox > uv sync") == 1  # one sync (and bytecode pass) per nox invocation
    assert "pytest -m 'not slow'" in gate.stderr  # the slow tier is left to its own session
    assert (project / "reports" / "lint" / "mypy.xml").is_file()  # the lint job's page reads it
    assert_ok(run(project, "uv", "run", "--locked", "pre-commit", "run", "--all-files"))


def test_generated__default_project_passes_its_slow_tier(bake: Bake) -> None:
    """`nox -s tests-slow`: real servers, load and several models, as release.yml runs it."""
    project = bake(**CURATED["classification-local"])
    slow = run(project, "nox", "-s", "tests-slow")
    assert_ok(slow)
    assert " passed" in slow.stdout


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
    assert_ok(run(project, "nox", "-s", "lint", "typecheck", "tests"))
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
    uri = f"http://127.0.0.1:{port}"
    with running(command, project, folder / "mlflow-server.log", f"{uri}/health", timeout_s=180):
        yield uri


@contextmanager
def running(command: list[str], cwd: Path, log: Path, ready_url: str, timeout_s: float) -> Iterator[None]:
    """A server process (its own process group) for the block's duration, once ``ready_url`` answers."""
    with log.open("wb") as sink:
        server = subprocess.Popen(
            command, cwd=cwd, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + timeout_s
        while not answers(ready_url):
            assert server.poll() is None, log.read_text()[-4000:]
            assert time.monotonic() < deadline, log.read_text()[-4000:]
            time.sleep(1)
        yield
    finally:
        with suppress(ProcessLookupError):  # the whole group: a shell, uv and the server
            os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)


def answers(url: str) -> bool:
    """The URL answers 200 now."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def readme_block(project: Path, heading: str) -> list[str]:
    """The commands of the first bash block under ``heading`` in the project's README, comments cut."""
    text = (project / "README.md").read_text()
    section = text[text.index(f"## {heading}\n") :]
    block = section[section.index("```bash\n") + 8 : section.index("\n```", section.index("```bash\n"))]
    joined = block.replace("\\\n", " ")
    return [line.split("  #")[0].strip() for line in joined.splitlines() if line.strip()]


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_generated__the_readme_s_own_data_path_reaches_a_served_prediction(
    bake: Bake, tmp_path: Path, task: str
) -> None:
    """Run "Your own data" as written, from a fresh bake, with a table the project's tests make.

    It ends with the README's curl, as written, sending the body ``package`` printed (a real row
    of the adopted table) to the served bento, which answers it.
    """
    project = bake(ml_task=task)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    assert_ok(run(project, "uv", "sync", "--locked", "--quiet"))
    table = "penguins" if task == "classification" else "cars"
    make = (
        "import sys; sys.path.insert(0, 'tests'); import tables; "
        f"tables.{table}().to_csv('{downloads}/{table}.csv', index=False)"
    )
    assert_ok(run(project, "uv", "run", "--locked", "python", "-c", make))
    bento, printed = "", ""
    commands = readme_block(project, "Your own data")
    for command in commands:
        command = command.replace("~/Downloads/", f"{downloads}/")
        if command.startswith("git diff"):
            continue
        if command.startswith("BENTOML_HOME="):
            served = command.replace("<the bento tag package printed>", bento)
            with background(project, served, tmp_path) as port:
                answer = curl(project, port, next(c for c in commands if c.startswith("curl")))
            echoed = [prediction.get("id") for prediction in answer["predictions"]]
            assert echoed == [row.get("penguin_id") for row in printed["rows"]]  # cars have no id: None
            return
        done = run(project, "bash", "-c", command)
        assert_ok(done)
        if "nox -s package" in command:
            bento = re.search(r"bento (\S+) \(model", done.stdout).group(1)  # type: ignore[union-attr]
            printed = printed_request(done.stdout, project)
    pytest.fail("the README block has no serve step")


def printed_request(stdout: str, project: Path) -> dict[str, list[dict[str, object]]]:
    """The body ``package`` printed, after checking it is the file the README's curl sends."""
    lines = stdout.splitlines()
    shown = next(i for i, line in enumerate(lines) if "a request it answers, from data row" in line)
    assert lines[shown + 1].strip() == (project / "reports" / "request.json").read_text().strip()
    body: dict[str, list[dict[str, object]]] = json.loads(lines[shown + 1])
    return body


@contextmanager
def background(project: Path, command: str, folder: Path) -> Iterator[int]:
    """Start a README serve command on a free port; yields the port once it is ready."""
    port = free_port()
    command = re.sub(r"--port \d+", f"--port {port}", command)
    with running(
        ["bash", "-c", command], project, folder / "serve.log", f"http://127.0.0.1:{port}/readyz", 240
    ):
        yield port


def curl(project: Path, port: int, command: str) -> dict[str, list[dict[str, object]]]:
    """Run the README's curl as written (from the project folder), against the served port."""
    sent = run(project, "bash", "-c", command.replace("localhost:3000", f"localhost:{port}"))
    assert_ok(sent)
    answer: dict[str, list[dict[str, object]]] = json.loads(sent.stdout)
    assert "predictions" in answer, sent.stdout
    return answer
