"""The stage commands as a user runs them: exit codes and one-line errors, never tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from {{ cookiecutter.package_name }}.config import compose


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, **(env or {})}
    return subprocess.run(
        list(args), capture_output=True, text=True, check=False, timeout=300, env=environment
    )


def isolated(tmp_path: Path) -> list[str]:
    return [
        f"mlflow.tracking_uri=sqlite:///{tmp_path}/mlflow.db",
        f"mlflow.artifact_dir={tmp_path}/artifacts",
        f"validation.report_dir={tmp_path}/validation",
        f"training.report_dir={tmp_path}/training",
        f"hydra.run.dir={tmp_path}/hydra",
    ]


def test_validate_data__bad_file_exits_1_with_named_rule_and_no_traceback(tmp_path: Path) -> None:
    (tmp_path / "bad.csv").write_text("customer_id,tenure_months\nC1,3\n")
    result = run("validate-data", f"data.path={tmp_path}/bad.csv", *isolated(tmp_path))
    assert result.returncode == 1
    assert "contract: present" in result.stderr
    assert "Traceback" not in result.stderr
    assert json.loads((tmp_path / "validation" / "validation.json").read_text())["passed"] is False


@pytest.mark.slow
def test_predict__without_a_model_says_what_to_run(tmp_path: Path) -> None:
    result = run("predict", *isolated(tmp_path))
    assert result.returncode == 1
    assert "nox -s train" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("uri", ["", " "])
def test_train__empty_tracking_secret_names_it_and_logs_nothing(tmp_path: Path, uri: str) -> None:
    result = run(
        "train", "mlflow=remote", f"training.report_dir={tmp_path}", env={"MLFLOW_TRACKING_URI": uri}
    )
    assert result.returncode == 1
    assert "MLFLOW_TRACKING_URI is empty or not set" in result.stderr
    assert "Settings > Environments" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "train.json").exists()


def test_predict__renamed_override_names_the_new_key() -> None:
    result = run("predict", "inference.alias=candidate")
    assert result.returncode == 1
    assert "inference.alias is now inference.model_alias" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_stages__validate_train_compare_predict_chain(tmp_path: Path) -> None:
    common = isolated(tmp_path)
    assert run("validate-data", *common).returncode == 0
    trained = run("train", "experiment=quick", *common)
    assert trained.returncode == 0, trained.stderr
    assert "as 'candidate'" in trained.stdout
    compared = run("compare", *common)
    assert compared.returncode == 0, compared.stderr
    assert json.loads((tmp_path / "training" / "gate.json").read_text())["promote"] is True
    out = tmp_path / "predictions.parquet"
    predicted = run("predict", "inference.model_alias=candidate", f"inference.output={out}", *common)
    assert predicted.returncode == 0, predicted.stderr
    assert len(pd.read_parquet(out)) == 3000


@pytest.mark.slow
def test_train__multirun_sweep_logs_one_run_per_estimator(tmp_path: Path) -> None:
    """``train -m model=a,b`` (Hydra's basic sweeper): one MLflow run and one report per choice."""
    common = [*isolated(tmp_path), f"hydra.sweep.dir={tmp_path}/multirun", "training.cv_folds=2"]
    swept = run("train", "-m", "model=linear,random_forest", *common)
    assert swept.returncode == 0, swept.stderr
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.get_experiment_by_name(compose().mlflow.experiment)
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], "tags.sweep != ''")  # the trials, not their parent
    assert sorted(run.data.tags["model"] for run in runs) == ["linear", "random_forest"]
    assert sorted(path.name for path in (tmp_path / "multirun").iterdir()) == ["0", "1", "multirun.yaml"]
