"""Native thread pools held to ``training.threads``: the cores this process may use by default."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from threadpoolctl import threadpool_info

from conftest import ComposeFn
from {{ cookiecutter.package_name }} import adopt, evaluation, registry
from {{ cookiecutter.package_name }}.config import CONF_DIR, Config, ConfigError, DataConfig
from {{ cookiecutter.package_name }}.training import folds, threads, train
from tables import own_table, penguins

HGB_FIT = ("model=hgb", "model.estimator.max_iter=20", "training.cv_folds=2")


def openmp_threads() -> set[int]:
    """What each loaded OpenMP runtime would use now (scikit-learn's HGB loads one)."""
    return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "openmp"}


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="no CPU affinity on this OS")
def test_thread_count__null_is_the_cores_this_process_may_use() -> None:
    assert threads.thread_count(None) == len(os.sched_getaffinity(0))
    assert threads.thread_count(3) == 3  # more than the cores is the user's call


@pytest.mark.parametrize("configured", [0, -2])
def test_thread_count__fewer_than_one_is_refused_in_one_line(configured: int) -> None:
    with pytest.raises(ConfigError, match=rf"training.threads={configured}: give 1 or more threads"):
        threads.thread_count(configured)


def test_limited__caps_the_openmp_pool_inside_the_block_and_restores_it() -> None:
    HistGradientBoostingRegressor(max_iter=2).fit(np.arange(40.0).reshape(20, 2), np.arange(20.0))
    before = openmp_threads()
    assert before, "scikit-learn's OpenMP runtime is not loaded"
    with threads.limited(1) as count:
        assert count == 1
        assert openmp_threads() == {1}
    assert openmp_threads() == before


def test_limited__the_thread_count_does_not_change_a_fitted_boosting_model() -> None:
    """Why ``training.threads`` is left out of the config digest: one thread or all, the same model."""
    frame = penguins(rows=2000)
    x, y = frame[["bill_length_mm", "body_mass_g"]], frame["species"]
    probabilities = []
    for count in (1, threads.available_cores()):
        with threads.limited(count):
            model = HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(x, y)
            probabilities.append(model.predict_proba(x))
    assert np.array_equal(*probabilities)


def test_train__cross_validates_and_fits_within_training_threads(
    make_config: ComposeFn,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The folds run with every OpenMP pool at ``training.threads``, and the log says how many."""
    seen: list[set[int]] = []
    real = folds.cross_val_scores

    def watched(*args: Any, **kwargs: Any) -> list[float]:
        seen.append(openmp_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(folds, "cross_val_scores", watched)
    cfg = own_config(make_config, tmp_path, *HGB_FIT, "training.threads=1")
    train.train(cfg)
    assert seen == [{1}]
    assert ", 1 thread)" in capsys.readouterr().out
    assert train.config_digest(cfg) == train.config_digest(own_config(make_config, tmp_path, *HGB_FIT))


def test_train__a_thread_count_below_one_trains_nothing(make_config: ComposeFn, tmp_path: Path) -> None:
    cfg = own_config(make_config, tmp_path, *HGB_FIT, "training.threads=0")
    with pytest.raises(ConfigError, match=r"training\.threads=0"):
        train.train(cfg)
    registry.connect(cfg.mlflow)
    assert mlflow.search_runs(search_all_experiments=True).empty


def own_config(make_config: ComposeFn, tmp_path: Path, *overrides: str) -> Config:
    """The project's config on the task's own table (made here, not the sample), adopted in a conf/ copy."""
    conf = tmp_path / "conf"
    if not conf.is_dir():
        shutil.copytree(CONF_DIR, conf)
        frame, target = own_table(make_config().task)
        frame.to_csv(tmp_path / "own.csv", index=False)
        classification = make_config().task == evaluation.CLASSIFICATION
        adopt.adopt(DataConfig(path=str(tmp_path / "own.csv"), target=target), classification, conf)
    return make_config(*overrides, conf_dir=conf)
