"""Staging checks as pure decisions: parity, output format, schema lookup, reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pandas as pd
import pytest

from {{ cookiecutter.package_name }}.deployment import checks


def holdout(task: str = "classification") -> checks.Holdout:
    x = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0]})
    if task == "regression":
        return checks.Holdout(task, x, pd.Series([1.0, 2.0, 3.0, 4.0]), {"rmse": 0.0, "mae": 0.0, "r2": 1.0})
    y = pd.Series(["no", "yes", "no", "yes"])
    return checks.Holdout(task, x, y, {"accuracy": 0.75, "f1_macro": 0.7333333333333334, "roc_auc": 1.0})


def served(labels: list[str], p_yes: list[float]) -> list[dict[str, Any]]:
    return [
        {"prediction": label, "probabilities": {"no": 1 - p, "yes": p}}
        for label, p in zip(labels, p_yes, strict=True)
    ]


def test_parity__exact_reproduction_passes() -> None:
    result = checks.parity(served(["no", "yes", "no", "no"], [0.1, 0.9, 0.2, 0.8]), holdout(), tolerance=0.0)
    assert result.passed, result
    assert result.numbers["max_abs_diff"] == 0.0
    assert "roc_auc" in result.detail


def test_parity__one_changed_prediction_fails() -> None:
    result = checks.parity(served(["no", "yes", "yes", "no"], [0.1, 0.9, 0.2, 0.8]), holdout(), tolerance=0.0)
    assert not result.passed
    assert result.numbers["served_accuracy"] == 0.5


def test_parity__bare_labels_compare_what_they_can() -> None:
    result = checks.parity(["no", "yes", "no", "no"], holdout(), tolerance=0.0)
    assert result.passed
    assert result.detail == "compared accuracy, f1_macro"


def test_parity__regression_values() -> None:
    assert checks.parity([1.0, 2.0, 3.0, 4.0], holdout("regression"), tolerance=0.0).passed
    assert not checks.parity([1.0, 2.0, 3.0, 5.0], holdout("regression"), tolerance=0.0).passed


def test_parity__missing_rows_fail() -> None:
    result = checks.parity(["no"], holdout(), tolerance=0.0)
    assert not result.passed
    assert "not every held-out row" in result.detail


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"labels": []}, "no 'predictions' list"),
        ([1, 2], "no 'predictions' list"),
        ({"predictions": [{"label": "yes"}]}, "no 'prediction' field"),
    ],
)
def test_predictions_of__wrong_shapes_are_named(body: object, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        checks.predictions_of(body)


def test_response_schema__resolves_components() -> None:
    spec = {
        "paths": {
            "/predict": {
                "post": {
                    "responses": {
                        "200": {
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Out"}}}
                        }
                    }
                }
            }
        },
        "components": {"schemas": {"Out": {"type": "object", "required": ["predictions"]}}},
    }
    schema = checks.response_schema(spec)
    jsonschema.Draft7Validator(schema).validate({"predictions": []})
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(schema).validate({"labels": []})
    with pytest.raises(ValueError, match="no JSON 200 response for POST /predict"):
        checks.response_schema({"paths": {}})


def test_request_body__missing_values_become_null() -> None:
    body = checks.request_body(pd.DataFrame({"a": [1.5, None], "b": ["x", None]}))
    assert body == {"rows": [{"a": 1.5, "b": "x"}, {"a": None, "b": None}]}


def test_report__json_and_markdown(tmp_path: Path) -> None:
    report = checks.Report("staging", "green (svc:1)", "http://127.0.0.1:1")
    report.results += [
        checks.CheckResult("health", True, {"readyz_ms": 1.25}),
        checks.CheckResult("latency", False, {"p95_ms": 80.0}, "p95 over budget"),
    ]
    json_path, md_path = report.write(tmp_path, "staging")
    doc = json.loads(json_path.read_text())
    assert doc["passed"] is False
    assert [r["name"] for r in doc["results"]] == ["health", "latency"]
    text = md_path.read_text()
    assert "FAILED" in text
    assert "| latency | **FAIL** | p95_ms=80 | p95 over budget |" in text
    assert [r.name for r in report.failures()] == ["latency"]


def test_output_format__any_problem_fails() -> None:
    assert checks.output_format([], 6).passed
    assert not checks.output_format(["rows 0..: status 500"], 6).passed
    assert not checks.output_format([], 0).passed
