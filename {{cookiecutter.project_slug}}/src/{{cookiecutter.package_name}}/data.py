"""Reading tables and splitting them; every failure names the file and what to do."""

from __future__ import annotations

import csv
import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from sklearn.model_selection import train_test_split

from .config import DataConfig, resolve
from .errors import PipelineError

SEPARATORS = (",", ";", "\t", "|")


def read_csv(file: Path) -> pd.DataFrame:
    """A CSV whatever its separator (, ; tab |) and with or without a UTF-8 byte-order mark.

    Spreadsheets in many locales save ``;``-separated files with a BOM; read as plain CSV they
    become one column named ``\ufeffa;b;c``, and every later message is about missing columns.
    The separator is the one that splits the header into the most fields.
    """
    with file.open(encoding="utf-8-sig", newline="") as handle:
        header = handle.readline()
    separator = max(SEPARATORS, key=lambda sep: len(next(csv.reader([header], delimiter=sep), [])))
    return pd.read_csv(file, sep=separator, encoding="utf-8-sig")


READERS: dict[str, Callable[[Path], pd.DataFrame]] = {
    ".csv": read_csv,
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
    except UnicodeDecodeError as error:
        raise DataError(
            f"{file}: not UTF-8 text (byte {error.object[error.start]:#x} at offset {error.start}); "
            "save it as UTF-8, e.g. `iconv -f latin1 -t utf-8 in.csv > out.csv`"
        ) from None
    except (OSError, ValueError, pd.errors.ParserError) as error:
        raise DataError(f"{file}: cannot be read as {file.suffix[1:]} ({error})") from None
    if frame.empty:
        raise DataError(f"{file}: has {len(frame.columns)} columns but no data rows")
    return frame


def load_dataset(cfg: DataConfig) -> pd.DataFrame:
    """The table the stages train, compare and check on: ``load_table`` with a usable target.

    Rows without a target are kept (validation refuses them, naming the count) unless
    ``data.drop_missing_target`` says to drop them; the setting is part of the data config every
    run logs, and ``frame.attrs["dropped_missing_target"]`` says how many went.
    """
    frame = load_table(cfg.path)
    if cfg.target not in frame.columns:
        shown = ", ".join(map(str, frame.columns[:12])) + (", ..." if len(frame.columns) > 12 else "")
        raise DataError(
            f"{cfg.path}: data.target={cfg.target!r} is not a column (columns: {shown}); "
            "set data.target to the column to predict"
        )
    return drop_missing_target(frame, cfg)


def drop_missing_target(frame: pd.DataFrame, cfg: DataConfig) -> pd.DataFrame:
    """Without the rows that have no target, when ``data.drop_missing_target`` asks for it."""
    if not cfg.drop_missing_target or cfg.target not in frame.columns:
        return frame
    missing = frame[cfg.target].isna()
    kept = frame.loc[~missing].reset_index(drop=True)
    kept.attrs["dropped_missing_target"] = int(missing.sum())
    return kept


def rare_classes(target: pd.Series, minimum: int) -> dict[str, int]:
    """Classes with fewer than ``minimum`` rows, by label, rarest first."""
    counts = target.value_counts()
    return {str(label): int(count) for label, count in counts[counts < minimum].sort_values().items()}


def refuse_rare_classes(target: pd.Series, minimum: int, why: str) -> None:
    """A stratified split and its folds need every class several times; say which ones lack rows."""
    if rare := rare_classes(target, minimum):
        found = ", ".join(f"{label!r} ({count})" for label, count in rare.items())
        raise DataError(
            f"{target.name}: too few rows of class {found}; each class needs at least {minimum} "
            f"({why}): collect more rows, merge rare classes into one, or drop their rows"
        )


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
    """Hold out ``cfg.test_size`` of the rows, stratified by class for classification.

    Stratified, every class must land in the test split at least once, or its metrics would be
    undefined (or perfect, on no evidence): a class too rare for that is refused, with its name.
    """
    features = frame[feature_columns(frame, cfg)]
    target = frame[cfg.target]
    if stratify:
        needed = max(2, math.ceil(1 / cfg.test_size))
        refuse_rare_classes(target, needed, f"one in the {cfg.test_size:.0%} test split")
    x_train, x_test, y_train, y_test = train_test_split(
        features,
        target,
        test_size=cfg.test_size,
        random_state=cfg.split_seed,
        stratify=target if stratify else None,
    )
    return Split(x_train, y_train, x_test, y_test)
