"""Your own table: adopt it, and every way it can be wrong is refused in one line, before a run."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from conftest import QUICK_FOREST, ComposeFn
from {{ cookiecutter.package_name }} import adopt, evaluation, registry, validation
from {{ cookiecutter.package_name }}.config import CONF_DIR, PROJECT_ROOT, Config, DataConfig, compose
from {{ cookiecutter.package_name }}.data import DataError, load_table
from {{ cookiecutter.package_name }}.training import train
from tables import in_target_order, own_table, penguins

SAMPLE_FILES = ["data/sample/contract.yaml", "data/sample/reference.bin", "conf/config.yaml"]
Adopted = Callable[..., Config]


def fingerprint(paths: list[str]) -> dict[str, str]:
    return {p: hashlib.sha256((PROJECT_ROOT / p).read_bytes()).hexdigest() for p in paths}


@pytest.fixture
def task() -> str:
    return compose().task


@pytest.fixture
def adopted(tmp_path: Path, task: str, make_config: ComposeFn) -> Callable[[pd.DataFrame, str], Config]:
    """Adopt a table into a copy of conf/; returns a composer of the project's config over that copy."""
    conf = tmp_path / "conf"
    shutil.copytree(CONF_DIR, conf)

    def run(frame: pd.DataFrame, target: str, *overrides: str) -> Config:
        table = tmp_path / "tables" / "mine.csv"
        table.parent.mkdir(exist_ok=True)
        frame.to_csv(table, index=False)
        adopt.adopt(DataConfig(path=str(table), target=target), task == evaluation.CLASSIFICATION, conf)
        model = [] if any(o.startswith("model=") for o in overrides) else QUICK_FOREST
        return make_config("training.cv_folds=2", *model, *overrides, conf_dir=conf)

    return run


def runs(cfg: Config) -> int:
    """MLflow runs in the test's store (a refused table must leave none)."""
    registry.connect(cfg.mlflow)
    return len(mlflow.search_runs(search_all_experiments=True))


def test_adopt__roles_with_reasons_files_next_to_the_table_and_the_sample_untouched(
    adopted: Adopted, task: str, tmp_path: Path
) -> None:
    before = fingerprint(SAMPLE_FILES)
    frame, target = own_table(task)
    cfg = adopted(frame, target)

    assert cfg.data.target == target
    assert cfg.validation.contract_path == str(tmp_path / "tables" / "mine.contract.yaml")
    assert (tmp_path / "tables" / "mine.reference.bin").is_file()
    dropped = set(cfg.data.drop_columns)
    if task == evaluation.CLASSIFICATION:
        assert cfg.data.id_column == "penguin_id"
        assert dropped == {"colony", "observed", "note"}  # constant, a date, free text
        assert not cfg.data.drop_missing_target
    else:
        assert cfg.data.id_column is None
        assert dropped == {"name", "built"}  # free text, a date
        assert cfg.data.drop_missing_target  # the table has rows without mpg
    config = (tmp_path / "conf" / "data" / "mine.yaml").read_text()
    assert "# a date" in config  # each drop says why, in the file the user reviews
    assert fingerprint(SAMPLE_FILES) == before
    assert validation.validate_file(cfg.data, cfg.validation).passed


def test_adopt__an_adopted_table_trains_a_candidate(adopted: Adopted, task: str) -> None:
    frame, target = own_table(task)
    cfg = adopted(frame, target)
    result = train.train(cfg)
    assert result.registered_as_candidate
    assert result.rows == len(frame) - int(frame[target].isna().sum())
    assert set(result.metrics) >= ({"f1_macro"} if task == evaluation.CLASSIFICATION else {"rmse"})
    if task == evaluation.CLASSIFICATION:  # what the pull request shows beside the headline metric
        assert set(result.breakdown["per_class"]) == set(frame[target].dropna())
        assert sum(map(sum, result.breakdown["confusion"]["rows"])) == sum(
            m["rows"] for m in result.breakdown["per_class"].values()
        )
    else:
        assert result.breakdown["residuals"]["p5"] <= result.breakdown["residuals"]["p95"]


