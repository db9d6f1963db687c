"""The HTTP contract generated from a model signature."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from {{ cookiecutter.package_name }}.serving import schema

SIGNATURE = [
    {"name": "tenure_months", "type": "long", "required": True},
    {"name": "monthly charges", "type": "double", "required": True},
    {"name": "contract", "type": "string", "required": False},
]
COLUMNS = schema.columns_from_signature(SIGNATURE)
ROW = schema.row_model(COLUMNS, "customer_id", {"tenure_months": [0.0, None]}, max_text_chars=20)
REQUEST = schema.request_model(ROW, max_rows=10)


def test_schema__valid_rows_become_a_typed_frame() -> None:
    body = {
        "rows": [
            {
                "customer_id": "C1",
                "tenure_months": 3,
                "monthly charges": 10.5,
                "contract": "monthly",
                "churned": "yes",
            },
            {"customer_id": "C2", "tenure_months": None, "monthly charges": 7, "contract": None},
        ]
    }
    rows = REQUEST.model_validate(body).rows  # type: ignore[attr-defined]
    frame = schema.to_frame(rows, COLUMNS, "customer_id")
    assert list(frame.columns) == ["tenure_months", "monthly charges", "contract", "customer_id"]
    assert frame["tenure_months"].dtype == np.float64
    assert np.isnan(frame["tenure_months"].iloc[1])
    assert frame["monthly charges"].tolist() == [10.5, 7.0]
    assert frame["contract"].iloc[0] == "monthly"
    assert pd.isna(frame["contract"].iloc[1])
    assert frame["customer_id"].tolist() == ["C1", "C2"]


IDS = st.one_of(st.none(), st.text(max_size=8), st.integers(-(2**53), 2**53))


@given(st.lists(IDS, min_size=1, max_size=20))
def test_schema__ids_come_back_as_sent_whatever_rows_share_a_batch(ids: list[object]) -> None:
    # Rows with and without the optional id, merged into one model call (one request, or the
    # micro-batcher joining concurrent ones): every answer carries its own row's id, None included.
    body = [{"tenure_months": 1, "monthly charges": 1.0, "contract": "x"} for _ in ids]
    rows = REQUEST.model_validate(
        {"rows": [row | ({} if i is None else {"customer_id": i}) for row, i in zip(body, ids, strict=True)]}
    ).rows  # type: ignore[attr-defined]
    frame = schema.to_frame(rows, COLUMNS, "customer_id")
    assert frame["customer_id"].tolist() == ids
    answers = [schema.Prediction(id=i, prediction="no") for i in frame["customer_id"].tolist()]
    assert [answer.id for answer in answers] == ids


def test_schema__complete_integer_column_stays_integer() -> None:
    rows = REQUEST.model_validate(
        {"rows": [{"tenure_months": 3, "monthly charges": 1.0, "contract": "x"}]}
    ).rows  # type: ignore[attr-defined]
    assert schema.to_frame(rows, COLUMNS, None)["tenure_months"].dtype == np.int64


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ({"tenure_months": "abc", "monthly charges": 1.0, "contract": "x"}, "int_type"),
        ({"tenure_months": "12", "monthly charges": 1.0, "contract": "x"}, "int_type"),
        ({"tenure_months": True, "monthly charges": 1.0, "contract": "x"}, "int_type"),
        ({"tenure_months": 1, "monthly charges": "1.5", "contract": "x"}, "float_type"),
        ({"tenure_months": 1, "monthly charges": False, "contract": "x"}, "float_type"),
        ({"tenure_months": -1, "monthly charges": 1.0, "contract": "x"}, "greater_than_equal"),
        ({"tenure_months": 1, "monthly charges": 1.0, "contract": "x" * 21}, "string_too_long"),
        ({"tenure_months": 1, "monthly charges": 1.0, "contract": "x", "customer_id": True}, "string_type"),
        ({"monthly charges": 1.0, "contract": "x"}, "missing"),
        ({"tenure_months": 1, "monthly charges": 1.0, "contract": 5}, "string_type"),
        ({"tenure_months": 1.5, "monthly charges": 1.0, "contract": "x"}, "int_from_float"),
        ({"tenure_months": 1, "monthly charges": 1.79e308, "contract": "x"}, "less_than_equal"),
        ({"tenure_months": 2**70, "monthly charges": 1.0, "contract": "x"}, "less_than_equal"),
    ],
    ids=[
        "wrong-type",
        "digits-for-integer",
        "boolean-for-integer",
        "digits-for-number",
        "boolean-for-number",
        "below-allowed-min",
        "text-over-limit",
        "boolean-for-id",
        "missing-field",
        "number-for-text",
        "fraction-for-integer",
        "beyond-float32",
        "beyond-int64",
    ],
)
def test_schema__bad_rows_are_refused_naming_the_field(row: dict[str, object], problem: str) -> None:
    with pytest.raises(ValidationError) as caught:
        REQUEST.model_validate({"rows": [row]})
    assert caught.value.errors()[0]["type"] == problem


@given(st.integers(-(2**63), 2**63 - 1))
def test_schema__an_integer_is_accepted_exactly_when_the_contract_allows_it(value: int) -> None:
    # The contract says tenure_months >= 0; the same number as a JSON float (12.0) is the same
    # integer, as JSON Schema reads it.
    for sent in (value, float(value)):
        row = {"tenure_months": sent, "monthly charges": 1.0, "contract": "x"}
        try:
            accepted = REQUEST.model_validate({"rows": [row]}).rows[0]  # type: ignore[attr-defined]
        except ValidationError:
            assert value < 0 or float(value) != value
        else:
            assert value >= 0
            assert accepted.tenure_months == int(sent)


def test_schema__json_schema_states_the_bounds_it_enforces() -> None:
    properties = ROW.model_json_schema()["properties"]
    assert {"type": "integer", "minimum": 0, "maximum": 2**63 - 1} in properties["tenure_months"]["anyOf"]
    assert {"type": "string", "maxLength": 20} in properties["contract"]["anyOf"]


def test_schema__empty_request_is_refused() -> None:
    with pytest.raises(ValidationError, match="at least 1"):
        REQUEST.model_validate({"rows": []})


def test_schema__unsupported_signature_type_names_the_column() -> None:
    with pytest.raises(schema.SchemaError, match="picture"):
        schema.columns_from_signature([{"name": "picture", "type": "binary"}])
