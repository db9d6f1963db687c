"""The preprocessing half of the saved Pipeline, inferred from the data or declared in config.

Keeping preprocessing inside the scikit-learn Pipeline means the served model takes raw rows
exactly as they appear in the data: imputation, encoding and scaling travel with the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from ..config import DataConfig, ModelConfig

# Histogram gradient boosting takes native categories as codes below its max_bins (255): rarer
# values of a column with more share one code instead of failing the fit.
MAX_ORDINAL_CATEGORIES = 255


@dataclass(frozen=True)
class FeatureSpec:
    """Which input columns are numeric and which categorical."""

    numeric: list[str]
    categorical: list[str]

    @property
    def columns(self) -> list[str]:
        """All feature columns, in the order the model expects them."""
        return [*self.numeric, *self.categorical]


def infer_features(features: pd.DataFrame, cfg: DataConfig) -> FeatureSpec:
    """Use the configured column lists, or infer: numeric dtypes are numeric, the rest categorical."""
    numeric = cfg.numeric or [c for c in features.columns if pd.api.types.is_numeric_dtype(features[c])]
    categorical = cfg.categorical or [c for c in features.columns if c not in numeric]
    return FeatureSpec(numeric=list(numeric), categorical=list(categorical))


def build_preprocessor(spec: FeatureSpec, model: ModelConfig) -> ColumnTransformer:
    """Impute everything; one-hot or ordinal-encode categories; scale numbers if the model needs it."""
    numeric_steps: list[tuple[str, object]] = [("impute", SimpleImputer(strategy="median"))]
    if model.scale_numeric:
        numeric_steps.append(("scale", StandardScaler()))
    return ColumnTransformer(
        [
            ("cat", _categorical_encoder(model.categorical_encoding), spec.categorical),
            ("num", Pipeline(numeric_steps), spec.numeric),
        ],
        verbose_feature_names_out=False,
    )


def _categorical_encoder(kind: str) -> Pipeline | OrdinalEncoder:
    """Unknown categories never fail a prediction: all-zero one-hot, or 'missing' for ordinal."""
    if kind == "onehot":
        return Pipeline(
            [
                ("impute", SimpleImputer(strategy="constant", fill_value="missing")),
                ("encode", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
            ]
        )
    if kind == "ordinal":
        return OrdinalEncoder(
            handle_unknown="use_encoded_value",
            unknown_value=np.nan,
            encoded_missing_value=np.nan,
            max_categories=MAX_ORDINAL_CATEGORIES,
        )
    raise ValueError(f"model.categorical_encoding={kind!r}: use 'onehot' or 'ordinal'")


def categorical_mask(spec: FeatureSpec) -> list[bool]:
    """Which transformed columns are ordinal-coded categories (they come first)."""
    return [True] * len(spec.categorical) + [False] * len(spec.numeric)
