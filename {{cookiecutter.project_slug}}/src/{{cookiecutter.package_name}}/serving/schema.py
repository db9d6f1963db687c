"""Request and response models generated from the model's training signature.

The MLflow model carries the signature it was trained with (column names and types). The
service builds its pydantic models from that signature, so the HTTP contract always matches
the model actually being served: field names are the data's column names, every feature
must be present (a missing field is a 400, not a silent default) and may be ``null`` (the
pipeline imputes missing values exactly as it did in training). Unknown categories are
accepted: the pipeline's encoder handles them the way it was trained to.

Types are strict, as JSON Schema reads them: ``true`` or ``"12"`` is not a number, ``12`` is not
text; ``12.0`` is an integer (JSON has one number type, and pandas writes integer columns with
gaps as floats). Numbers outside the data contract's ``allowed_min``/``allowed_max`` and text
longer than ``serving.max_text_chars`` are refused. The bounds are in the published OpenAPI.
"""

from __future__ import annotations

import json
import keyword
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, cast

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model
from pydantic_core import PydanticCustomError


def whole_number(value: object) -> int:
    """``12`` and ``12.0`` are integers; ``true``, ``"12"`` and ``12.5`` are not."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PydanticCustomError(
            "int_type", "Input should be a valid integer: a JSON number, not text or true/false"
        )
    if isinstance(value, float) and not value.is_integer():
        raise PydanticCustomError(
            "int_from_float", "Input should be a valid integer, got a fractional number"
        )
    return int(value)


BENTO_MLFLOW_FOLDER = "mlflow_model"
"""Where a BentoML model built by ``package`` keeps the MLflow model."""

# Numbers are bounded to what the model can take: tree ensembles cast inputs to float32, and
# integer columns become int64. A larger value is a 400 naming the field, never a 500.
FLOAT32_MAX = float(np.finfo(np.float32).max)
INT64 = np.iinfo(np.int64)
KINDS = {"long", "integer", "double", "float", "string", "boolean"}
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
        if not name or kind not in KINDS:
            raise SchemaError(
                f"signature column {entry!r} is not a named {sorted(KINDS)} column; "
                "log the model with a DataFrame signature (training.py does)"
            )
        columns.append(Column(str(name), str(kind)))
    return columns


def read_columns(model_dir: str | Path) -> list[Column]:
    """The feature columns recorded in an MLflow model directory's signature.

    Read from the ``MLmodel`` file itself (YAML holding the signature as a JSON string), not
    through MLflow: the HTTP contract is built in BentoML's supervisor process too, which never
    loads the model and should not import MLflow to start a server.
    """
    document = yaml.safe_load((Path(model_dir) / "MLmodel").read_text(encoding="utf-8")) or {}
    inputs = (document.get("signature") or {}).get("inputs")
    if not inputs:
        raise SchemaError(
            f"{model_dir}: the model was logged without a signature; retrain with `nox -s train`"
        )
    return columns_from_signature(json.loads(inputs))


def input_example(model_dir: str | Path) -> pd.DataFrame | None:
    """The rows training logged beside the model (MLflow's ``input_example``), if it did."""
    from mlflow.models import Model  # noqa: PLC0415 - the serving worker's, once it loads the model

    model = Model.load(str(Path(model_dir) / "MLmodel"))
    example = model.load_input_example(str(model_dir)) if model.saved_input_example_info else None
    return example if isinstance(example, pd.DataFrame) else None


def field_name(index: int, name: str) -> str:
    """A valid Python attribute for a column (the JSON field keeps the column's own name)."""
    usable = name.isidentifier() and not keyword.iskeyword(name) and not name.startswith("_")
    return name if usable else f"column_{index}"


def value_type(column: Column, bounds: list[float | None] | None, max_text_chars: int) -> object:
    """The column's strict type, narrowed to the contract's bounds (numbers) or the text limit.

    Constraints sit on the type itself, before the integer check wraps it, so that the JSON
    Schema in the OpenAPI says ``minimum``/``maximum``/``maxLength`` as they are enforced.
    """
    if column.kind == "string":
        return Annotated[str, Field(strict=True, max_length=max_text_chars)]
    if column.kind == "boolean":
        return Annotated[bool, Field(strict=True)]
    allowed_min, allowed_max = bounds or (None, None)
    if column.kind in INTEGER_TYPES:
        low = int(INT64.min) if allowed_min is None else max(int(INT64.min), math.ceil(allowed_min))
        high = int(INT64.max) if allowed_max is None else min(int(INT64.max), math.floor(allowed_max))
        return Annotated[int, Field(ge=low, le=high), BeforeValidator(whole_number)]
    low_f = -FLOAT32_MAX if allowed_min is None else max(-FLOAT32_MAX, allowed_min)
    high_f = FLOAT32_MAX if allowed_max is None else min(FLOAT32_MAX, allowed_max)
    return Annotated[float, Field(strict=True, ge=low_f, le=high_f, allow_inf_nan=False)]


def row_model(
    columns: list[Column],
    id_column: str | None,
    bounds: dict[str, list[float | None]] | None = None,
    max_text_chars: int = 1000,
) -> type[BaseModel]:
    """One input row: every feature required (nullable), the optional id, extra keys ignored.

    Extra keys are ignored rather than refused so that rows copied from the data (with the
    target column) can be sent as they are; a misspelt feature still fails as a missing field.
    """
    bounds = bounds or {}
    fields: dict[str, Any] = {
        field_name(i, column.name): (
            cast(Any, value_type(column, bounds.get(column.name), max_text_chars)) | None,
            Field(..., alias=column.name),
        )
        for i, column in enumerate(columns)
    }
    if id_column:
        text = Annotated[str, Field(strict=True, max_length=max_text_chars)]
        whole = Annotated[int, Field(strict=True)]
        fields[field_name(len(columns), id_column)] = (text | whole | None, Field(None, alias=id_column))
    config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)
    return cast(type[BaseModel], create_model("Row", __config__=config, **fields))


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


def _typed(values: list[Any], column: Column) -> np.ndarray[Any, Any] | pd.api.extensions.ExtensionArray:
    """int64 for complete integer columns, float64 for other numbers, pandas' text type for text.

    Text is typed explicitly, as it is when training reads the table: a null is NaN, which the
    pipeline imputes. Left to inference, a column that is null in every row of a batch would be
    ``object`` holding None, which scikit-learn's imputer does not take for missing: a row's
    answer would depend on the rows that share its batch.
    """
    if column.kind in INTEGER_TYPES and None not in values:
        return np.asarray(values, dtype=np.int64)
    if column.kind in NUMERIC_TYPES:
        return np.asarray(values, dtype=np.float64)
    if column.kind == "string":
        return pd.array(values, dtype="str")
    return np.asarray(values, dtype=object)
