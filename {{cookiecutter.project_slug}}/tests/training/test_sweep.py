"""Sweeps: a parent run, each trial a run under it, the best trial gated as ``candidate``; on Ray too.

The Ray test starts a real Ray head (``ray start --head``, the ``ray`` extra) with a temp folder
of its own and ends every process whose command line names that folder: ``ray stop`` would stop
every Ray on the machine, not only this test's.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from mlflow import MlflowClient
from omegaconf import DictConfig, OmegaConf

from {{ cookiecutter.package_name }} import registry
from {{ cookiecutter.package_name }}.config import CONF_DIR, PROJECT_ROOT, Config, compose, register
from {{ cookiecutter.package_name }}.training import sweep, train, trial

BIN = Path(sys.executable).parent
RAY_TARGET = "hydra_plugins.hydra_ray_launcher.ray_launcher.RayLauncher"


def ray_config(*task: str, address: str | None = None) -> DictConfig:
    """The parts of a composed sweep config that :func:`sweep.prepare_ray` reads and writes."""
    return OmegaConf.create(
        {
            "training": {"threads": None},
            "hydra": {
                "launcher": {"_target_": RAY_TARGET, "ray": {"init": {"address": address}, "remote": {}}},
                "overrides": {"task": list(task), "hydra": []},
            },
        }
    )


@pytest.fixture
def no_ray_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RAY_ADDRESS", "RAY_ENABLE_UV_RUN_RUNTIME_ENV"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("no_ray_env")
def test_prepare_ray__each_trial_gets_the_cpus_ray_gives_it_as_threads() -> None:
    config = ray_config("model=hgb")
    config.hydra.launcher.ray.remote["num_cpus"] = 2
    sweep.prepare_ray(config)
    assert list(config.hydra.overrides.task) == ["model=hgb", "training.threads=2"]
    assert config.hydra.launcher.ray.init.include_dashboard is False
    assert "object_store_memory" not in config.hydra.launcher.ray.init  # a local Ray: the plugin's own
    assert os.environ["RAY_ENABLE_UV_RUN_RUNTIME_ENV"] == "0"


@pytest.mark.usefixtures("no_ray_env")
def test_prepare_ray__a_thread_count_given_on_the_command_line_stands() -> None:
    config = ray_config("model=hgb", "training.threads=4")
    sweep.prepare_ray(config)
    assert list(config.hydra.overrides.task) == ["model=hgb", "training.threads=4"]


@pytest.mark.parametrize("address", ["env", "config"])
def test_prepare_ray__a_cluster_gets_no_object_store_size(
    monkeypatch: pytest.MonkeyPatch, address: str
) -> None:
    """Ray refuses ``object_store_memory`` when it joins a cluster; the plugin would set 75 MB."""
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    if address == "env":
        monkeypatch.setenv("RAY_ADDRESS", "10.0.0.5:6379")
    config = ray_config(address="ray://head:10001" if address == "config" else None)
    sweep.prepare_ray(config)
    assert config.hydra.launcher.ray.init.object_store_memory is None


@pytest.mark.parametrize(
    ("target", "name"),
    [
        ("hydra._internal.core_plugins.basic_launcher.BasicLauncher", "hydra"),
        (RAY_TARGET, sweep.RAY_LAUNCHER),
    ],
)
def test_launcher_name__names_the_launchers_package(target: str, name: str) -> None:
    assert sweep.launcher_name(OmegaConf.create({"hydra": {"launcher": {"_target_": target}}})) == name


def test_standing__a_trial_leaves_the_alias_to_its_sweep(
    quick: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(trial.PARENT_ENV, "abc123")
    client = registry.connect(quick.mlflow)
    stands = train.standing(quick, client, 0.99, "digest")
    assert not stands.register
    assert not stands.below_bar  # a weak trial is a result of the sweep, not a failed stage
    assert "abc123" in stands.reason


def sweep_config(tmp_path: Path, *overrides: str) -> DictConfig:
    """The driver's composed config, Hydra's own node included, as Hydra hands it to callbacks."""
    register()
    isolated = [
        f"mlflow.tracking_uri=sqlite:///{tmp_path}/mlflow.db",
        f"mlflow.artifact_dir={tmp_path}/artifacts",
        f"training.report_dir={tmp_path}/training",
    ]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose("config", [*isolated, *overrides], return_hydra_config=True)


def test_sweep_callback__does_nothing_for_other_stages(tmp_path: Path) -> None:
    callback = sweep.SweepCallback()
    callback.on_multirun_start(sweep_config(tmp_path))  # `validate-data -m`: not armed
    assert callback.parent is None
    assert not (tmp_path / "mlflow.db").exists()


def test_sweep_callback__a_table_the_gate_refuses_stops_the_sweep_before_any_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sweep._armed, "train", True)
    table = pd.read_csv(PROJECT_ROOT / "data" / "sample" / "customers.csv")
    table["tenure_months"] = -100  # outside the contract's range: the gate refuses, the table loads
    table.to_csv(tmp_path / "bad.csv", index=False)
    callback = sweep.SweepCallback()
    with pytest.raises(SystemExit) as stopped:
        callback.on_multirun_start(sweep_config(tmp_path, f"data.path={tmp_path}/bad.csv"))
    assert stopped.value.code == 1
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1
    assert error[0].startswith("[train] error: ")
    assert "fails the data gate" in error[0]
    assert callback.parent is None
    assert not (tmp_path / "mlflow.db").exists()


def sweep_runs(tmp_path: Path) -> tuple[MlflowClient, list[object], list[object]]:
    """The experiment's parent runs and trial runs."""
    store = f"sqlite:///{tmp_path}/mlflow.db"
    # The registry too: an earlier test in this process may have set MLflow's process-wide one.
    client = MlflowClient(tracking_uri=store, registry_uri=store)
    experiment = client.get_experiment_by_name(compose().mlflow.experiment)
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    trials = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return client, parents, trials


