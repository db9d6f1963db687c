"""Sanity checks a service must pass before it takes production traffic.

Each check is pass/fail with the numbers that decided it: health and readiness, output format
(every response validates against the service's own OpenAPI schema, and schemathesis finds no
5xx), latency (p95/p99 under budget at a fixed concurrency, measured with wrk), and metric
parity (the served model reproduces its offline test metrics on the held-out split). The same
checks gate staging (``nox -s check-staging``) and every promotion's candidate color.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException

from .. import evaluation, registry
from ..config import Config
from ..data import digest, load_dataset, split
from ..errors import PipelineError
from ..reports import jsonfile
from ..tools import MissingToolError
from . import access, load, loopback, router
from .state import Checks, LatencyCheck

PREDICT_PATH = "/predict"
BATCH_ROWS = 100


@dataclass(frozen=True)
class CheckResult:
    """One check's verdict and the numbers behind it."""

    name: str
    passed: bool
    numbers: dict[str, float | int | str]
    detail: str = ""


@dataclass
class Report:
    """Every check run against one service URL."""

    environment: str
    target: str
    url: str
    results: list[CheckResult] = field(default_factory=list)
    started_at: float = field(default_factory=time.time)
    bento: str = ""  # the release checked: a promotion proposes only a bento whose checks passed

    @property
    def passed(self) -> bool:
        """All checks passed (and there was at least one)."""
        return bool(self.results) and all(result.passed for result in self.results)

    def failures(self) -> list[CheckResult]:
        """The checks that failed."""
        return [result for result in self.results if not result.passed]

    def write(self, directory: str | Path, name: str) -> tuple[Path, Path]:
        """Write ``<name>.json`` (machine-readable) and ``<name>.md`` (the job summary)."""
        target = Path(directory)
        target.mkdir(parents=True, exist_ok=True)
        doc = asdict(self) | {"passed": self.passed}
        json_path, md_path = target / f"{name}.json", target / f"{name}.md"
        jsonfile.write_json(doc, json_path)
        md_path.write_text(self.markdown())
        return json_path, md_path

    def markdown(self) -> str:
        """A Markdown table: one row per check, numbers inline."""
        verdict = "PASSED" if self.passed else "FAILED"
        lines = [
            f"## Checks: {self.environment}, {self.target}: {verdict}",
            "",
            f"Service: `{self.url}`",
            "",
            "| check | result | numbers | detail |",
            "|---|---|---|---|",
        ]
        for result in self.results:
            mark = "pass" if result.passed else "**FAIL**"
            lines.append(
                f"| {result.name} | {mark} | {numbers_text(result)} | {result.detail.replace('|', '/')} |"
            )
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Holdout:
    """The held-out test split and the metrics the model scored on it offline."""

    task: str
    x_test: pd.DataFrame
    y_test: pd.Series
    offline: dict[str, float]


def _fmt(value: float | int | str) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def numbers_text(result: CheckResult) -> str:
    """A check's numbers as ``key=value`` pairs, floats to four digits: the log's and the table's."""
    return ", ".join(f"{key}={_fmt(value)}" for key, value in result.numbers.items())


def request_body(rows: pd.DataFrame) -> dict[str, Any]:
    """The predict endpoint's request: rows as JSON records (missing values as null)."""
    records = json.loads(rows.to_json(orient="records"))
    return {"rows": records}


def predictions_of(body: object) -> list[Any]:
    """The predictions in a predict response; raises ValueError when the response has none.

    Items are either bare values or objects with ``prediction`` (and, for classifiers,
    ``probabilities`` by class name); objects are returned as they are.
    """
    if not isinstance(body, dict) or not isinstance(body.get("predictions"), list):
        raise ValueError("response has no 'predictions' list")
    items = list(body["predictions"])
    if any(isinstance(item, dict) and "prediction" not in item for item in items):
        raise ValueError("a prediction object has no 'prediction' field")
    return items


