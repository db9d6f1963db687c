"""The request ``package`` prints: a real row of the table, as the served model's schema takes it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import ComposeFn
from {{ cookiecutter.package_name }}.serving import example, schema
from {{ cookiecutter.package_name }}.serving.settings import Settings
from tables import penguins

COLUMNS = [
    schema.Column("island", "string"),
    schema.Column("bill_length_mm", "double"),
    schema.Column("flipper_length_mm", "long"),
    schema.Column("year", "long"),
]


def settings(**changes: object) -> Settings:
    """The service's settings as a bento freezes them; only what the request model reads matters."""
    fields: dict[str, object] = {
        "service_name": "penguins",
        "task": "classification",
        "id_column": "penguin_id",
        "model_name": "penguins",
        "model_alias": "candidate",
        "model_tag": "penguins:abc",
        "tracking_uri": "",
        "max_batch_size": 512,
        "max_queue_ms": 250.0,
        "workers": 1,
        "max_rows_per_request": 100,
        "profile_dir": "profiles",
        "profile_window_s": 60.0,
        "profiling": False,
    }
    return Settings(**(fields | changes))  # type: ignore[arg-type]


def table() -> pd.DataFrame:
    """Penguins with the columns the public table has and the README's old body lacked."""
    frame = penguins(rows=40)
    rng = np.random.default_rng(3)
    flippers = rng.integers(170, 230, len(frame)).astype(float)
    flippers[0] = np.nan  # a gap makes pandas read the whole column as floats: 181.0, not 181
    return frame.assign(flipper_length_mm=flippers, year=rng.choice([2007, 2008, 2009], len(frame)))


def test_first_accepted__the_first_complete_row_with_every_feature_typed_as_the_service_takes_it() -> None:
    frame = table()
    position, body = example.first_accepted(frame, COLUMNS, settings())
    row = frame.iloc[position]
    assert position == int(np.flatnonzero(frame[[c.name for c in COLUMNS]].notna().all(axis=1))[0])
    assert body == {
        "rows": [
            {
                "penguin_id": row["penguin_id"],
                "island": row["island"],
                "bill_length_mm": float(row["bill_length_mm"]),
                "flipper_length_mm": int(row["flipper_length_mm"]),
                "year": int(row["year"]),
            }
        ]
    }
    text = json.dumps(body)
    assert f'"flipper_length_mm": {int(row["flipper_length_mm"])},' in text  # a whole number, no ".0"
    assert "species" not in text  # the target is not an input
    assert "note" not in text  # nor a column the model does not take


def test_first_accepted__a_row_the_service_would_refuse_is_passed_over() -> None:
    """Bounds frozen into the bento refuse the first complete row: the next one is the example."""
    frame = table()
    first, _ = example.first_accepted(frame, COLUMNS, settings())
    bill = float(frame["bill_length_mm"].iloc[first])
    position, body = example.first_accepted(
        frame, COLUMNS, settings(bounds={"bill_length_mm": [bill + 0.01, None]})
    )
    assert position != first
    assert body["rows"][0]["bill_length_mm"] > bill


def test_first_accepted__only_incomplete_rows_still_make_a_body_with_nulls() -> None:
    frame = table().assign(flipper_length_mm=np.nan)
    _, body = example.first_accepted(frame, COLUMNS, settings())
    assert body["rows"][0]["flipper_length_mm"] is None


def test_first_accepted__a_column_the_model_takes_and_the_table_lacks_is_named() -> None:
    with pytest.raises(example.NoExampleError, match="the table has no column year that the model takes"):
        example.first_accepted(table().drop(columns=["year"]), COLUMNS, settings())


def test_first_accepted__no_row_the_service_accepts_says_why() -> None:
    too_long = table().assign(island="x" * 50)
    with pytest.raises(example.NoExampleError, match="at most 20 characters"):
        example.first_accepted(too_long, COLUMNS, settings(max_text_chars=20))


@pytest.mark.parametrize(
    ("value", "kind", "expected"),
    [
        (181.0, "long", 181),
        (np.int64(2007), "long", 2007),
        (np.int64(3), "double", 3.0),
        (45.1, "double", 45.1),
        (np.nan, "double", None),
        (None, "string", None),
        (pd.NA, "string", None),
        ("Biscoe", "string", "Biscoe"),
        (np.True_, "boolean", True),
    ],
)
def test_json_value__as_the_schema_types_the_column(value: object, kind: str, expected: object) -> None:
    converted = example.json_value(value, kind)
    assert converted == expected
    assert type(converted) is type(expected)


def test_write__the_file_holds_the_printed_line(tmp_path: Path, make_config: ComposeFn) -> None:
    """``request.json`` is the body exactly as printed, ready for ``curl -d @``."""
    frame = table()
    frame.to_csv(tmp_path / "penguins.csv", index=False)
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    inputs = json.dumps([{"name": c.name, "type": c.kind, "required": True} for c in COLUMNS])
    (model_dir / "MLmodel").write_text(f"signature:\n  inputs: '{inputs}'\n")
    cfg = make_config(f"data.path={tmp_path / 'penguins.csv'}", f"serving.report_dir={tmp_path / 'reports'}")
    written = example.write(cfg, model_dir, settings())
    assert written.path == tmp_path / "reports" / "request.json"
    assert written.path.read_text(encoding="utf-8") == written.text + "\n"
    assert written.row == example.first_accepted(frame, COLUMNS, settings())[0] + 1
