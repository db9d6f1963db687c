"""The fitted pipeline's own arithmetic, called directly: what a lone request waits for.

scikit-learn checks its input at every step of every call (column names, dtypes, tags,
finiteness) and hands each tree of a forest to joblib, whose wrapper re-installs every warnings
filter of the process around each tree. On a single row that is about 6.7 ms of a 7.2 ms
random-forest call; the arithmetic itself takes about 0.5 ms. For the steps this project's
preprocessing builds (``SimpleImputer``, ``OneHotEncoder``, ``OrdinalEncoder``,
``StandardScaler`` inside a ``ColumnTransformer``) and for one-job bagged forests, this module
reads the fitted attributes and does the same arithmetic in the same order. Any other step
keeps the pipeline's own call, and the scorer uses the direct call only after it answered
exactly as the pipeline did (:func:`serving.scoring.verified`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

Array = np.ndarray[Any, Any]
Predict = Callable[[pd.DataFrame], Array]
Step = Callable[[Array], Array]
MISSING = object()  # NaN is never equal to itself, so it cannot be a dictionary key
FORESTS = (RandomForestClassifier, RandomForestRegressor, ExtraTreesClassifier, ExtraTreesRegressor)


def direct_call(model: BaseEstimator, method: str) -> Predict | None:
    """``model.<method>`` by its fitted attributes, or ``None`` when nothing can be skipped."""
    steps = [step for _, step in model.steps] if isinstance(model, Pipeline) else [model]
    *before, final = steps
    columns = _column_transformer(before[0]) if len(before) == 1 else None
    forest = _forest(final, method)
    if columns is None and forest is None:
        return None
    transform = columns or Pipeline([(str(i), step) for i, step in enumerate(before)]).transform
    finish: Callable[[Array | pd.DataFrame], Array] = forest or getattr(final, method)
    return lambda frame: finish(transform(frame) if before else frame)


def _forest(forest: BaseEstimator, method: str) -> Callable[[Array | pd.DataFrame], Array] | None:
    """A one-job forest's average over its trees, added in order as scikit-learn adds them.

    Each tree is read through its fitted ``tree_`` as the tree's own ``predict_proba`` /
    ``predict`` reads it, without the per-tree fitted-state check (about 10 us a tree).
    """
    if not isinstance(forest, FORESTS) or forest.n_jobs not in {None, 1} or forest.n_outputs_ != 1:
        return None
    trees = [tree.tree_ for tree in forest.estimators_]
    width = forest.n_classes_ if method == "predict_proba" else 1

    def predict(inputs: Array | pd.DataFrame) -> Array:
        rows = forest._validate_X_predict(inputs)
        total = np.zeros((rows.shape[0], width))
        for tree in trees:
            total += tree.predict(rows)[:, :width]
        total /= len(trees)
        return total if method == "predict_proba" else total[:, 0]

    return predict


@dataclass(frozen=True)
class _Part:
    """One ``ColumnTransformer`` entry: its columns, read as numbers or as they are, and its steps."""

    columns: list[str]
    numeric: bool
    steps: list[Step]

    def __call__(self, frame: pd.DataFrame) -> Array:
        values = np.column_stack([_values(frame[column], self.numeric) for column in self.columns])
        for step in self.steps:
            values = step(values)
        return values


def _column_transformer(transformer: BaseEstimator) -> Callable[[pd.DataFrame], Array] | None:
    """Each part's columns through its steps, side by side, as ``ColumnTransformer`` stacks them."""
    if not isinstance(transformer, ColumnTransformer) or transformer.sparse_output_:
        return None
    parts = []
    for _, part, columns in transformer.transformers_:
        if (isinstance(part, str) and part == "drop") or len(columns) == 0:
            continue
        chain = [step for _, step in part.steps] if isinstance(part, Pipeline) else [part]
        steps = [_step(step) for step in chain if not isinstance(step, str | None)]
        if not steps or None in steps or not all(isinstance(column, str) for column in columns):
            return None
        numeric = isinstance(chain[0], SimpleImputer) and chain[0].strategy in {"mean", "median"}
        parts.append(_Part(list(columns), numeric, [step for step in steps if step is not None]))
    return lambda frame: np.hstack([part(frame) for part in parts])


