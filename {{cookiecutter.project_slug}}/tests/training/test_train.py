"""Training: every estimator trains on the sample; runs carry metrics, lineage and a loadable model."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from conftest import ComposeFn
from crowning import crown
from {{ cookiecutter.package_name }} import evaluation, registry
from {{ cookiecutter.package_name }}.config import PROJECT_ROOT, Config
from {{ cookiecutter.package_name }}.data import DataError, load_table, split
from {{ cookiecutter.package_name }}.deployment import state
from {{ cookiecutter.package_name }}.reports import ci_page
from {{ cookiecutter.package_name }}.training import selection, train

TASK_METRICS = {
    "classification": {"accuracy", "balanced_accuracy", "f1_macro", "roc_auc"},
    "regression": {"rmse", "mae", "r2"},
}


@pytest.mark.slow
@pytest.mark.parametrize("model", ["linear", "random_forest", "hgb"])
def test_train__every_estimator_trains_and_registers_a_candidate(make_config: ComposeFn, model: str) -> None:
    cfg = make_config(f"model={model}", "training.cv_folds=2")
    result = train.train(cfg)
    assert set(result.metrics) == TASK_METRICS[cfg.task]
    assert result.registered_as_candidate
    client = registry.connect(cfg.mlflow)
    version = registry.version_by_alias(client, cfg.mlflow.model_name, registry.CANDIDATE)
    assert version is not None
    assert str(version.version) == result.model_version


def test_train__model_is_logged_with_lineage_and_reloads_identically(quick: Config) -> None:
    result = train.train(quick)
    client = registry.connect(quick.mlflow)
    assert result.model_version is not None
    lineage = registry.lineage(client, quick.mlflow.model_name, result.model_version)
    assert lineage.run_id == result.run_id
    assert lineage.data_digest == result.data_digest
    run = client.get_run(result.run_id)
    assert run.inputs.dataset_inputs[0].dataset.digest == result.data_digest
    assert {"test_" + m for m in result.metrics} <= set(run.data.metrics)
    artifacts = {a.path for a in client.list_artifacts(result.run_id)}
    assert {"config", "data", "plots"} <= artifacts
    snapshot = mlflow.artifacts.download_artifacts(lineage.data_artifact)
    assert load_table(snapshot).equals(load_table(quick.data.path))
    data = split(load_table(quick.data.path), quick.data, stratify=quick.task == "classification")
    model = registry.load(quick.mlflow.model_name, registry.CANDIDATE)
    x_test = data.x_test[list(model.feature_names_in_)]
    assert evaluation.score(quick.task, model, x_test, data.y_test) == pytest.approx(result.metrics)


def test_train__model_below_the_bar_is_not_registered(make_config: ComposeFn) -> None:
    impossible = "1.1" if make_config().task == "classification" else "0.0"  # past the best score
    cfg = make_config(
        "model=random_forest",
        "model.estimator.n_estimators=5",
        "training.cv_folds=2",
        f"training.min_primary_metric={impossible}",
    )
    result = train.train(cfg)
    assert not result.registered_as_candidate
    assert result.model_version is None
    assert registry.version_by_alias(MlflowClient(), cfg.mlflow.model_name, registry.CANDIDATE) is None


def test_compare__first_candidate_promotes_then_a_worse_one_does_not(make_config: ComposeFn) -> None:
    good = make_config("model=random_forest", "model.estimator.n_estimators=30", "training.cv_folds=2")
    train.train(good)
    first = selection.compare(good)
    assert first.promote
    assert first.champion is None
    crown(good)
    classification = good.task == "classification"
    crippled = "model.estimator.max_iter=1" if classification else "model.estimator.alpha=100000"
    no_floor = f"training.min_primary_metric={0.0 if classification else 1e12}"
    weak = make_config("model=linear", crippled, no_floor, "training.cv_folds=2")
    train.train(weak)
    second = selection.compare(weak)
    assert not second.promote
    assert second.champion_version == first.candidate_version


@pytest.mark.slow
def test_compare__retraining_the_champion_unchanged_promotes_nothing(make_config: ComposeFn) -> None:
    cfg = make_config("model=random_forest", "model.estimator.n_estimators=10", "training.cv_folds=2")
    train.train(cfg)
    crown(cfg)
    train.train(cfg)  # the same push again: same data, same config, same seed
    again = selection.compare(cfg)
    assert not again.promote
    assert "same data and training config" in again.reason
    other = make_config("model=random_forest", "model.estimator.n_estimators=11", "training.cv_folds=2")
    train.train(other)
    assert "same data" not in selection.compare(other).reason  # a changed config is compared on merit


def production_recording(
    make_config: ComposeFn, tmp_path: Path, scores: state.Scores | None, *overrides: str
) -> Config:
    """A config whose deploy/production.yaml serves v7, with ``scores`` recorded for it (or none).

    The file is written the way a release's promotion writes it; the registry stays the one this
    test trains into, which has no champion: a pull request's job, whatever the project tracks to.
    """
    desired = tmp_path / "deploy"
    shipped = state.load(PROJECT_ROOT / "deploy" / "production.yaml")
    promoted = state.with_release(shipped, state.Release("svc:v7", "7"), scores)
    state.dump(promoted, desired / "production.yaml", "promote")
    return make_config(*QUICK, f"deploy.desired_dir={desired}", *overrides)


QUICK = ["model=random_forest", "model.estimator.n_estimators=5", "training.cv_folds=2"]


def held_out(cfg: Config) -> tuple[int, str]:
    """The test split's row count and digest, as compare sees them."""
    data = split(load_table(cfg.data.path), cfg.data, stratify=cfg.task == "classification")
    return len(data.x_test), selection.rows_digest(data)


