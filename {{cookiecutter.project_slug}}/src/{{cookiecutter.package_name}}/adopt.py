"""Adopt a new table: profile it, propose its data config, write its contract and reference.

``nox -s adopt-data -- data.path=data/penguins/penguins.csv data.target=species`` reads the table
once and decides, column by column, what it is: the target, an id (kept out of the features and
used to join late labels), a feature, or a column to drop with the reason (constant, near-unique
text, a date, a row number, a leakage suspect). It writes the data config, a validation config and the
contract and reference profile next to the table, switches ``conf/config.yaml`` to them, and
prints every change as a diff to review before committing. The sample's own files are never
touched: a second table gets files of its own.
"""

from __future__ import annotations

import difflib
import re
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from pandas.tseries.api import guess_datetime_format
from sklearn.model_selection import train_test_split
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from . import profiling, validation
from .config import CONF_DIR, PROJECT_ROOT, DataConfig, resolve
from .data import DataError, load_dataset

SHIPPED = {"sample", "default"}  # config names the template ships: never written over
ID_NAME = re.compile(r"(^|_)(id|key|uuid)$", re.IGNORECASE)
NEAR_UNIQUE = 0.5  # a text column with more distinct values than this share of rows
DATE_SHARE = 0.95  # of a text column's values that must parse as dates to call it one
DATE_PROBE = 2000  # values tried as dates per column
DATE_GUESSES = 20  # distinct values pandas guesses a date format from
LEAKAGE_CORRELATION = 0.98
# "Alone it predicts the target far better than all the others together": a shallow tree on one
# column against the same tree on every other feature, both on the same sample of rows.
LEAK_SAMPLE = 5000  # rows the trees see: the check costs the same on 700,000 rows as on 5,000
LEAK_DEPTH = 6
LEAK_SCORE = 0.9  # held-out accuracy (classes) or R2 (numbers) the column reaches alone, at least
LEAK_ERROR_RATIO = 4.0  # ...with at most a quarter of the error of all the other features together


@dataclass(frozen=True)
class Column:
    """One column of the table and the part it plays."""

    name: str
    kind: str  # integer | numeric | categorical | date | text
    nulls: float
    distinct: int
    role: str  # target | id | feature | drop
    reason: str = ""


@dataclass(frozen=True)
class Adoption:
    """What adopting a table proposed and wrote."""

    name: str
    columns: list[Column]
    written: dict[Path, str]  # file -> unified diff against what was there
    dropped_missing_target: int

    @property
    def features(self) -> list[str]:
        """Columns the model will train on."""
        return [c.name for c in self.columns if c.role == "feature"]

    @property
    def whole_numbers(self) -> list[str]:
        """Features the service will take as whole numbers only (integers in the table)."""
        return [c.name for c in self.columns if c.role == "feature" and c.kind == "integer"]


def table_name(path: str) -> str:
    """The config name of a table: its file stem as a Hydra-friendly identifier."""
    name = re.sub(r"[^0-9a-zA-Z_]+", "_", Path(path).stem).strip("_").lower()
    name = name if name and not name[0].isdigit() else f"table_{name}"
    return f"{name}_table" if name in SHIPPED else name


def kind_of(series: pd.Series) -> str:
    """integer, numeric, date (text that parses as dates), text (near-unique) or categorical.

    Integers are named apart because the service then takes whole numbers only for them.
    """
    if pd.api.types.is_bool_dtype(series):
        return "categorical"
    if pd.api.types.is_integer_dtype(series):
        return "integer"
    if pd.api.types.is_numeric_dtype(series):
        return "numeric"
    values = series.dropna().astype(str)
    if values.empty:
        return "categorical"
    if is_date(values):
        return "date"
    return "text" if values.nunique() > NEAR_UNIQUE * len(series) else "categorical"


def is_date(values: pd.Series) -> bool:
    """Nearly all values parse with one date format pandas infers from them.

    One format, not each value on its own: dateutil's per-value fallback (``format="mixed"``)
    reads a lone ordinal such as "1st" or "3rd" as a day of the current month.
    """
    probe = values.sample(min(len(values), DATE_PROBE), random_state=0)
    if not probe.str.contains(r"\d").all():
        return False
    parsed = (pd.to_datetime(probe, errors="coerce", format=fmt) for fmt in date_formats(probe))
    return max((float(dates.notna().mean()) for dates in parsed), default=0.0) >= DATE_SHARE


