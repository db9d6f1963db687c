"""A ready ``/predict`` body made from a real row of the table, for the first ``curl``.

A body written by hand goes stale when a table is adopted: another table's columns, a feature
the model needs left out, a whole number written with decimals, and the service answers 400.
``package`` builds this one from the packaged model's own input schema (the signature inside
the bento) and one row of ``data.path``, checks it against the request model the service
builds from the same schema and settings, prints it, and writes it to ``request.json`` beside
the other packaging reports, for ``curl -d @reports/request.json``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ValidationError

from ..config import Config, resolve
from ..data import load_table
from ..errors import PipelineError
from . import schema
from .settings import Settings

Scalar = str | int | float | bool | None
REQUEST_FILE = "request.json"
TRIED_ROWS = 1000  # rows tried before saying none is accepted: complete rows come first


@dataclass(frozen=True)
class Example:
    """A body the service accepts, the table row it came from, and where it was written."""

    body: dict[str, Any]
    row: int  # the table's data row it came from, counted from 1 (the header is not a data row)
    path: Path

    @property
    def text(self) -> str:
        """The body as one line of JSON, exactly as written to the file."""
        return json.dumps(self.body, ensure_ascii=False)


class NoExampleError(PipelineError, ValueError):
    """No row of the table makes a body the service accepts; the message says why."""


def missing(value: object) -> bool:
    """None, NaN, NaT or pandas' NA: a gap in the table, null in the body."""
    return (
        value is None
        or value is pd.NA
        or value is pd.NaT
        or (isinstance(value, float | np.floating) and bool(np.isnan(value)))
    )


def json_value(value: object, kind: str) -> Scalar:
    """A table value as the service's schema takes it: whole numbers as integers, gaps as null."""
    if missing(value):
        return None
    if kind == "string":
        return str(value)
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value) if kind in schema.INTEGER_TYPES else float(value)
    if isinstance(value, float | np.floating):
        whole = kind in schema.INTEGER_TYPES and float(value).is_integer()
        return int(value) if whole else float(value)
    return str(value)


def id_value(value: object) -> str | int | None:
    """The id as the service echoes it: text, or a whole number."""
    if missing(value):
        return None
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return int(value)
    return str(value)


def row_body(row: pd.Series, columns: list[schema.Column], id_column: str | None) -> dict[str, Any]:
    """One table row as ``{"rows": [{...}]}``: the id first when there is one, then every feature."""
    record: dict[str, Any] = {}
    if id_column and id_column in row.index:
        record[id_column] = id_value(row[id_column])
    record |= {column.name: json_value(row[column.name], column.kind) for column in columns}
    return {"rows": [record]}


def candidate_rows(frame: pd.DataFrame, features: list[str]) -> Iterator[int]:
    """Row positions to try: complete rows (no feature missing) first, each group in file order."""
    complete = frame[features].notna().all(axis=1).to_numpy()
    yield from (int(i) for i in np.flatnonzero(complete)[:TRIED_ROWS])
    yield from (int(i) for i in np.flatnonzero(~complete)[:TRIED_ROWS])


def first_accepted(
    frame: pd.DataFrame, columns: list[schema.Column], settings: Settings
) -> tuple[int, dict[str, Any]]:
    """The first row whose body the service's request model accepts, and that body."""
    features = [column.name for column in columns]
    if absent := [name for name in features if name not in frame.columns]:
        raise NoExampleError(f"the table has no column {', '.join(absent)} that the model takes")
    row = schema.row_model(columns, settings.id_column, settings.bounds, settings.max_text_chars)
    request: type[BaseModel] = schema.request_model(row, settings.max_rows_per_request)
    refusal = "the table has no rows"
    for position in candidate_rows(frame, features):
        body = row_body(frame.iloc[position], columns, settings.id_column)
        try:
            request.model_validate(body)
        except ValidationError as error:
            refusal = str(error.errors()[0]["msg"])
            continue
        return position, body
    raise NoExampleError(f"no row tried makes a body the service accepts (the last refusal: {refusal})")


def write(cfg: Config, model_dir: str | Path, settings: Settings) -> Example:
    """Build the body from ``data.path`` and the model in ``model_dir``; write ``request.json``."""
    columns = schema.read_columns(model_dir)
    position, body = first_accepted(load_table(cfg.data.path), columns, settings)
    path = resolve(cfg.serving.report_dir) / REQUEST_FILE
    example = Example(body, position + 1, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(example.text + "\n", encoding="utf-8")
    return example