def test_adopt__a_leakage_suspect_is_dropped_with_its_reason(
    adopted: Adopted, task: str, tmp_path: Path
) -> None:
    frame, target = own_table(task)
    known = frame[target].notna()
    frame["answer"] = (
        frame[target].astype("category").cat.codes if task == "classification" else frame[target] * 2
    )
    frame.loc[~known, "answer"] = None
    cfg = adopted(frame, target)
    assert "answer" in cfg.data.drop_columns
    assert "leakage suspect" in (tmp_path / "conf" / "data" / "mine.yaml").read_text()


def usual_drops(task: str) -> set[str]:
    """What adopting the task's own table drops, before a test adds a column."""
    return {"colony", "observed", "note"} if task == evaluation.CLASSIFICATION else {"name", "built"}


def test_adopt__a_row_number_in_target_order_is_dropped_as_an_index_with_its_reason(
    adopted: Adopted, task: str, tmp_path: Path
) -> None:
    frame, target = own_table(task)
    cfg = adopted(in_target_order(frame, target), target)
    assert set(cfg.data.drop_columns) == usual_drops(task) | {"row", "ticket"}
    config = (tmp_path / "conf" / "data" / "mine.yaml").read_text()
    assert "- row  # an index: unique whole numbers from 1 in steps of 1 number the rows" in config
    assert "- ticket  # an index: unique whole numbers from 100 in steps of 10 number the rows" in config


def test_adopt__a_column_that_alone_predicts_the_target_far_better_than_the_rest_is_dropped(
    adopted: Adopted, task: str, tmp_path: Path
) -> None:
    """A ledger kept in target order, with uneven gaps and two rows filed in each other's place.

    Neither evenly spaced (no index), nor in disjoint class ranges, nor correlated 0.98 with the
    target: only a tree on it alone, against one on every other feature, shows it gives the answer.
    """
    frame, target = own_table(task)
    order = frame[target].rank(method="first").to_numpy()
    ledger = np.exp(order / len(frame) * 4) * 1000 + order  # uneven gaps, in target order
    if task == evaluation.CLASSIFICATION:  # the first class's last entry swapped with the next's first
        boundary = int((frame[target] == frame[target].min()).sum())
        swapped = [int(np.flatnonzero(order == boundary)[0]), int(np.flatnonzero(order == boundary + 1)[0])]
        ledger[swapped] = ledger[swapped[::-1]]
    frame["ledger"] = ledger.round(1)
    classes = frame[target].astype("category").cat.codes.where(frame[target].notna())
    assert abs(frame["ledger"].corr(classes if task == evaluation.CLASSIFICATION else frame[target])) < 0.98
    cfg = adopted(frame, target)
    assert set(cfg.data.drop_columns) == usual_drops(task) | {"ledger"}
    config = (tmp_path / "conf" / "data" / "mine.yaml").read_text()
    assert f"- ledger  # leakage suspect: alone it predicts '{target}' far better than all other" in config


def test_adopt__ordinal_words_are_a_category_not_a_date(adopted: Adopted, task: str) -> None:
    frame, target = own_table(task)
    frame["travel_class"] = np.random.default_rng(2).choice(["1st", "2nd", "3rd"], len(frame))
    cfg = adopted(frame, target)
    assert "travel_class" not in cfg.data.drop_columns
    assert set(cfg.data.drop_columns) == usual_drops(task)


@pytest.mark.parametrize(
    ("values", "kind"),
    [
        (["1st", "2nd", "3rd"] * 20, "categorical"),
        ([f"2024-{m:02d}-{d:02d}" for m in range(1, 13) for d in (1, 9, 28)], "date"),
        ([f"{d:02d}/{m:02d}/2023" for m in range(1, 13) for d in (1, 9, 28)], "date"),  # day first
        ([f"{d:02d}/{m:02d}/2023" for m in range(1, 13) for d in (1, 9)], "date"),  # day first, never past 12
    ],
    ids=["ordinals", "iso", "day-first", "day-first-ambiguous"],
)
def test_kind_of__a_date_is_a_format_that_parses_nearly_every_value(values: list[str], kind: str) -> None:
    assert adopt.kind_of(pd.Series(values, dtype=object)) == kind


