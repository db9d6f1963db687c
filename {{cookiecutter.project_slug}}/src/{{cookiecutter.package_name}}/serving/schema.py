"""Request and response models generated from the model's training signature.

The MLflow model carries the signature it was trained with (column names and types). The
service builds its pydantic models from that signature, so the HTTP contract always matches
the model actually being served: field names are the data's column names, every feature
must be present (a missing field is a 400, not a silent default) and may be ``null`` (the
pipeline imputes missing values exactly as it did in training). Unknown categories are
accepted: the pipeline's encoder handles them the way it was trained to.
"""

from __future__ import annotations

import keyword
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
from mlflow.models import Model
from pydantic import BaseModel, ConfigDict, Field, create_model

# Numbers are bounded to what the model can take: tree ensembles cast inputs to float32, and
# integer columns become int64. A larger value is a 400 naming the field, never a 500.
FLOAT32_MAX = float(np.finfo(np.float32).max)
INT64 = np.iinfo(np.int64)
PYTHON_TYPES: dict[str, Any] = {
    "long": Annotated[int, Field(ge=int(INT64.min), le=int(INT64.max))],
    "integer": Annotated[int, Field(ge=int(INT64.min), le=int(INT64.max))],
    "double": Annotated[float, Field(ge=-FLOAT32_MAX, le=FLOAT32_MAX, allow_inf_nan=False)],
    "float": Annotated[float, Field(ge=-FLOAT32_MAX, le=FLOAT32_MAX, allow_inf_nan=False)],
    "string": str,
    "boolean": bool,
}
NUMERIC_TYPES = {"long", "integer", "double", "float"}
INTEGER_TYPES = {"long", "integer"}


class SchemaError(ValueError):
    """The model has no usable input signature; the message says how to fix it."""


@dataclass(frozen=True)
class Column:
    """One feature column as the model was trained on it."""

    name: str
    kind: str


def columns_from_signature(inputs: list[dict[str, Any]]) -> list[Column]:
    """Signature entries (``{"name", "type"}``) to columns, refusing types JSON cannot carry."""
    columns = []
    for entry in inputs:
        name, kind = entry.get("name"), entry.get("type")
        if not name or kind not in PYTHON_TYPES:
            raise SchemaError(
                f"signature column {entry!r} is not a named {sorted(PYTHON_TYPES)} column; "
                "log the model with a DataFrame signature (training.py does)"
            )
        columns.append(Column(str(name), str(kind)))
    return columns


def read_columns(model_dir: str | Path) -> list[Column]:
    """The feature columns recorded in an MLflow model directory's signature."""
    signature = Model.load(str(Path(model_dir) / "MLmodel")).signature
    if signature is None or signature.inputs is None:
        raise SchemaError(
            f"{model_dir}: the model was logged without a signature; retrain with `nox -s train`"
        )
    return columns_from_signature(signature.inputs.to_dict())


def field_name(index: int, name: str) -> str:
    """A valid Python attribute for a column (the JSON field keeps the column's own name)."""
    usable = name.isidentifier() and not keyword.iskeyword(name) and not name.startswith("_")
    return name if usable else f"column_{index}"


def row_model(columns: list[Column], id_column: str | None) -> type[BaseModel]:
    """One input row: every feature required (nullable), the optional id, extra keys ignored.

    Extra keys are ignored rather than refused so that rows copied from the data (with the
    target column) can be sent as they are; a misspelt feature still fails as a missing field.
    """
    fields: dict[str, Any] = {
        field_name(i, column.name): (PYTHON_TYPES[column.kind] | None, Field(..., alias=column.name))
        for i, column in enumerate(columns)
    }
    if id_column:
        fields[field_name(len(columns), id_column)] = (str | int | None, Field(None, alias=id_column))
    config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)
    return create_model("Row", __config__=config, **fields)


def request_model(row: type[BaseModel], max_rows: int) -> type[BaseModel]:
    """The body of ``/predict``: ``{"rows": [row, ...]}`` (one row is a list of one)."""
    return create_model(
        "PredictRequest",
        rows=(list[row], Field(..., min_length=1, description=f"1 to {max_rows} rows")),  # type: ignore[valid-type]
    )


class Prediction(BaseModel):
    """One row's answer; ``probabilities`` only for classifiers."""

    id: str | int | None = None
    prediction: str | float | int | bool
    probabilities: dict[str, float] | None = None


class PredictResponse(BaseModel):
    """The body ``/predict`` returns: one prediction per row, in request order."""

    model_version: str
    predictions: list[Prediction]


def to_frame(rows: list[BaseModel], columns: list[Column], id_column: str | None) -> pd.DataFrame:
    """Validated rows to the DataFrame the pipeline expects (numbers as numbers, None as NaN)."""
    data: dict[str, Any] = {}
    for i, column in enumerate(columns):
        values = [getattr(row, field_name(i, column.name)) for row in rows]
        data[column.name] = _typed(values, column)
    if id_column:
        # object dtype, explicitly: pandas 3 would infer a string column for ["C1", None] and
        # give back NaN for the missing id, which is not a valid id in the response.
        ids = [getattr(row, field_name(len(columns), id_column)) for row in rows]
        data[id_column] = pd.Series(ids, dtype=object)
    return pd.DataFrame(data)


def _typed(values: list[Any], column: Column) -> np.ndarray[Any, Any]:
    """int64 for complete integer columns, float64 for other numbers, object for text."""
    if column.kind in INTEGER_TYPES and None not in values:
        return np.asarray(values, dtype=np.int64)
    if column.kind in NUMERIC_TYPES:
        return np.asarray(values, dtype=np.float64)
    return np.asarray(values, dtype=object)