def _labels_and_probabilities(
    items: list[Any], y_true: np.ndarray
) -> tuple[np.ndarray, np.ndarray | None, list[Any]]:
    """Split served items into labels and a probability matrix in class order (when served)."""
    labels = np.asarray([item["prediction"] if isinstance(item, dict) else item for item in items])
    by_name = {str(value): value for value in sorted(set(y_true.tolist()))}
    served: list[dict[str, float]] = [
        item["probabilities"]
        for item in items
        if isinstance(item, dict) and isinstance(item.get("probabilities"), dict)
    ]
    if len(served) != len(items):
        return labels, None, list(by_name.values())
    names = list(served[0])
    classes = [by_name.get(name, name) for name in names]
    matrix = np.asarray([[float(p[name]) for name in names] for p in served])
    return labels, matrix, classes


def _request(
    port: int, method: str, path: str, body: object = None, *, timeout_s: float = 30.0, key: str | None = None
) -> tuple[int, Any]:
    payload = json.dumps(body).encode() if body is not None else None
    response = loopback.client().request(
        method,
        f"http://127.0.0.1:{port}{path}",
        content=payload,
        headers=router.OPERATOR_HEADERS | access.bearer(key),
        timeout=timeout_s,
    )
    raw = response.content
    try:
        return response.status_code, json.loads(raw) if raw else None
    except ValueError:
        return response.status_code, raw.decode(errors="replace")


def health(port: int, key: str | None = None) -> CheckResult:
    """``/livez`` and ``/readyz`` answer 200, and how fast (``key``: the operator key, if asked)."""
    numbers: dict[str, float | int | str] = {}
    passed = True
    for path in ("/livez", "/readyz"):
        started = time.perf_counter()
        try:
            status, _ = _request(port, "GET", path, timeout_s=5.0, key=key)
        except httpx.HTTPError as error:
            return CheckResult("health", False, numbers, f"{path}: {error}")
        numbers[f"{path[1:]}_status"] = status
        numbers[f"{path[1:]}_ms"] = round((time.perf_counter() - started) * 1000, 2)
        passed = passed and status == 200
    return CheckResult("health", passed, numbers, "" if passed else "a probe did not answer 200")


def response_schema(spec: dict[str, Any], path: str = PREDICT_PATH) -> dict[str, Any]:
    """The JSON schema of ``path``'s 200 response, with the spec's components for ``$ref``."""
    try:
        schema = spec["paths"][path]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    except KeyError as error:
        raise ValueError(f"the OpenAPI document has no JSON 200 response for POST {path}") from error
    return dict(schema) | {"components": spec.get("components", {})}


def _batches(frame: pd.DataFrame, size: int) -> Iterator[pd.DataFrame]:
    for start in range(0, len(frame), size):
        yield frame.iloc[start : start + size]


def serve_holdout(port: int, holdout: Holdout, key: str | None = None) -> tuple[list[Any], list[str]]:
    """Send the held-out rows in batches; collect predictions and everything that went wrong."""
    status, spec = _request(port, "GET", "/docs.json", key=key)
    if status != 200 or not isinstance(spec, dict):
        return [], [f"GET /docs.json answered {status}"]
    try:
        validator = jsonschema.Draft7Validator(response_schema(spec))
    except ValueError as error:
        return [], [str(error)]
    predictions: list[Any] = []
    problems: list[str] = []
    for batch in _batches(holdout.x_test, BATCH_ROWS):
        try:
            status, body = _request(port, "POST", PREDICT_PATH, request_body(batch), key=key)
        except httpx.HTTPError as error:
            problems.append(f"rows {batch.index[0]}..: no response ({error!r})")
            continue
        errors = [error.message for error in validator.iter_errors(body)] if status == 200 else []
        try:
            served = predictions_of(body) if status == 200 else []
        except ValueError as error:
            errors.append(str(error))
            served = []
        if status != 200 or errors or len(served) != len(batch):
            problems.append(
                f"rows {batch.index[0]}..: status {status}, {len(served)} predictions, {errors[:2]}"
            )
        predictions.extend(served)
    return predictions, problems


