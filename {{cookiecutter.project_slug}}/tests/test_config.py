"""Configs are code: every group composes, every estimator instantiates, typos fail early."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate
from omegaconf import OmegaConf

from {{ cookiecutter.package_name }}.config import CONF_DIR, RENAMED, Config, ConfigError, Distance, compose


def options(group: str) -> list[str]:
    return sorted(path.stem for path in (CONF_DIR / group).glob("*.yaml"))


@pytest.mark.parametrize(
    "group", ["data", "validation", "model", "training", "mlflow", "serving", "monitoring"]
)
def test_config__every_option_of_every_group_composes(group: str) -> None:
    for option in options(group):
        assert isinstance(compose([f"{group}={option}"]), Config)


@pytest.mark.parametrize("model", options("model"))
def test_config__every_estimator_target_instantiates(model: str) -> None:
    cfg = compose([f"model={model}"])
    estimator = instantiate(OmegaConf.create(cfg.model.estimator))
    assert hasattr(estimator, "fit")
    assert cfg.model.name == model


@pytest.mark.parametrize("experiment", options("experiment"))
def test_config__every_experiment_overlay_composes(experiment: str) -> None:
    assert compose([f"experiment={experiment}"]).model.name


def test_config__misspelt_key_fails_at_composition() -> None:
    with pytest.raises(ConfigCompositionException):
        compose(["training.cv_fold=3"])


def test_config__wrong_type_fails_at_composition() -> None:
    with pytest.raises(ConfigCompositionException):
        compose(["training.cv_folds=many"])


def test_config__task_matches_the_template_choice() -> None:
    assert compose().task == "{{ cookiecutter.ml_task }}"


@pytest.mark.parametrize(("old", "new"), sorted(RENAMED.items()))
def test_config__renamed_key_fails_naming_the_new_one(old: str, new: str) -> None:
    with pytest.raises(ConfigError, match=f"{old} is now {new}"):
        compose([f"{old}=1"])
    assert OmegaConf.select(OmegaConf.structured(Config), new) is not None


def test_config__column_distances_compose_into_named_distances() -> None:
    cfg = compose(["+monitoring.column_distances={monthly_charges: wasserstein, contract: jensen_shannon}"])
    assert cfg.monitoring.column_distances == {
        "monthly_charges": Distance.wasserstein,
        "contract": Distance.jensen_shannon,
    }


def test_config__unknown_distance_fails_naming_the_column_the_value_and_the_choices(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    shutil.copytree(CONF_DIR, conf)
    monitoring = conf / "monitoring" / "default.yaml"
    written = monitoring.read_text().replace(
        "column_distances: {}", "column_distances: {contract: kolmogorov}"
    )
    monitoring.write_text(written)
    with pytest.raises(ConfigCompositionException) as failure:
        compose(conf_dir=conf)
    message = str(failure.value)
    assert "monitoring.column_distances.contract" in message
    assert "'kolmogorov'" in message
    assert "[ks, psi, jensen_shannon, wasserstein, hellinger]" in message
