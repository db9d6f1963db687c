"""Reading and splitting tables."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from {{ cookiecutter.package_name }}.config import Config
from {{ cookiecutter.package_name }}.data import DataError, digest, feature_columns, load_table, split


def test_split__held_out_rows_never_overlap_training_rows(quick: Config, sample: pd.DataFrame) -> None:
    data = split(sample, quick.data, stratify=quick.task == "classification")
    assert set(data.x_train.index).isdisjoint(data.x_test.index)
    assert len(data.x_test) == pytest.approx(0.2 * len(sample), abs=1)


def test_features__exclude_target_id_and_dropped_columns(quick: Config, sample: pd.DataFrame) -> None:
    features = feature_columns(sample, quick.data)
    assert quick.data.target not in features
    assert "customer_id" not in features
    assert not set(quick.data.drop_columns) & set(features)
    assert {"contract", "tenure_months"} <= set(features)


def test_digest__same_content_same_digest_across_formats(sample: pd.DataFrame, tmp_path: Path) -> None:
    sample.to_parquet(tmp_path / "s.parquet", index=False)
    assert digest(load_table(tmp_path / "s.parquet")) == digest(sample)
    assert digest(sample.head(100)) != digest(sample)


def test_load__unreadable_csv_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "latin.csv").write_bytes(b'a,b\n"unterminated,1\n')
    with pytest.raises(DataError, match=r"latin\.csv"):
        load_table(tmp_path / "latin.csv")