def date_formats(values: pd.Series) -> set[str]:
    """The formats pandas guesses from a few distinct values, month first and day first.

    Both readings are kept because "01/02/2024" alone cannot tell them apart; the share of all
    values each format parses decides.
    """
    with warnings.catch_warnings():  # pandas warns when a day-first value is guessed month first
        warnings.simplefilter("ignore", UserWarning)
        guesses = {
            guess_datetime_format(value, dayfirst=dayfirst)
            for value in values.drop_duplicates().head(DATE_GUESSES)
            for dayfirst in (False, True)
        }
    return {guess for guess in guesses if guess}


def index_step(series: pd.Series) -> int | None:
    """The step of a unique, evenly spaced whole-number column (1..N, or any constant step), else None.

    Such a column numbers the rows: it says where a row sits in the file, not what it is, and
    when the file is sorted by the target it gives the target away.
    """
    if pd.api.types.is_bool_dtype(series) or not pd.api.types.is_integer_dtype(series):
        return None
    if len(series) < 3 or series.isna().any():
        return None
    steps = np.diff(np.sort(series.to_numpy(dtype=np.int64)))
    return int(steps[0]) if steps[0] != 0 and bool((steps == steps[0]).all()) else None


def leaks(series: pd.Series, target: pd.Series, classification: bool) -> bool:
    """A feature that gives the target away: classes in disjoint value ranges, or |r| >= 0.98."""
    known = series.notna() & target.notna()
    values, outcome = series[known], target[known]
    if len(values) < 10 or values.nunique() < 2:
        return False
    if not pd.api.types.is_numeric_dtype(values):
        if not classification:
            return False
        pure = (outcome.groupby(values).nunique() == 1).all()
        return bool(pure and values.nunique() < len(values) / 2)
    if classification:
        ranges = values.groupby(outcome).agg(["min", "max"]).sort_values("min")
        lows, highs = ranges["min"].to_numpy(), ranges["max"].to_numpy()
        return len(ranges) > 1 and bool((lows[1:] > highs[:-1]).all())
    return abs(float(values.corr(outcome))) >= LEAKAGE_CORRELATION


@dataclass(frozen=True)
class Table:
    """What deciding a column's role needs to know about the whole table."""

    target: pd.Series
    data: DataConfig
    classification: bool


def describe(frame: pd.DataFrame, data: DataConfig, classification: bool) -> list[Column]:
    """Each column with its kind and role; every drop says why. The first id-like column is the id."""
    table = Table(frame[data.target], data, classification)
    columns: list[Column] = []
    for name in frame.columns:
        series = frame[name]
        kind = kind_of(series)
        has_id = any(c.role == "id" for c in columns) or data.id_column in frame.columns
        role, reason = role_of(str(name), series, kind, table, has_id)
        columns.append(
            Column(
                str(name), kind, round(float(series.isna().mean()), 4), int(series.nunique()), role, reason
            )
        )
    return drop_outshining(frame, columns, table)


def drop_outshining(frame: pd.DataFrame, columns: list[Column], table: Table) -> list[Column]:
    """Drop, one at a time, each feature that alone predicts the target far better than the rest.

    One at a time, best first: two copies of the answer would each hide the other in "the rest".
    """
    metric = "accuracy" if table.classification else "R2"
    while suspect := outshining(frame, [c.name for c in columns if c.role == "feature"], table):
        name, alone, rest = suspect
        reason = (
            f"leakage suspect: alone it predicts {table.target.name!r} far better than all other "
            f"features together (held-out {metric} {alone:.3f} vs {rest:.3f})"
        )
        columns = [replace(c, role="drop", reason=reason) if c.name == name else c for c in columns]
    return columns