def test_adopt_data__a_text_target_in_a_regression_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    """The real command, as a user runs it on a classes table in a regression project."""
    table = tmp_path / "penguins.csv"
    penguins().to_csv(table, index=False)
    conf_before = {p: p.read_bytes() for p in CONF_DIR.rglob("*") if p.is_file()}
    reports = tmp_path / "reports"
    result = subprocess.run(
        [
            "adopt-data",
            "task=regression",
            f"data.path={table}",
            "data.target=species",
            f"training.report_dir={reports}/training",
            f"validation.report_dir={reports}/validation",
            f"hydra.run.dir={tmp_path}/hydra",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env={k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"},  # Hydra's own hint shows
    )
    assert result.returncode == 1
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith("[adopt-data] error: ")
    assert "data.target='species' is text ('" in errors[0]
    assert "this project is a regression" in errors[0]
    assert "ml_task=classification" in errors[0]
    assert "data.target=<column> (numeric columns: bill_length_mm, body_mass_g)" in errors[0]
    assert "Traceback" not in result.stdout + result.stderr
    assert "HYDRA_FULL_ERROR" not in result.stdout + result.stderr
    assert sorted(p.name for p in tmp_path.glob("penguins*")) == ["penguins.csv"]  # no contract, no reference
    assert {p: p.read_bytes() for p in CONF_DIR.rglob("*") if p.is_file()} == conf_before


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f, t: f.assign(extra=1.0 + f.index % 7), "extra: unexpected: column is not in the contract"),
        (lambda f, t: f.assign(**{t: f[t].where(f.index >= 5)}), "5 rows have no target value"),
    ],
    ids=["unexpected-column", "missing-target"],
)
@pytest.mark.slow
def test_adopt__train_refuses_what_the_contract_does_not_allow_and_makes_no_run(
    adopted: Adopted,
    task: str,
    change: Callable[[pd.DataFrame, str], pd.DataFrame],
    message: str,
    tmp_path: Path,
) -> None:
    frame, target = own_table(task)
    cfg = adopted(frame.dropna(subset=[target]), target)
    change(frame.dropna(subset=[target]).reset_index(drop=True), target).to_csv(cfg.data.path, index=False)
    with pytest.raises(DataError, match=message):
        train.train(cfg)
    assert runs(cfg) == 0


def test_adopt__a_column_renamed_after_validation_is_named_in_one_line_and_trains_nothing(
    adopted: Adopted, task: str
) -> None:
    frame, target = own_table(task)
    cfg = adopted(frame, target)
    assert validation.validate_file(cfg.data, cfg.validation).passed
    column = "body_mass_g" if task == evaluation.CLASSIFICATION else "weight"
    frame.rename(columns={column: "mass"}).to_csv(cfg.data.path, index=False)
    with pytest.raises(
        DataError, match=rf"columns changed since the contract: {column} gone, mass new \(renamed"
    ):
        train.train(cfg)
    assert runs(cfg) == 0


@pytest.mark.slow
def test_adopt__a_fit_that_fails_leaves_no_half_made_run(adopted: Adopted, task: str) -> None:
    frame, target = own_table(task)
    cfg = adopted(frame, target, "model.estimator.max_depth=-1")  # refused by scikit-learn at fit time
    with pytest.raises(ValueError, match="max_depth"):
        train.train(cfg)
    assert runs(cfg) == 0


@pytest.mark.slow
def test_adopt__values_outside_the_contract_train_only_when_overridden_and_the_run_says_so(
    adopted: Adopted, task: str
) -> None:
    frame, target = own_table(task)
    column = "body_mass_g" if task == evaluation.CLASSIFICATION else "weight"
    changed = frame.copy()
    changed.loc[changed.index[:4], column] = frame[column].max() * 3  # four values past the contract's range
    cfg = adopted(frame, target)
    changed.to_csv(cfg.data.path, index=False)
    with pytest.raises(DataError, match=rf"{column}: range: 4 values outside"):
        train.train(cfg)
    assert runs(cfg) == 0
    overridden = adopted(frame, target, "training.override_data_gate=true")  # the same contract again
    changed.to_csv(overridden.data.path, index=False)
    result = train.train(overridden)
    run = registry.connect(overridden.mlflow).get_run(result.run_id)
    assert run.data.tags["data_gate"].startswith("overridden: ")
    assert run.data.params["training.override_data_gate"] == "True"


