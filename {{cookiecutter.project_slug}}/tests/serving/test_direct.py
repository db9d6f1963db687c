"""The direct model call answers exactly what the pipeline answers, or it is not used."""

from __future__ import annotations

import logging
from functools import cache
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder

from {{ cookiecutter.package_name }}.config import compose
from {{ cookiecutter.package_name }}.serving import schema, scoring
from {{ cookiecutter.package_name }}.serving.direct import direct_call
from {{ cookiecutter.package_name }}.training.preprocessing import infer_features
from {{ cookiecutter.package_name }}.training.train import build_pipeline
from tables import own_table

MODELS = ("random_forest", "linear", "hgb")


FREE_TEXT = ("note", "name")  # hundreds of values: ordinal encoding groups the rare ones


@cache
def fitted(model: str, free_text: bool = False) -> tuple[Pipeline, pd.DataFrame, pd.Series, str]:
    """The model as training builds it, fitted on a table that is not the sample."""
    cfg = compose([f"model={model}"])
    table, target = own_table(cfg.task)
    table = table.dropna(subset=[target])
    dropped = [target, table.columns[0] if cfg.task == "classification" else "built"]
    features = table.drop(columns=dropped + ([] if free_text else [c for c in FREE_TEXT if c in table]))
    pipeline = build_pipeline(cfg, infer_features(features, cfg.data))
    pipeline.fit(features, table[target])
    method = "predict_proba" if cfg.task == "classification" else "predict"
    return pipeline, features, table[target], method


@st.composite
def queries(draw: st.DrawFn, features: pd.DataFrame) -> pd.DataFrame:
    """Rows a client may send: seen values, unseen text, any number, and nulls, mixed in one batch."""
    rows = draw(st.integers(1, 12))
    columns: dict[str, list[Any]] = {}
    for name in features.columns:
        seen = st.sampled_from(features[name].dropna().tolist())
        if pd.api.types.is_numeric_dtype(features[name]):
            other = st.floats(-1e6, 1e6, allow_nan=False)
        else:
            other = st.text(max_size=6)
        columns[name] = draw(st.lists(st.one_of(seen, other, st.none()), min_size=rows, max_size=rows))
    frame = pd.DataFrame(columns)
    numeric = [name for name in features.columns if pd.api.types.is_numeric_dtype(features[name])]
    return frame.astype(dict.fromkeys(numeric, "float64"))


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.slow
def test_direct__answers_exactly_as_the_pipeline_for_rows_users_send(model: str) -> None:
    pipeline, features, _, method = fitted(model)
    direct = direct_call(pipeline, method)
    assert direct is not None, f"{model}: every step training builds has a direct call"

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(queries(features))
    def same(frame: pd.DataFrame) -> None:
        np.testing.assert_array_equal(direct(frame), getattr(pipeline, method)(frame))

    same()
    np.testing.assert_array_equal(direct(features), getattr(pipeline, method)(features))


def test_direct__a_step_it_does_not_know_keeps_the_pipeline_s_own_call() -> None:
    pipeline, _, _, method = fitted("linear")
    unknown = Pipeline([("log", FunctionTransformer(lambda x: x)), *pipeline.steps])
    assert direct_call(unknown, method) is None


def test_direct__an_encoder_setting_it_does_not_cover_keeps_the_pipeline_s_own_call() -> None:
    _, features, target, method = fitted("linear")
    dropping = ColumnTransformer(
        [
            (
                "cat",
                OneHotEncoder(drop="first", sparse_output=False),
                ["origin" if "origin" in features else "island"],
            )
        ]
    )
    final = LinearRegression() if method == "predict" else LogisticRegression()
    assert direct_call(Pipeline([("pre", dropping), ("model", final)]).fit(features, target), method) is None


def test_direct__rare_categories_grouped_in_training_get_the_group_s_code() -> None:
    pipeline, features, _, method = fitted("hgb", free_text=True)
    encoder = pipeline[0].named_transformers_["cat"]
    assert any(group is not None for group in encoder.infrequent_categories_), "the table has rare values"
    direct = direct_call(pipeline, method)
    assert direct is not None
    np.testing.assert_array_equal(direct(features), getattr(pipeline, method)(features))


def test_scorer__uses_the_direct_call_only_when_it_agrees_on_load(caplog: pytest.LogCaptureFixture) -> None:
    pipeline, features, _, method = fitted("random_forest")
    probe = features.head(3)
    plain = getattr(pipeline, method)
    assert scoring.verified(direct_call(pipeline, method), plain, probe) is not None
    with caplog.at_level(logging.WARNING):
        assert scoring.verified(lambda frame: plain(frame) + 1e-12, plain, probe) is None
    assert "differs from the pipeline's" in caplog.text


def test_scorer__serves_training_s_models_by_the_direct_call() -> None:
    for model in MODELS:
        pipeline, features, _, _ = fitted(model)
        task = compose([]).task
        scorer = scoring.Scorer(pipeline, columns_of(features), task, None, False, examples=features.head(3))
        assert scorer.direct, model


def columns_of(features: pd.DataFrame) -> list[schema.Column]:
    """The signature training would log for these features."""
    return [
        schema.Column(name, "double" if pd.api.types.is_numeric_dtype(features[name]) else "string")
        for name in features.columns
    ]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
@pytest.mark.slow
def test_scorer__a_row_s_answer_does_not_depend_on_the_rows_sharing_its_batch(data: st.DataObject) -> None:
    pipeline, features, _, _ = fitted("random_forest")
    columns = columns_of(features)
    scorer = scoring.Scorer(pipeline, columns, compose([]).task, None, False, examples=features.head(3))
    row_model = schema.row_model(columns, None, {}, max_text_chars=100)
    sent = data.draw(queries(features))
    rows = [
        row_model.model_validate({k: None if pd.isna(v) else v for k, v in record.items()})
        for record in sent.astype(object).to_dict(orient="records")
    ]
    together = scorer.score(scorer.frame(rows))
    alone = [scorer.score(scorer.frame([row])) for row in rows]
    assert together[0] == [label for labels, _ in alone for label in labels]
    np.testing.assert_array_equal(together[1], np.vstack([p for _, p in alone]))