def outshining(frame: pd.DataFrame, features: list[str], table: Table) -> tuple[str, float, float] | None:
    """The feature whose tree alone scores highest, with both scores, when it outshines the rest.

    Trees of depth ``LEAK_DEPTH`` on a fixed sample of ``LEAK_SAMPLE`` rows with a target, split
    two thirds to one third with a fixed seed: the same table always gives the same answer.
    """
    known = frame.loc[table.target.notna(), features]
    if len(features) < 2 or len(known) < 30:  # nothing to compare with, or too few rows to tell
        return None
    sample = known.sample(min(len(known), LEAK_SAMPLE), random_state=0)
    encoded = encode(sample)
    target = table.target.loc[sample.index]
    outcome = pd.factorize(target)[0] if table.classification else target.to_numpy(dtype=float)
    train, test, y_train, y_test = train_test_split(encoded, outcome, test_size=1 / 3, random_state=0)
    model = DecisionTreeClassifier if table.classification else DecisionTreeRegressor

    def score(names: list[str]) -> float:
        tree = model(max_depth=LEAK_DEPTH, min_samples_leaf=5, random_state=0).fit(train[names], y_train)
        return float(tree.score(test[names], y_test))

    alone = {name: score([name]) for name in features}
    for name in sorted(features, key=lambda n: -alone[n]):
        if alone[name] < LEAK_SCORE:
            return None
        rest = score([f for f in features if f != name])
        if (1 - alone[name]) * LEAK_ERROR_RATIO <= 1 - rest:
            return name, alone[name], rest
    return None


def encode(frame: pd.DataFrame) -> pd.DataFrame:
    """Numbers a tree can split: numbers as they are, other values by code; missing below the rest."""
    encoded = {}
    for name in frame.columns:
        series = frame[name]
        if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
            values = series.astype(float)
            encoded[name] = values.fillna(values.min() - 1 if values.notna().any() else 0.0)
        else:
            encoded[name] = pd.Series(pd.factorize(series)[0], index=series.index, dtype=float)
    return pd.DataFrame(encoded, index=frame.index)


def role_of(name: str, series: pd.Series, kind: str, table: Table, has_id: bool) -> tuple[str, str]:
    """The part one column plays, and why it is dropped when it is."""
    if name == table.data.target:
        return "target", ""
    if name in table.data.drop_columns:
        return "drop", "listed in data.drop_columns"
    unique = bool(series.notna().all() and series.is_unique)
    if name == table.data.id_column or (not has_id and unique and ID_NAME.search(name)):
        return "id", ""
    distinct = series.nunique()
    step = index_step(series)
    reasons = [
        (series.nunique(dropna=False) <= 1, "constant: one value in every row"),
        (kind == "date", "a date: derive features from it in code (month, age) or leave it out"),
        (kind == "text", f"near-unique text ({distinct} values, {len(series)} rows): an id or free text"),
        (
            step is not None,
            f"an index: unique whole numbers from {series.min()} in steps of {step} number the rows, "
            "they do not describe them",
        ),
        (
            leaks(series, table.target, table.classification),
            f"leakage suspect: it gives {table.target.name!r} away",
        ),
    ]
    return next((("drop", reason) for dropped, reason in reasons if dropped), ("feature", ""))


def data_config_text(adopted: DataConfig, columns: list[Column]) -> str:
    """The data config YAML, with each dropped column's reason as a comment."""
    drops = [f"  - {c.name}  # {c.reason}" for c in columns if c.role == "drop"]
    drop_missing = "true  # rows without a target are left out" if adopted.drop_missing_target else "false"
    lines = [
        f"# {Path(adopted.path).name}, adopted by `nox -s adopt-data`: review the roles, then commit.",
        f"path: {adopted.path}",
        f"target: {adopted.target}",
        f"id_column: {adopted.id_column or 'null'}",
        *(["drop_columns:", *drops] if drops else ["drop_columns: []"]),
        "categorical: null   # null: inferred (non-numeric columns); or list them",
        "numeric: null",
        f"test_size: {adopted.test_size}",
        f"split_seed: {adopted.split_seed}",
        f"drop_missing_target: {drop_missing}",
    ]
    return "\n".join(lines) + "\n"


