"""The drift simulator: straight into profiles with the service's writer, or through the service."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

import bento_server
from conftest import quick_forest
from crowning import crown
from {{ cookiecutter.package_name }} import profiling
from {{ cookiecutter.package_name }}.config import PROJECT_ROOT, Config, compose
from {{ cookiecutter.package_name }}.data import DataError
from {{ cookiecutter.package_name }}.monitoring import dashboards, health, monitor, replay
from {{ cookiecutter.package_name }}.serving import traffic
from {{ cookiecutter.package_name }}.training import train

COVARIATE = {"tenure_months", "monthly_charges", "internet_service"}


def test_window_starts__aligned_consecutive_and_oldest_first() -> None:
    now = datetime(2026, 3, 1, 12, 0, 42, tzinfo=UTC)
    starts = replay.window_starts(3, 60.0, now)
    assert [f"{s:%H:%M:%S}" for s in starts] == ["11:58:00", "11:59:00", "12:00:00"]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("monitoring.simulation.shift=sideways", "choose one of"),
        ("monitoring.simulation.rows=3", "must be >="),
    ],
)
def test_traffic__bad_simulation_settings_say_what_to_change(override: str, message: str) -> None:
    with pytest.raises(DataError, match=message):
        replay.traffic(compose([override]))


def test_traffic__ids_are_unique_per_shift_and_seed() -> None:
    ids = {
        shift: set(replay.traffic(compose([f"monitoring.simulation.shift={shift}"]))["customer_id"])
        for shift in ("none", "label")
    }
    assert not ids["none"] & ids["label"]


@dataclass
class Served:
    url: str
    cfg: Config


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A quick model trained, crowned and served from source, profiling every 2 s."""
    root = tmp_path_factory.mktemp("replay-service")
    overrides = [
        *quick_forest(root),
        f"serving.profile_dir={root}/profiles",
        "serving.profile_window_s=2",
    ]
    monitored = [
        f"monitoring.profile_dir={root}/profiles",
        f"monitoring.prediction_log_dir={root}/profiles",
        f"monitoring.labels_path={root}/labels.csv",
        f"monitoring.report_dir={root}/monitoring",
        "monitoring.simulation.shift=covariate",
        "monitoring.simulation.rows=600",
    ]
    cfg = compose([*overrides, *monitored])
    train.train(cfg)
    crown(cfg)
    env = {"SERVING_CONFIG_OVERRIDES": " ".join(overrides), "BENTOML_HOME": str(root / "bentoml")}
    target = "{{ cookiecutter.package_name }}.serving.service:ModelService"
    process, url = bento_server.start(target, PROJECT_ROOT, env, root / "serve.log")
    try:
        yield Served(url, compose([*overrides, *monitored, f"monitoring.simulation.url={url}"]))
    finally:
        bento_server.stop(process)


def wait_for_rows(folder: str, rows: int, timeout_s: float = 30.0) -> None:
    """The service writes a profile every 2 s here; wait until every sent row is in one."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        merged = profiling.merge(profiling.read(path) for path in Path(folder).glob("*.bin"))
        if merged is not None and profiling.row_count(merged) >= rows:
            return
        time.sleep(0.5)
    raise AssertionError(f"fewer than {rows} rows profiled in {folder} after {timeout_s:.0f} s")


@pytest.mark.slow
def test_replay__through_the_service_every_row_is_monitored_and_the_shift_is_flagged(served: Served) -> None:
    done = replay.replay(served.cfg)
    metrics = compose([f"monitoring.metrics_sources=[{served.url}/metrics]"]).monitoring
    service = health.collect(metrics)
    wait_for_rows(served.cfg.monitoring.profile_dir, done.rows)
    result = monitor.monitor(served.cfg, service).result
    assert done.profiles == []
    assert service is not None
    assert service.by_endpoint["/predict"]["200"] == 6  # 600 rows in requests of 100
    assert result.rows == 600
    assert set(result.drifted_columns) >= COVARIATE
    assert result.performance is not None
    assert result.performance.labelled == 600
    assert result.reference["version"] == "1"


@pytest.mark.slow
def test_replay__in_process_logs_probabilities_and_the_model_version_as_the_service_does(
    tmp_path: Path,
) -> None:
    cfg = compose(
        [
            *quick_forest(tmp_path),
            f"monitoring.profile_dir={tmp_path}/profiles",
            f"monitoring.prediction_log_dir={tmp_path}/profiles",
            f"monitoring.labels_path={tmp_path}/labels.csv",
            f"monitoring.report_dir={tmp_path}/monitoring",
            "monitoring.simulation.rows=600",
        ]
    )
    train.train(cfg)
    version = crown(cfg)
    done = replay.replay(cfg)
    logs = pd.concat(map(pd.read_parquet, Path(tmp_path, "profiles").glob("*.predictions.parquet")))
    classes = sorted(logs["prediction"].unique())
    assert set(logs["model_version"]) == {version}
    assert {traffic.CONFIDENCE_COLUMN, *map(traffic.probability_column, classes)} <= set(logs.columns)
    assert all(f".model-{version}." in Path(path).name for path in done.profiles)
    result = monitor.monitor(cfg).result
    assert result.versions == {version: 600}
    assert f"served by model v{version} 600" in dashboards.headline(result)
    assert result.performance is not None
    assert result.performance.calibration is not None
    assert "roc_auc" in result.performance.metrics