def output_format(problems: list[str], responses: int) -> CheckResult:
    """Every predict response validated against the service's OpenAPI schema."""
    passed = not problems and responses > 0
    detail = "; ".join(problems[:3])
    return CheckResult("output_format", passed, {"responses": responses, "invalid": len(problems)}, detail)


def parity(predictions: list[Any], holdout: Holdout, tolerance: float) -> CheckResult:
    """The served predictions reproduce the offline test metrics within ``tolerance`` (default exact)."""
    if len(predictions) != len(holdout.x_test):
        return CheckResult(
            "metric_parity", False, {"served_rows": len(predictions)}, "not every held-out row was scored"
        )
    y_true = holdout.y_test.to_numpy()
    if holdout.task == evaluation.REGRESSION:
        values = [item["prediction"] if isinstance(item, dict) else item for item in predictions]
        served = evaluation.regression_metrics(y_true.astype(float), np.asarray(values, dtype=float))
    else:
        labels, probabilities, classes = _labels_and_probabilities(predictions, y_true)
        served = evaluation.classification_metrics(y_true, labels, probabilities, classes)
    numbers: dict[str, float | int | str] = {"rows": len(predictions)}
    worst = 0.0
    for name, value in served.items():
        if name in holdout.offline:
            numbers[f"served_{name}"], numbers[f"offline_{name}"] = value, holdout.offline[name]
            worst = max(worst, abs(value - holdout.offline[name]))
    compared = [name for name in served if name in holdout.offline]
    numbers["max_abs_diff"] = worst
    passed = bool(compared) and worst <= tolerance + 1e-12
    detail = f"compared {', '.join(compared)}" if compared else "no offline metric to compare with"
    return CheckResult("metric_parity", passed, numbers, detail)


def schemathesis_run(port: int, examples: int, checks: str = "all", key: str | None = None) -> CheckResult:
    """Property-based requests generated from the service's OpenAPI schema, every check on.

    With ``all`` (the default), beyond "no 5xx": each answer's status, content type, headers and
    body must be what the document declares, valid requests must be accepted and invalid ones
    refused, and a method the document does not list must get 405.
    """
    with tempfile.TemporaryDirectory() as scratch:
        junit = Path(scratch) / "junit.xml"
        command = [
            str(Path(sys.executable).parent / "schemathesis"), "run", f"http://127.0.0.1:{port}/docs.json",
            "--checks", checks, "--max-examples", str(examples), "--seed", "1",
            "--request-timeout", "30", "--report", "junit", "--report-junit-path", str(junit), "--no-color",
            *[f"--header={name}: {value}" for name, value in access.bearer(key).items()],
        ]  # fmt: skip
        outcome = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
        numbers = _junit_numbers(junit)
    passed = outcome.returncode == 0
    numbers["exit_code"] = outcome.returncode
    detail = "" if passed else _findings(outcome.stdout + outcome.stderr)
    return CheckResult("schemathesis", passed, numbers, detail)