def validation_config_text(contract: Path, reference: Path) -> str:
    """This table's validation config: the defaults, with its own contract and reference."""
    return (
        "# The data gate for this table: its own contract and reference profile.\n"
        "defaults:\n  - default\n  - _self_\n\n"
        f"contract_path: {_relative(contract)}\n"
        f"reference_profile: {_relative(reference)}\n"
    )


def switch_defaults(config: str, name: str) -> str:
    """``conf/config.yaml`` with its data and validation defaults pointing at ``name``."""
    for group in ("data", "validation"):
        config, count = re.subn(rf"^(\s*-\s*{group}:\s*)[\w-]+", rf"\g<1>{name}", config, count=1, flags=re.M)
        if count != 1:
            raise DataError(f"conf/config.yaml: no '- {group}: ...' line in its defaults list")
    return config


def adopt(data: DataConfig, classification: bool, conf_dir: Path = CONF_DIR) -> Adoption:
    """Profile ``data.path``; write its configs, contract and reference profile; switch to them."""
    name, table = table_name(data.path), resolve(data.path)
    contract_path = table.with_name(f"{name}.contract.yaml")
    reference_path = table.with_name(f"{name}.reference.bin")
    frame = load_dataset(replace(data, drop_missing_target=False))
    if not classification:
        refuse_text_target(frame, data)
    missing_target = int(frame[data.target].isna().sum())
    columns = describe(frame, data, classification)
    if not any(c.role == "feature" for c in columns):
        raise DataError(
            f"{data.path}: no column is left to train on; every one is the target, the id or dropped"
        )
    adopted = replace(
        data,
        path=_relative(table),
        id_column=next((c.name for c in columns if c.role == "id"), None),
        drop_columns=[c.name for c in columns if c.role == "drop"],
        categorical=None,
        numeric=None,
        drop_missing_target=missing_target > 0,
    )
    trainable = frame.loc[frame[data.target].notna()].reset_index(drop=True)
    contract = validation.derive_contract(trainable, adopted)
    texts = {
        conf_dir / "data" / f"{name}.yaml": data_config_text(adopted, columns),
        conf_dir / "validation" / f"{name}.yaml": validation_config_text(contract_path, reference_path),
        contract_path: contract.to_yaml(),
        conf_dir / "config.yaml": switch_defaults((conf_dir / "config.yaml").read_text(), name),
    }
    diffs = {path: _write(path, text) for path, text in texts.items()}
    profiling.write(profiling.profile(trainable[list(contract.columns)]), reference_path)
    diffs[reference_path] = f"reference profile (whylogs, binary): {_relative(reference_path)}\n"
    return Adoption(name, columns, diffs, missing_target)


def refuse_text_target(frame: pd.DataFrame, data: DataConfig) -> None:
    """A regression predicts numbers: a target of words or true/false is refused before any writing."""
    target = frame[data.target]
    if pd.api.types.is_numeric_dtype(target) and not pd.api.types.is_bool_dtype(target):
        return
    examples = ", ".join(repr(str(v)) for v in target.dropna().unique()[:3])
    numeric = [
        str(c)
        for c in frame.columns
        if c != data.target
        and pd.api.types.is_numeric_dtype(frame[c])
        and not pd.api.types.is_bool_dtype(frame[c])
    ]
    shown = ", ".join(numeric[:8]) + (", ..." if len(numeric) > 8 else "") if numeric else "none"
    raise DataError(
        f"{data.path}: data.target={data.target!r} is text ({examples}), but this project is a regression "
        "(task: regression), which predicts numbers: to predict classes, re-bake the project with "
        "ml_task=classification; to predict a number, pick a numeric target with data.target=<column> "
        f"(numeric columns: {shown})"
    )


def _write(path: Path, text: str) -> str:
    """Write ``text`` to ``path`` and return the unified diff against what was there."""
    before = path.read_text() if path.exists() else ""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    label = _relative(path)
    return "".join(
        difflib.unified_diff(before.splitlines(True), text.splitlines(True), f"a/{label}", f"b/{label}")
    )


def _relative(path: Path) -> str:
    """A path as the configs write it: relative to the project when inside it."""
    try:
        return path.resolve().relative_to(PROJECT_ROOT).as_posix()
    except ValueError:
        return str(path)
