"""Shared fixtures: configs composed from the real conf/ tree, pointed at throwaway stores."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, settings

from {{ cookiecutter.package_name }}.config import CONF_DIR, Config, compose
from {{ cookiecutter.package_name }}.data import load_table

ComposeFn = Callable[..., Config]

# Property tests judge answers, never speed: Hypothesis' default 200 ms deadline per example and its
# "too slow" health check are wall-clock budgets that a machine shared with other work exceeds.
settings.register_profile("any-machine", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("any-machine")
QUICK_FOREST = ["model=random_forest", "model.estimator.n_estimators=15", "training.cv_folds=2"]


def quick_forest(root: Path) -> list[str]:
    """Overrides for a small forest (two CV folds) trained into throwaway stores under ``root``.

    For module-scoped fixtures, which cannot use the function-scoped ``make_config``.
    """
    return [
        f"mlflow.tracking_uri=sqlite:///{root}/mlflow.db",
        f"mlflow.artifact_dir={root}/artifacts",
        f"training.report_dir={root}/reports",
        *QUICK_FOREST,
    ]


@pytest.fixture(autouse=True)
def _no_job_summary(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests run inside CI jobs too: the job's summary, outputs and run must not leak into them."""
    for variable in ("GITHUB_STEP_SUMMARY", "GITHUB_OUTPUT", "GITHUB_RUN_ID", "GITHUB_REPOSITORY"):
        monkeypatch.delenv(variable, raising=False)


@pytest.fixture
def make_config(tmp_path: Path) -> ComposeFn:
    """Compose the project config with an MLflow store and report folders under tmp_path.

    ``conf_dir`` composes a copy of ``conf/`` instead (a test that adopts a table edits its copy).
    """

    def build(*overrides: str, conf_dir: Path = CONF_DIR) -> Config:
        isolated = [
            f"mlflow.tracking_uri=sqlite:///{tmp_path}/mlflow.db",
            f"mlflow.artifact_dir={tmp_path}/artifacts",
            f"validation.report_dir={tmp_path}/reports/validation",
            f"training.report_dir={tmp_path}/reports/training",
            f"serving.profile_dir={tmp_path}/profiles",
            f"monitoring.profile_dir={tmp_path}/profiles",
            f"monitoring.report_dir={tmp_path}/reports/monitoring",
        ]
        return compose([*isolated, *overrides], conf_dir=conf_dir)

    return build


@pytest.fixture
def quick(make_config: ComposeFn) -> Config:
    """A fast configuration: small forest, two CV folds."""
    return make_config(*QUICK_FOREST)


@pytest.fixture(scope="session")
def sample() -> pd.DataFrame:
    """The committed sample table."""
    return load_table("data/sample/customers.csv")