def _findings(output: str) -> str:
    """Each failure schemathesis reports (code, what, the curl that reproduces it), else the tail."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    found = [line for line in lines if re.match(r"(- ST\d+|curl |\[\d{3}\])", line)]
    return " / ".join(found[:12]) if found else _last_lines(output, 4)


def _junit_numbers(path: Path) -> dict[str, float | int | str]:
    if not path.is_file():
        return {}
    root = ET.parse(path).getroot()  # noqa: S314
    suites = [root] if root.tag == "testsuite" else list(root)
    totals = {"operations": 0, "failures": 0, "errors": 0}
    for suite in suites:
        totals["operations"] += int(suite.get("tests", 0))
        totals["failures"] += int(suite.get("failures", 0))
        totals["errors"] += int(suite.get("errors", 0))
    return dict(totals)


def _last_lines(text: str, count: int) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " / ".join(lines[-count:])


@dataclass(frozen=True)
class Reference:
    """What a candidate's latency is judged beside, measured at the same time on the same host.

    The production gate's is the live color; check-staging's the release staging keeps warm on
    its other color (or, on a host running both, production's live color). ``key`` is the
    operator key of the reference's environment, which its color asks for.
    """

    port: int
    name: str = "live color"
    key: str | None = None


def latency(
    port: int,
    sample: pd.DataFrame,
    checks: Checks,
    live_port: int | None = None,
    *,
    key: str | None = None,
    reference: Reference | None = None,
) -> CheckResult:
    """p95 and p99 of the predict endpoint under ``concurrency`` clients, measured with wrk.

    With a reference (``live_port``: the live color; or ``reference``), it is measured the same
    way at the same time, so a busy host slows both alike (one after the other, a burst landed
    on one of them), and the candidate is judged against the budget or, over it, against the
    reference (see :class:`LatencyCheck`). Without one, the fixed budget alone decides: a busy
    host then refuses a good release (p95 203.7 and 221.5 ms against 200 at load 13-15).
    """
    budget = checks.latency
    reference = reference or (Reference(live_port, key=key) if live_port is not None else None)
    body = json.dumps(request_body(sample.head(budget.rows_per_request)))
    try:
        measured, beside = _measure(port, body, budget, reference, key)
    except (load.LoadError, MissingToolError) as error:  # wrk missing or silent: a failed check
        return CheckResult("latency", False, {}, str(error))
    p95, p99, errors = measured.p95_us / 1000, measured.p99_us / 1000, measured.errors
    numbers: dict[str, float | int | str] = {
        "concurrency": budget.concurrency, "requests": measured.requests,
        "rps": round(measured.requests_per_s, 1), "p50_ms": measured.p50_us / 1000, "p95_ms": p95,
        "p99_ms": p99, "budget_p95_ms": budget.p95_ms, "budget_p99_ms": budget.p99_ms, "errors": errors,
    }  # fmt: skip
    if beside is not None and reference is not None:
        numbers |= {"live_p95_ms": beside.p95_us / 1000, "live_p99_ms": beside.p99_us / 1000}
        numbers["reference"] = reference.name
    if errors or measured.requests < budget.min_requests:
        detail = f"{measured.requests} requests ({budget.min_requests} needed), {errors} errors"
        return CheckResult("latency", False, numbers, detail)
    if p95 <= budget.p95_ms and p99 <= budget.p99_ms:
        return CheckResult("latency", True, numbers)
    detail = f"p95/p99 {p95:.1f}/{p99:.1f} ms, budget {budget.p95_ms:g}/{budget.p99_ms:g}, {errors} errors"
    if beside is None or reference is None:
        return CheckResult("latency", False, numbers, detail + "; no reference measured beside it")
    return _beside(numbers, detail, budget, reference.name)


def _beside(
    numbers: dict[str, float | int | str], detail: str, budget: LatencyCheck, name: str
) -> CheckResult:
    """Over budget, judged against the reference measured alongside.

    Beside a reference, p95 alone decides: the p99 of a few dozen answers is their slowest one
    or two, which a single pause on a busy host sets (p99 55 vs 33 ms for identical servers).
    """
    p95, reference_p95 = float(numbers["p95_ms"]), float(numbers["live_p95_ms"])
    if p95 <= min(reference_p95 * budget.relative_to_live, budget.cap_p95_ms):
        return CheckResult(
            "latency", True, numbers, f"over budget, but within {budget.relative_to_live:g}x the {name}'s"
        )
    detail += (
        f"; {name} p95/p99 {reference_p95:.1f}/{float(numbers['live_p99_ms']):.1f} ms "
        f"(allowed {budget.relative_to_live:g}x, p95 cap {budget.cap_p95_ms:g})"
    )
    return CheckResult("latency", False, numbers, detail)


def _measure(
    port: int, body: str, budget: LatencyCheck, reference: Reference | None, key: str | None
) -> tuple[load.LoadResult, load.LoadResult | None]:
    """The candidate's numbers and, with a reference, the reference's, measured side by side."""
    clients, duration_s = budget.concurrency, budget.duration_s
    url = f"http://127.0.0.1:{port}{PREDICT_PATH}"
    if reference is None:
        return load.run(url, body, clients=clients, duration_s=duration_s, key=key), None
    reference_url = f"http://127.0.0.1:{reference.port}{PREDICT_PATH}"
    with load.background(
        reference_url, body, clients=clients, duration_s=duration_s, key=reference.key
    ) as beside:
        measured = load.run(url, body, clients=clients, duration_s=duration_s, key=key)
        return measured, beside.result()


def run_all(
    port: int,
    holdout: Holdout,
    checks: Checks,
    report: Report,
    *,
    log: Callable[[str], None] = print,
    stop_on_failure: bool = False,
    live_port: int | None = None,
    key: str | None = None,
    reference: Reference | None = None,
) -> Report:
    """Run every check, cheapest first; an unhealthy service gets no load, a gate stops at a failure.

    ``live_port`` (the promotion gate) lets the latency check measure the live color beside it,
    ``reference`` (check-staging) another release; ``key`` is the operator key the preview door
    and the colors ask for.
    """
    served: dict[str, Any] = {}

    def format_step() -> CheckResult:
        served["predictions"], problems = serve_holdout(port, holdout, key)
        return output_format(problems, math.ceil(len(holdout.x_test) / BATCH_ROWS))

    steps: list[Callable[[], CheckResult]] = [
        lambda: health(port, key),
        format_step,
        lambda: parity(served.get("predictions", []), holdout, checks.parity_tolerance),
        lambda: latency(port, holdout.x_test, checks, live_port, key=key, reference=reference),
        lambda: schemathesis_run(port, checks.schemathesis_examples, checks.schemathesis_checks, key),
    ]
    for step in steps:
        result = step()
        report.results.append(result)
        verdict = "pass" if result.passed else "FAIL"
        log(
            f"  check {result.name}: {verdict}: {numbers_text(result)}"
            + (f"; {result.detail}" if result.detail else "")
        )
        if not result.passed and (stop_on_failure or result.name == "health"):
            break
    return report


class HoldoutError(PipelineError, ValueError):
    """The offline metrics or the held-out data of a model version cannot be found."""


def load_holdout(cfg: Config, model_version: str) -> Holdout:
    """The held-out split and offline test metrics of one registered model version.

    The split is recomputed from ``cfg.data`` with the training seed; the data digest logged
    at training must match, or parity could not be exact and the check would mislead.
    """
    client = registry.connect(cfg.mlflow)
    try:
        lineage = registry.lineage(client, cfg.mlflow.model_name, model_version)
        metrics = client.get_run(lineage.run_id).data.metrics
    except MlflowException as error:
        raise HoldoutError(
            f"model {cfg.mlflow.model_name!r} version {model_version!r} is not in the registry at "
            f"{cfg.mlflow.tracking_uri}; check model_version in the desired-state file"
        ) from error
    frame = load_dataset(cfg.data)
    if lineage.data_digest and digest(frame) != lineage.data_digest:
        raise HoldoutError(
            f"{cfg.data.path} changed since version {model_version} was trained "
            f"(digest {digest(frame)} != {lineage.data_digest}); point data.path at the training data"
        )
    data = split(frame, cfg.data, stratify=cfg.task == evaluation.CLASSIFICATION)
    offline = {
        name.removeprefix("test_"): value for name, value in metrics.items() if name.startswith("test_")
    }
    return Holdout(cfg.task, data.x_test, data.y_test, offline)
