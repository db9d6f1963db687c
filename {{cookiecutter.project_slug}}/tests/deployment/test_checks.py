"""Staging checks as pure decisions: parity, output format, schema lookup, reports."""

from __future__ import annotations

import contextlib
import json
import shutil
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema
import pandas as pd
import pytest

from {{ cookiecutter.package_name }}.deployment import checks, loopback
from {{ cookiecutter.package_name }}.deployment.state import Checks, LatencyCheck

needs_wrk = pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk not installed (apt-get install wrk)")


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


class Predict(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as wrk expects
    disable_nagle_algorithm = True  # headers and body go out apart: no 40 ms delayed-ACK stall
    delay_s = 0.0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        time.sleep(self.delay_s)
        self.send_response(200 if self.path == checks.PREDICT_PATH else 404)
        self.send_header("Content-Length", "18")
        self.end_headers()
        self.wfile.write(b'{"predictions":[]}')

    def log_message(self, *args: object) -> None:
        pass


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, *args: object) -> None:
        pass  # wrk resets its connections when it stops


@contextlib.contextmanager
def answering(delay_s: float = 0.0) -> Iterator[int]:
    """A predict endpoint on loopback answering after ``delay_s``; its port."""
    handler = type("Delayed", (Predict,), {"delay_s": delay_s})
    server = QuietServer(("127.0.0.1", loopback.free_port()), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def predict_port() -> Iterator[int]:
    with answering() as port:
        yield port


def budget(**latency: Any) -> Checks:
    return Checks(latency=LatencyCheck(**{"concurrency": 2, "duration_s": 1.0, "min_requests": 5} | latency))


@needs_wrk
def test_latency__measured_with_wrk(predict_port: int) -> None:
    result = checks.latency(predict_port, holdout().x_test, budget())
    assert result.passed, result
    assert result.numbers["requests"] > 0
    assert result.numbers["errors"] == 0
    assert 0 < result.numbers["p50_ms"] <= result.numbers["p95_ms"] <= result.numbers["p99_ms"]
    assert result.numbers["concurrency"] == 2


@needs_wrk
def test_latency__over_budget_fails_with_the_numbers(predict_port: int) -> None:
    result = checks.latency(predict_port, holdout().x_test, budget(p95_ms=0.0001))
    assert not result.passed
    assert result.detail.startswith("p95/p99 ")
    assert "budget 0.0001/500, 0 errors" in result.detail


@needs_wrk
@pytest.mark.parametrize(
    ("candidate_s", "live_s", "cap_ms", "passed", "says"),
    [
        (0.03, 0.03, 2000.0, True, "within 1.5x the live color's"),  # a busy host slows both
        # a slow release is slow alone: 25x the live color's sleep, so a busy CI host that
        # stretches the live color's 10 ms to ~80 ms still leaves it far beyond 1.5x
        (0.25, 0.01, 2000.0, False, "live color p95/p99"),
        (0.03, 0.03, 20.0, False, "p95 cap 20"),  # never beyond the cap, however busy
    ],
)
def test_latency__over_budget_is_judged_beside_the_live_color(
    candidate_s: float, live_s: float, cap_ms: float, passed: bool, says: str
) -> None:
    limits = budget(p95_ms=5.0, p99_ms=5.0, cap_p95_ms=cap_ms)
    with answering(candidate_s) as candidate, answering(live_s) as live:
        result = checks.latency(candidate, holdout().x_test, limits, live_port=live)
    assert (result.passed, says in result.detail) == (passed, True), result
    assert result.numbers["live_p95_ms"] > 0


@needs_wrk
def test_latency__too_few_answers_never_pass(predict_port: int) -> None:
    result = checks.latency(predict_port, holdout().x_test, budget(duration_s=0.5, min_requests=10**9))
    assert not result.passed
    assert "needed" in result.detail


@needs_wrk
def test_latency__nothing_listening_fails_the_check() -> None:
    result = checks.latency(loopback.free_port(), holdout().x_test, budget())
    assert not result.passed
    assert "unable to connect" in result.detail


def test_latency__missing_wrk_fails_the_check(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    result = checks.latency(1, holdout().x_test, budget())
    assert not result.passed
    assert result.numbers == {}
    assert result.detail.startswith("wrk is not installed (load generation")
    assert "apt-get install wrk" in result.detail