@pytest.mark.slow
def test_adopt__no_override_trains_a_table_of_another_shape(adopted: Adopted, task: str) -> None:
    frame, target = own_table(task)
    cfg = adopted(frame, target, "training.override_data_gate=true")
    frame.assign(extra=1.0).to_csv(cfg.data.path, index=False)
    with pytest.raises(DataError, match="extra: unexpected"):
        train.train(cfg)
    assert runs(cfg) == 0


@pytest.mark.slow
def test_adopt__a_target_that_is_not_a_column_is_named_with_the_columns(adopted: Adopted, task: str) -> None:
    frame, target = own_table(task)
    cfg = adopted(frame, target, "data.target=label")
    with pytest.raises(DataError, match=r"data.target='label' is not a column \(columns: "):
        train.train(cfg)
    assert runs(cfg) == 0


@pytest.mark.slow
def test_adopt__a_class_too_rare_for_the_split_and_folds_is_refused_by_name(
    adopted: Adopted, task: str
) -> None:
    if task != evaluation.CLASSIFICATION:
        pytest.skip("classes exist in classification projects only")
    frame, target = own_table(task)
    frame.loc[frame.index[:3], target] = "Emperor"
    cfg = adopted(frame, target)
    with pytest.raises(DataError, match=r"too few rows of class 'Emperor' \(3\)"):
        train.train(cfg)
    assert runs(cfg) == 0


@pytest.mark.slow
def test_adopt__a_worse_model_leaves_the_candidate_where_it_is(adopted: Adopted, task: str) -> None:
    frame, target = own_table(task)
    good = train.train(adopted(frame, target))
    any_score = "0" if task == evaluation.CLASSIFICATION else "1e9"  # past the floor, to reach the rule
    stump = ["model.estimator.max_depth=1", "model.estimator.n_estimators=1"]
    worse = train.train(adopted(frame, target, *stump, f"training.min_primary_metric={any_score}"))
    assert not worse.registered_as_candidate
    assert "worse than the candidate" in worse.standing
    cfg = adopted(frame, target)
    current = registry.version_by_alias(
        registry.connect(cfg.mlflow), cfg.mlflow.model_name, registry.CANDIDATE
    )
    assert current is not None
    assert str(current.version) == good.model_version


@pytest.mark.slow
def test_adopt__the_table_is_stored_once_per_digest(adopted: Adopted, task: str) -> None:
    """A second run on the same rows points at the first run's copy instead of storing another."""
    frame, target = own_table(task)
    cfg = adopted(frame, target)
    first, second = train.train(cfg), train.train(cfg)
    client = registry.connect(cfg.mlflow)
    assert "data" in {a.path for a in client.list_artifacts(first.run_id)}
    assert "data" not in {a.path for a in client.list_artifacts(second.run_id)}
    snapshot = client.get_run(second.run_id).data.tags["data_snapshot"]
    assert snapshot.startswith(f"runs:/{first.run_id}/data/")
    assert len(load_table(mlflow.artifacts.download_artifacts(snapshot))) == len(frame)


@pytest.mark.slow
def test_adopt__many_categories_train_with_native_categorical_boosting(adopted: Adopted, task: str) -> None:
    """HistGradientBoosting takes at most 255 categories per column; rarer ones share one code."""
    frame, target = own_table(task)
    frame = pd.concat([frame] * 3, ignore_index=True)
    frame["dealer"] = [f"dealer {i % 300}" for i in range(len(frame))]  # 300 values, repeated: a category
    frame = frame.drop(columns=[c for c in ("penguin_id",) if c in frame.columns])
    cfg = adopted(frame, target, "model=hgb", "model.estimator.max_iter=20")
    assert "dealer" not in cfg.data.drop_columns
    assert train.train(cfg).registered_as_candidate


def test_load__a_semicolon_file_with_a_byte_order_mark_reads_as_its_columns(
    task: str, tmp_path: Path
) -> None:
    frame, _ = own_table(task)
    frame.to_csv(tmp_path / "excel.csv", index=False, sep=";", encoding="utf-8-sig")
    read = load_table(tmp_path / "excel.csv")
    assert list(read.columns) == list(frame.columns)
    assert len(read) == len(frame)


def test_load__a_file_that_is_not_utf8_says_how_to_convert_it(tmp_path: Path) -> None:
    (tmp_path / "latin.csv").write_bytes("name,city\nJosé,Zürich\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin\.csv: not UTF-8 text .*iconv"):
        load_table(tmp_path / "latin.csv")