def _values(column: pd.Series, numeric: bool) -> Array:
    """A column as scikit-learn's input check converts it: numbers to float64, the rest as is."""
    if numeric:
        return column.to_numpy(dtype=np.float64, na_value=np.nan)
    return column.to_numpy(dtype=object)


def _step(step: BaseEstimator) -> Step | None:
    """One fitted preprocessing step as a function of its input array, if it is one of ours."""
    if isinstance(step, SimpleImputer):
        return _imputer(step)
    if isinstance(step, OneHotEncoder):
        return _one_hot(step)
    if isinstance(step, OrdinalEncoder):
        return _ordinal(step)
    if isinstance(step, StandardScaler):
        return _scaler(step)
    return None


def _missing(values: Array) -> Array:
    """NaN, as scikit-learn finds it: ``x != x`` in text columns, ``isnan`` in numbers."""
    return values != values if values.dtype == object else np.isnan(values)  # noqa: PLR0124


def _imputer(imputer: SimpleImputer) -> Step | None:
    missing_nan = isinstance(imputer.missing_values, float) and np.isnan(imputer.missing_values)
    if not missing_nan or imputer.add_indicator or _has_missing(imputer.statistics_):
        return None
    fill = imputer.statistics_

    def impute(values: Array) -> Array:
        return np.where(_missing(values), fill.astype(values.dtype), values)

    return impute


def _one_hot(encoder: OneHotEncoder) -> Step | None:
    if encoder.drop_idx_ is not None or _groups_rare(encoder) or encoder.handle_unknown == "error":
        return None
    lookups = [_lookup(c) for c in encoder.categories_]
    offsets = np.cumsum([0, *(len(c) for c in encoder.categories_)])

    def one_hot(values: Array) -> Array:
        out = np.zeros((values.shape[0], offsets[-1]), dtype=encoder.dtype)
        for j, lookup in enumerate(lookups):
            for i, value in enumerate(values[:, j]):
                index = lookup.get(_key(value))
                if index is not None:
                    out[i, offsets[j] + index] = 1
        return out

    return one_hot


def _ordinal(encoder: OrdinalEncoder) -> Step | None:
    """Each value's final code: its position, its rare group's code, or the missing code."""
    if encoder.handle_unknown != "use_encoded_value":
        return None
    groups = getattr(encoder, "_default_to_infrequent_mappings", None) or [None] * len(encoder.categories_)
    missing_at: dict[int, int] = getattr(encoder, "_missing_indices", {})
    codes = [
        {
            _key(value): encoder.encoded_missing_value
            if missing_at.get(j) == k
            else (k if group is None else group[k])
            for k, value in enumerate(categories)
        }
        for j, (categories, group) in enumerate(zip(encoder.categories_, groups, strict=True))
    ]
    unknown = encoder.unknown_value

    def ordinal(values: Array) -> Array:
        out = np.empty(values.shape, dtype=encoder.dtype)
        for j, code in enumerate(codes):
            for i, value in enumerate(values[:, j]):
                out[i, j] = code.get(_key(value), unknown)
        return out

    return ordinal


def _scaler(scaler: StandardScaler) -> Step:
    mean, scale = scaler.mean_, scaler.scale_

    def standardize(values: Array) -> Array:
        values = values.astype(np.float64)
        if mean is not None and scaler.with_mean:
            values -= mean
        if scale is not None and scaler.with_std:
            values /= scale
        return values

    return standardize


def _groups_rare(encoder: OneHotEncoder | OrdinalEncoder) -> bool:
    """Whether fitting grouped some rare categories into one ``infrequent`` code."""
    rare = getattr(encoder, "infrequent_categories_", None) if encoder._infrequent_enabled else None
    return rare is not None and any(group is not None for group in rare)


def _lookup(categories: Array) -> dict[Any, int]:
    """Category to position; a NaN category (missing values seen in training) under ``MISSING``."""
    return {_key(value): index for index, value in enumerate(categories)}


def _key(value: object) -> object:
    """Encoders take None and NaN both as missing (imputers only NaN: see :func:`_missing`)."""
    return MISSING if value is None or value != value else value  # noqa: PLR0124


def _has_missing(values: Array) -> bool:
    """Whether a fitted statistic is NaN (a column all missing in training): left to the pipeline."""
    return bool(np.any(_missing(values if values.dtype == object else values.astype(np.float64))))