@pytest.mark.parametrize("same_rows", [True, False])
def test_compare__without_a_champion_gates_against_the_scores_production_records(
    make_config: ComposeFn, tmp_path: Path, same_rows: bool
) -> None:
    probe = make_config(*QUICK)
    metric, rows = probe.training.primary_metric, held_out(probe)
    unbeatable = 1.0 if probe.training.greater_is_better else 0.0  # a recorded score no candidate beats
    digest = rows[1] if same_rows else "0" * 64
    cfg = production_recording(make_config, tmp_path, state.Scores({metric: unbeatable}, rows[0], digest))
    train.train(cfg)

    decision = selection.compare(cfg)

    assert not decision.promote
    assert (decision.champion, decision.champion_version) == (unbeatable, "7")
    assert decision.champion_source == "recorded"
    assert (decision.test_rows, decision.test_digest) == rows
    on = "the same held-out rows" if same_rows else "other held-out rows"
    assert f"against the score deploy/production.yaml records for v7 on {on}" in decision.reason
    page = ci_page.render(Path(decision.write(tmp_path / "reports" / "training" / "gate.json")).parent.parent)
    held = "same held-out rows" if same_rows else "other held-out rows"
    assert f"| {metric} ({held}) | {unbeatable:.4g} |" in page
    assert "|  | live (recorded scores) | proposed (candidate) | change |" in page
    assert f"this job's {rows[0]} test rows are {'the same' if same_rows else 'other'} rows" in page


def test_compare__with_nothing_recorded_for_production_s_model_says_so_and_advises_nothing(
    make_config: ComposeFn, tmp_path: Path
) -> None:
    """A pull request before any recorded promotion: one honest sentence, no setting to change."""
    cfg = production_recording(make_config, tmp_path, None)
    train.train(cfg)

    decision = selection.compare(cfg)

    assert decision.champion is None
    assert decision.champion_version == "7"
    assert decision.reason == (
        "no champion to compare with: the registry here (a local store) has no 'champion' alias, "
        "and deploy/production.yaml records no held-out scores for its live model v7 (the release that "
        "proposes a model records them)"
    )
    page = ci_page.render(Path(decision.write(tmp_path / "reports" / "training" / "gate.json")).parent.parent)
    assert "mlflow_tracking" not in page
    assert "no live score recorded" in page


def test_compare__scores_what_production_records_for_the_next_promotion(
    make_config: ComposeFn, tmp_path: Path
) -> None:
    """Every metric of the candidate, its test rows and their digest: what propose-promotion records."""
    cfg = production_recording(make_config, tmp_path, None)
    result = train.train(cfg)

    decision = selection.compare(cfg)

    assert decision.candidate_metrics == pytest.approx(result.metrics)
    gate = json.loads(decision.write(tmp_path / "gate.json").read_text())
    recorded = state.scores_of(gate, str(result.model_version))
    assert recorded is not None
    assert (recorded.test_rows, recorded.test_digest) == held_out(cfg)


def test_train__a_table_the_data_gate_refuses_trains_nothing(make_config: ComposeFn, tmp_path: Path) -> None:
    sample = load_table("data/sample/customers.csv")
    broken = tmp_path / "broken.csv"
    sample.drop(columns=["tenure_months"]).to_csv(broken, index=False)  # breaks the contract
    cfg = make_config("model=random_forest", "model.estimator.n_estimators=5", f"data.path={broken}")
    with pytest.raises(DataError, match=r"fails the data gate .*tenure_months"):
        train.train(cfg)
    client = registry.connect(cfg.mlflow)
    assert client.search_runs([client.get_experiment_by_name(cfg.mlflow.experiment).experiment_id]) == []
    assert registry.version_by_alias(client, cfg.mlflow.model_name, registry.CANDIDATE) is None


def test_train__metrics_per_segment_add_up_to_the_test_split(quick: Config) -> None:
    """Each segment's metrics are the task's metrics on its rows alone; the rows add up."""
    result = train.train(quick)
    segments = result.breakdown["segments"]
    assert set(segments) == set(quick.data.segments) == {"contract", "region"}
    data = split(load_table(quick.data.path), quick.data, stratify=quick.task == "classification")
    model = registry.load(quick.mlflow.model_name, registry.CANDIDATE)
    x_test = data.x_test[list(model.feature_names_in_)]
    for column, levels in segments.items():
        assert sum(level["rows"] for level in levels.values()) == len(x_test)
        value = next(iter(sorted(levels)))
        rows = (x_test[column].astype("string").fillna(evaluation.MISSING_SEGMENT) == value).to_numpy()
        alone = evaluation.score(quick.task, model, x_test[rows], data.y_test[rows])
        metric = quick.training.primary_metric
        assert levels[value][metric] == pytest.approx(alone[metric])


def test_train__segments_that_are_not_features_train_nothing(make_config: ComposeFn) -> None:
    cfg = make_config("model=random_forest", "model.estimator.n_estimators=5", "data.segments=[regoin]")
    with pytest.raises(DataError, match=r"data.segments names \['regoin'\], which are not feature columns"):
        train.train(cfg)
    client = registry.connect(cfg.mlflow)
    assert client.search_runs([client.get_experiment_by_name(cfg.mlflow.experiment).experiment_id]) == []