def assert_one_sweep_crowned_its_best(tmp_path: Path, models: list[str]) -> None:
    """One parent run, a trial run per model under it, the best trial behind ``candidate``."""
    client, parents, trials = sweep_runs(tmp_path)
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert sorted(t.data.tags["model"] for t in trials) == sorted(models)
    assert {t.data.tags["mlflow.parentRunId"] for t in trials} == {parent.info.run_id}
    assert all(t.data.tags["data_gate"] == "passed" for t in trials)
    metric = f"test_{compose().training.primary_metric}"
    best = max(trials, key=lambda t: t.data.metrics[metric])  # f1_macro or, negated below, rmse
    if not compose().training.greater_is_better:
        best = min(trials, key=lambda t: t.data.metrics[metric])
    assert parent.data.tags["best_run_id"] == best.info.run_id
    version = client.get_model_version_by_alias(compose().mlflow.model_name, registry.CANDIDATE)
    assert version.run_id == best.info.run_id
    assert len(client.search_model_versions(f"name = '{compose().mlflow.model_name}'")) == 1
    report = json.loads((tmp_path / "training" / "sweep.json").read_text())
    assert report["best_run_id"] == best.info.run_id
    assert report["model_version"] == str(version.version)


def run_train(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    isolated = [
        f"mlflow.tracking_uri=sqlite:///{tmp_path}/mlflow.db",
        f"mlflow.artifact_dir={tmp_path}/artifacts",
        f"training.report_dir={tmp_path}/training",
        f"hydra.sweep.dir={tmp_path}/multirun",
        "training.cv_folds=2",
    ]
    return subprocess.run(
        [str(BIN / "train"), "-m", *args, *isolated],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.slow
def test_train_sweep__basic_launcher_crowns_the_best_trial(tmp_path: Path) -> None:
    swept = run_train(tmp_path, "model=linear,random_forest")
    assert swept.returncode == 0, swept.stderr
    assert_one_sweep_crowned_its_best(tmp_path, ["linear", "random_forest"])
    assert swept.stdout.count("the sweep registers its best trial") == 2


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def ray_processes(folder: str) -> list[int]:
    """Pids whose command line names the head's temp folder: this test's Ray and nothing else."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if folder.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:  # gone already
            continue
    return found


def end_processes(pids: list[int]) -> None:
    """SIGTERM, a few seconds' grace, then SIGKILL for what is left."""
    for signum in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                continue
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in pids):
            time.sleep(0.2)


@pytest.fixture
def ray_head() -> Iterator[str]:
    """A real Ray head with two CPUs and a temp folder of its own; its address (``host:port``).

    Ray advertises the node's own address even when asked for 127.0.0.1 (it resolves loopback
    to a reachable IP: ray._private.services.resolve_ip_for_localhost); the driver still dials
    127.0.0.1. Ray 2.60 heads require a token (its token-auth page), generated on first use in
    ~/.ray/auth_token; RAY_AUTH_MODE=token makes the driver present it.
    """
    pytest.importorskip("ray", reason="the 'ray' extra: uv sync --extra ray")
    folder = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's socket paths must stay short
    port = free_port()
    started = subprocess.run(
        [str(BIN / "ray"), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
         f"--temp-dir={folder}", "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats"],
        capture_output=True, text=True, check=False, timeout=300,
        env={**os.environ, "RAY_AUTH_MODE": "token"},
    )  # fmt: skip
    try:
        assert started.returncode == 0, started.stderr
        yield f"127.0.0.1:{port}"
    finally:
        end_processes(ray_processes(folder))
        left = ray_processes(folder)
        shutil.rmtree(folder, ignore_errors=True)
        assert left == [], f"Ray processes outlived the test: {left}"


@pytest.mark.slow
def test_train_sweep__on_a_ray_head_each_trial_is_a_ray_task_under_one_parent_run(
    tmp_path: Path, ray_head: str
) -> None:
    swept = run_train(
        tmp_path,
        "hydra/launcher=ray",
        "model=linear,random_forest",
        env={"RAY_ADDRESS": ray_head, "RAY_AUTH_MODE": "token"},
    )
    assert swept.returncode == 0, swept.stderr[-3000:]
    assert "Connecting to existing Ray cluster" in swept.stderr + swept.stdout
    assert_one_sweep_crowned_its_best(tmp_path, ["linear", "random_forest"])
    _, _, trials = sweep_runs(tmp_path)
    assert {t.data.params["training.threads"] for t in trials} == {"1"}  # Ray's one CPU per task
    assert "pid=" in swept.stdout + swept.stderr  # trial output came back through Ray's workers
