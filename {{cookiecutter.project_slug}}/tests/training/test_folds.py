"""Cross-validation fold by fold: the scores scikit-learn gives, each fold told as it finishes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score

from conftest import ComposeFn
from {{ cookiecutter.package_name }} import evaluation
from {{ cookiecutter.package_name }}.config import Config
from {{ cookiecutter.package_name }}.data import Split, load_dataset, split
from {{ cookiecutter.package_name }}.training import folds, train
from {{ cookiecutter.package_name }}.training.preprocessing import infer_features
from tables import own_table

SMALL = {
    "linear": [],
    "random_forest": ["model.estimator.n_estimators=15"],
    "hgb": ["model.estimator.max_iter=20"],
}


def own_config(make_config: ComposeFn, tmp_path: Path, *overrides: str) -> Config:
    """The project's config on the task's own table (made here), three folds."""
    task = make_config().task
    frame, target = own_table(task)
    path = tmp_path / "own.csv"
    frame.to_csv(path, index=False)
    columns = (
        ["data.id_column=penguin_id", "data.drop_columns=[colony,observed,note]"]
        if task == evaluation.CLASSIFICATION
        else ["data.id_column=null", "data.drop_columns=[name,built]", "data.drop_missing_target=true"]
    )
    return make_config(
        f"data.path={path}", f"data.target={target}", *columns, "training.cv_folds=3", *overrides
    )


def training_split(cfg: Config) -> Split:
    return split(load_dataset(cfg.data), cfg.data, stratify=cfg.task == evaluation.CLASSIFICATION)


@pytest.mark.parametrize("model", list(SMALL))
def test_cross_validate__the_same_score_as_scikit_learn_s_cross_val_score(
    make_config: ComposeFn, tmp_path: Path, capsys: pytest.CaptureFixture[str], model: str
) -> None:
    """Run fold by fold to be heard, the folds score exactly what ``cross_val_score`` scored."""
    cfg = own_config(make_config, tmp_path, f"model={model}", *SMALL[model])
    data = training_split(cfg)
    pipeline = train.build_pipeline(cfg, infer_features(data.x_train, cfg.data))
    splitter = StratifiedKFold if cfg.task == evaluation.CLASSIFICATION else KFold
    cv = splitter(n_splits=3, shuffle=True, random_state=cfg.training.seed)
    scoring = train.SCORERS[cfg.training.primary_metric]

    expected = cross_val_score(pipeline, data.x_train, data.y_train, cv=cv, scoring=scoring)
    heard: list[folds.Fold] = []
    scores = folds.cross_val_scores(pipeline, data.x_train, data.y_train, cv, scoring, report=heard.append)

    assert scores == list(expected)
    assert [fold.score for fold in heard] == scores
    mean = float(expected.mean())
    assert train.cross_validate(cfg, pipeline, data) == (-mean if scoring.startswith("neg_") else mean)
    assert capsys.readouterr().out.count(" so far, about ") == 3


def test_cross_validate__prints_each_fold_as_it_finishes_with_the_time_so_far_and_what_is_left(
    make_config: ComposeFn, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = own_config(make_config, tmp_path, "model=random_forest", *SMALL["random_forest"])
    data = training_split(cfg)
    train.cross_validate(cfg, train.build_pipeline(cfg, infer_features(data.x_train, cfg.data)), data)
    lines = capsys.readouterr().out.splitlines()
    metric = cfg.training.primary_metric
    pattern = rf"  fold (\d)/3: {metric} \d+\.\d\d\d\d \((\d+\.\d)s so far, about \d+s left: (.+)\)"
    found = [re.fullmatch(pattern, line) for line in lines]
    assert all(found), lines
    assert [m.group(1) for m in found if m] == ["1", "2", "3"]
    assert [m.group(3) for m in found if m] == [
        "2 folds, then the final fit",
        "1 fold, then the final fit",
        "the final fit",
    ]
    elapsed = [float(m.group(2)) for m in found if m]
    assert elapsed == sorted(elapsed)


@pytest.mark.parametrize(
    ("number", "of", "elapsed_s", "left_s"),
    [
        (1, 5, 10.0, 40.0 + 12.5),  # four folds at 10 s, then a fit on 5/4 of a fold's rows
        (4, 5, 40.0, 10.0 + 12.5),
        (5, 5, 50.0, 12.5),  # only the final fit is left
        (1, 2, 6.0, 6.0 + 12.0),  # two folds: the final fit sees twice a fold's rows
    ],
)
def test_remaining_s__folds_to_come_at_the_pace_so_far_then_the_final_fit(
    number: int, of: int, elapsed_s: float, left_s: float
) -> None:
    assert folds.remaining_s(folds.Fold(number, of, 0.5, elapsed_s)) == pytest.approx(left_s)


def test_fold_line__an_error_metric_reads_as_the_metric_not_as_the_scorer_s_negation() -> None:
    line = folds.fold_line(folds.Fold(2, 5, -612.345, 8.0), "rmse", negated=True)
    assert line == "fold 2/5: rmse 612.3450 (8.0s so far, about 17s left: 3 folds, then the final fit)"


def test_cross_val_scores__a_fit_that_fails_raises_at_its_fold(
    make_config: ComposeFn, tmp_path: Path
) -> None:
    """No fold's failure is turned into a NaN score: the run stops, and ``whole_run`` deletes it."""
    cfg = own_config(make_config, tmp_path, "model=random_forest", "model.estimator.max_depth=-1")
    data = training_split(cfg)
    pipeline = train.build_pipeline(cfg, infer_features(data.x_train, cfg.data))
    heard: list[folds.Fold] = []
    scoring = train.SCORERS[cfg.training.primary_metric]
    with pytest.raises(ValueError, match="max_depth"):
        folds.cross_val_scores(pipeline, data.x_train, data.y_train, KFold(3), scoring, report=heard.append)
    assert heard == []
