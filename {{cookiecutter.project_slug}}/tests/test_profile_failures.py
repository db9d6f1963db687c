"""A color whose profile writes fail for real (a file where its profiles folder should be): `deploy
status` says so on the color's line, and monitoring raises a service alert that heads the page
and never retrains."""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from conftest import quick_forest
from crowning import crown
from {{ cookiecutter.package_name }}.config import PROJECT_ROOT, compose
from {{ cookiecutter.package_name }}.deployment import cli, local
from {{ cookiecutter.package_name }}.deployment.loopback import free_port
from {{ cookiecutter.package_name }}.deployment.state import Release
from {{ cookiecutter.package_name }}.monitoring import dashboards, health, monitor, replay
from {{ cookiecutter.package_name }}.profiling import ProfileError
from {{ cookiecutter.package_name }}.reports import ci_page
from monitored import Fitted, configure, fit

pytestmark = pytest.mark.slow
SOURCE = "{{ cookiecutter.package_name }}.serving.service:ModelService"  # from source: a 1 s profile window


@dataclass(frozen=True)
class Failing:
    root: Path
    target: local.LocalTarget
    process: local.ColorProcess

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.process.port}/metrics"


@pytest.fixture(scope="module")
def failing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Failing]:
    """Production's blue, started by the local target, whose profiles folder is a file."""
    root = tmp_path_factory.mktemp("full-disk")
    overrides = [*quick_forest(root), "serving.profile_window_s=1"]
    cfg = compose(overrides)
    from {{ cookiecutter.package_name }}.training import train  # noqa: PLC0415

    train.train(cfg)
    version = crown(cfg)
    (root / "profiles").mkdir()
    (root / "profiles" / "production").write_text("a file where production's profiles folder should be\n")
    target = local.LocalTarget("production", root / ".deploy", root)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SERVING_PROFILE_DIR", str(root / "profiles"))  # the colors': <this>/production
        patch.setenv("SERVING_CONFIG_OVERRIDES", " ".join(overrides))  # supervisord passes it on
        patch.setenv("BENTOML_HOME", str(root / "bentoml"))
        try:
            process = target.start_color("blue", Release(SOURCE, version), free_port(), 300.0)
            actual = target.load()
            actual.colors["blue"] = process
            target.save(actual)
            yield Failing(root, target, process)
        finally:
            target.stop_all(target.load())


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory, sample: pd.DataFrame) -> Fitted:
    return fit(tmp_path_factory.mktemp("reference"), sample)


def rows(sample: pd.DataFrame) -> list[dict[str, Any]]:
    features = sample.drop(columns=[compose().data.target]).head(5)
    found: list[dict[str, Any]] = json.loads(features.to_json(orient="records"))
    return found


def failed_writes(failing: Failing, sample: pd.DataFrame, timeout_s: float = 60.0) -> int:
    """Predict through the color, then wait for its window to fail writing: the count ``/metrics`` shows."""
    answer = httpx.post(
        f"http://127.0.0.1:{failing.process.port}/predict",
        json={"rows": rows(sample)},
        headers=failing.target.operator_headers(),
        timeout=60,
    )
    assert answer.status_code == 200, answer.text  # serving goes on while profiles cannot be written
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if count := health.profile_failures(httpx.get(failing.metrics_url, timeout=10).text, "blue"):
            return count
        time.sleep(0.5)
    raise AssertionError(f"no failed profile write counted after {timeout_s:.0f} s")


def test_status__a_color_whose_profile_writes_fail_says_so_and_what_to_free(
    failing: Failing, sample: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    failures = failed_writes(failing, sample)
    desired = tmp_path / "deploy"
    shutil.copytree(PROJECT_ROOT / "deploy", desired)
    folders = [f"deploy.desired_dir={desired}", f"deploy.state_dir={failing.root / '.deploy'}"]
    cli.main(["status", "production", *folders, f"deploy.serve_dir={failing.root}"])
    said = [line.strip() for line in capsys.readouterr().out.splitlines() if "profile writes failed" in line]
    assert len(said) == 1, said  # blue's line; green runs nothing
    assert said[0].startswith("blue  profiles: ")
    assert f"free disk space under {failing.root / 'profiles' / 'production'} " in said[0]
    counted = re.search(r"(\d+) profile writes failed", said[0])
    assert counted is not None
    assert int(counted[1]) >= failures


def test_monitor__failed_profile_writes_head_the_page_as_a_service_alert_that_never_retrains(
    failing: Failing, sample: pd.DataFrame, fitted: Fitted, tmp_path: Path
) -> None:
    failed_writes(failing, sample)
    service = health.collect(compose([f"monitoring.metrics_sources=[{failing.metrics_url}]"]).monitoring)
    assert service is not None
    assert service.profile_write_failures >= 1
    cfg = configure(tmp_path, fitted.folder, "monitoring.simulation.shift=none")  # quiet traffic
    replay.replay(cfg, predict=lambda frame: np.asarray(fitted.model.predict(frame)))

    comparison = monitor.monitor(cfg, service)
    result = comparison.result
    assert result.alert_kinds == ["service"]
    assert not result.drift_detected
    assert dashboards.headline(result).startswith("SERVICE ALERT (no drift)")

    dashboards.write(comparison, tmp_path / "reports" / "monitoring")
    first_line = ci_page.render(tmp_path / "reports").split("\n\n")[2]
    assert first_line.startswith("**⚠️ Production service alert**"), first_line
    assert "profile writes failed" in first_line
    assert ci_page.signals(tmp_path / "reports") == {"drift": "false", "alerts": "service"}  # no retraining


def test_monitor__a_window_without_profiles_names_the_failed_writes(
    failing: Failing, sample: pd.DataFrame, fitted: Fitted, tmp_path: Path
) -> None:
    """A full disk for the whole window leaves no profile: the error says why, not "widen the window"."""
    failed_writes(failing, sample)
    service = health.collect(compose([f"monitoring.metrics_sources=[{failing.metrics_url}]"]).monitoring)
    (tmp_path / "profiles").mkdir()
    failed = r"no profiles between .*, and the service says \d+ profile writes failed"
    with pytest.raises(ProfileError, match=failed):
        monitor.monitor(configure(tmp_path, fitted.folder), service)
