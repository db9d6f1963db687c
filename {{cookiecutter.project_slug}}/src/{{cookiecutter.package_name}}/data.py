"""Reading tables and splitting them; every failure names the file and what to do."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from sklearn.model_selection import train_test_split

from .config import DataConfig, resolve
from .errors import PipelineError

READERS: dict[str, Callable[[Path], pd.DataFrame]] = {
    ".csv": pd.read_csv,
    ".parquet": pd.read_parquet,
    ".pq": pd.read_parquet,
}


class DataError(PipelineError, ValueError):
    """Input data cannot be used; the message says why and how to fix it."""


@dataclass(frozen=True)
class Split:
    """Features and target for training and for the held-out test."""

    x_train: pd.DataFrame
    y_train: pd.Series
    x_test: pd.DataFrame
    y_test: pd.Series


def load_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV or Parquet file into a DataFrame, refusing empty or unreadable files."""
    file = resolve(path)
    reader = READERS.get(file.suffix.lower())
    if reader is None:
        raise DataError(f"{file}: unsupported file type {file.suffix!r}; use .csv or .parquet")
    if not file.is_file():
        raise DataError(f"{file}: no such file; check data.path")
    try:
        frame = reader(file)
    except pd.errors.EmptyDataError:
        raise DataError(f"{file}: the file is empty; it needs a header row and data rows") from None
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError) as error:
        raise DataError(f"{file}: cannot be read as {file.suffix[1:]} ({error})") from None
    if frame.empty:
        raise DataError(f"{file}: has {len(frame.columns)} columns but no data rows")
    return frame


def digest(frame: pd.DataFrame) -> str:
    """A content hash of the table, stable across file formats (logged as the dataset digest)."""
    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    columns = "\x1f".join(map(str, frame.columns)).encode()
    return hashlib.sha256(columns + hashed.tobytes()).hexdigest()[:16]


def feature_columns(frame: pd.DataFrame, cfg: DataConfig) -> list[str]:
    """Every column except the target, the id and the explicitly dropped ones."""
    excluded = {cfg.target, cfg.id_column, *cfg.drop_columns}
    return [column for column in frame.columns if column not in excluded]


def split(frame: pd.DataFrame, cfg: DataConfig, stratify: bool) -> Split:
    """Hold out ``cfg.test_size`` of the rows, stratified by class for classification."""
    features = frame[feature_columns(frame, cfg)]
    target = frame[cfg.target]
    x_train, x_test, y_train, y_test = train_test_split(
        features,
        target,
        test_size=cfg.test_size,
        random_state=cfg.split_seed,
        stratify=target if stratify else None,
    )
    return Split(x_train, y_train, x_test, y_test)
