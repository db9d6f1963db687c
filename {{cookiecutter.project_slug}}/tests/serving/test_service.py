"""The real service on loopback: offline parity, bad input, metrics, metadata, profiles."""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pandas as pd
import pytest

import bento_server
from conftest import quick_forest
from crowning import crown
from {{ cookiecutter.package_name }} import profiling, registry
from {{ cookiecutter.package_name }}.config import PROJECT_ROOT, Config, compose
from {{ cookiecutter.package_name }}.data import load_table, split
from {{ cookiecutter.package_name }}.deployment import checks
from {{ cookiecutter.package_name }}.headers import CLIENT_HEADER, DIRECT
from {{ cookiecutter.package_name }}.serving.traffic import client_name
from {{ cookiecutter.package_name }}.training import train
from raw_http import headers_only

pytestmark = pytest.mark.slow
MAX_ROWS = 500
MAX_BODY_MB = 1.0
KEY = "the-router-s-key"
"""The one key the served color answers (``SERVING_KEY_SHA256``), as the deploy tooling starts colors."""
BEARER = {"Authorization": f"Bearer {KEY}"}


@dataclass
class Served:
    url: str
    cfg: Config
    profile_dir: Path
    process: Any
    log: Path
    rows_answered: int = 0
    by_client: Counter[str] = field(default_factory=Counter)
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=60, headers=BEARER))

    def predict(self, rows: list[dict[str, Any]], sender: str | None = None) -> httpx.Response:
        """POST rows; ``sender`` goes as ``X-Client``, as the router names each caller."""
        headers = {CLIENT_HEADER: sender} if sender else {}
        response = self.client.post(f"{self.url}/predict", json={"rows": rows}, headers=headers)
        if response.status_code == 200:
            self.rows_answered += len(rows)
            self.by_client[client_name(sender)] += len(rows)
        return response


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A quick model trained into a throwaway store, crowned, served from source."""
    root = tmp_path_factory.mktemp("service")
    overrides = [
        *quick_forest(root),
        f"serving.profile_dir={root}/profiles",
        "serving.profile_window_s=2",
        f"serving.max_rows_per_request={MAX_ROWS}",
        f"serving.max_body_mb={MAX_BODY_MB}",
    ]
    cfg = compose(overrides)
    train.train(cfg)
    crown(cfg)
    env = {
        "SERVING_CONFIG_OVERRIDES": " ".join(overrides),
        "BENTOML_HOME": str(root / "bentoml"),
        "SERVING_KEY_SHA256": hashlib.sha256(KEY.encode()).hexdigest(),
    }
    target = "{{ cookiecutter.package_name }}.serving.service:ModelService"
    process, url = bento_server.start(target, PROJECT_ROOT, env, root / "serve.log")
    yield Served(url, cfg, root / "profiles", process, root / "serve.log")
    bento_server.stop(process)


@pytest.fixture(scope="module")
def test_rows(served: Served) -> tuple[list[dict[str, Any]], list[Any]]:
    """The sample test split as JSON rows (with ids), and the offline pipeline's predictions."""
    cfg = served.cfg
    frame = load_table(cfg.data.path)
    x_test = split(frame, cfg.data, stratify=cfg.task == "classification").x_test
    registry.connect(cfg.mlflow)
    model = registry.load(cfg.mlflow.model_name, registry.CHAMPION)
    features = x_test[list(model.feature_names_in_)]
    with_ids = features.assign(**{cfg.data.id_column: frame.loc[x_test.index, cfg.data.id_column]})
    rows = json.loads(with_ids.to_json(orient="records"))
    return rows, model.predict(features).tolist()


def test_service__one_request_matches_offline_predictions(
    served: Served, test_rows: tuple[list, list]
) -> None:
    rows, expected = test_rows
    response = served.predict(rows[:MAX_ROWS])
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert [p["prediction"] for p in predictions] == pytest.approx(expected[:MAX_ROWS])  # labels or values
    assert [p["id"] for p in predictions] == [r[served.cfg.data.id_column] for r in rows[:MAX_ROWS]]


def test_service__concurrent_single_rows_match_offline_predictions(
    served: Served, test_rows: tuple[list, list]
) -> None:
    rows, expected = test_rows
    senders = ["web-app", "batch", None]  # batched together, each row still filed under its sender
    with ThreadPoolExecutor(max_workers=16) as pool:
        responses = list(pool.map(lambda i: served.predict([rows[i]], senders[i % 3]), range(len(rows))))
    assert all(r.status_code == 200 for r in responses)
    assert [r.json()["predictions"][0]["prediction"] for r in responses] == pytest.approx(expected)


def test_service__concurrent_requests_with_and_without_ids_are_all_answered(
    served: Served, test_rows: tuple[list, list]
) -> None:
    rows, _ = test_rows
    id_column = served.cfg.data.id_column
    without = [{k: v for k, v in row.items() if k != id_column} for row in rows[:120]]
    mixed = [row for pair in zip(rows[:120], without, strict=True) for row in pair]  # alternating
    with ThreadPoolExecutor(16) as pool:  # concurrent single rows: the batcher mixes them
        answers = list(pool.map(lambda row: served.predict([row]), mixed))
    assert [answer.status_code for answer in answers] == [200] * len(mixed)
    sent = [row.get(id_column) for row in mixed]
    assert [answer.json()["predictions"][0]["id"] for answer in answers] == sent
    both = served.predict([rows[0], without[1]])  # one request holding both kinds
    assert both.status_code == 200
    assert [p["id"] for p in both.json()["predictions"]] == [rows[0][id_column], None]


def test_service__unknown_category_is_answered_as_the_model_would(
    served: Served, test_rows: tuple[list, list]
) -> None:
    row = dict(test_rows[0][0], contract="lifetime-deal")
    response = served.predict([row])
    assert response.status_code == 200
    assert response.json()["predictions"][0]["prediction"] is not None


BAD_BODIES = {
    "wrong-type": lambda row: {"rows": [dict(row, tenure_months="twelve")]},
    "digits-for-integer": lambda row: {"rows": [dict(row, tenure_months="12")]},
    "boolean-for-integer": lambda row: {"rows": [dict(row, tenure_months=True)]},
    "below-the-contract": lambda row: {"rows": [dict(row, tenure_months=-3)]},  # allowed_min: 0
    "text-over-the-limit": lambda row: {"rows": [dict(row, contract="x" * 1001)]},
    "missing-field": lambda row: {"rows": [{k: v for k, v in row.items() if k != "monthly_charges"}]},
    "empty": lambda row: {"rows": []},
    "no-rows-key": lambda row: {"row": row},
    "rows-not-a-list": lambda row: {"rows": row},
}


@pytest.mark.parametrize("case", list(BAD_BODIES), ids=list(BAD_BODIES))
def test_service__bad_input_is_a_400_naming_the_problem(
    served: Served, test_rows: tuple[list, list], case: str
) -> None:
    response = served.client.post(f"{served.url}/predict", json=BAD_BODIES[case](test_rows[0][0]))
    assert response.status_code == 400, response.text
    assert response.json()["detail"][0]["loc"]
    spec = served.client.get(f"{served.url}/docs.json").json()
    declared = spec["paths"]["/predict"]["post"]["responses"]["400"]["content"]["application/json"]
    schema = {**declared["schema"], "components": spec["components"]}
    jsonschema.validate(response.json(), schema)  # the 400 is the one the OpenAPI describes


def test_service__integers_sent_as_json_floats_are_integers(
    served: Served, test_rows: tuple[list, list]
) -> None:
    row = dict(test_rows[0][0], tenure_months=float(test_rows[0][0]["tenure_months"]))
    assert served.predict([row]).status_code == 200


def test_service__wrong_method_or_media_type_is_refused_without_a_500(served: Served) -> None:
    assert served.client.post(f"{served.url}/livez").status_code == 405
    assert served.client.request("TRACE", f"{served.url}/metadata").status_code == 405
    form = served.client.post(
        f"{served.url}/predict", content=b"{}", headers={"content-type": "multipart/form-data"}
    )
    assert (form.status_code, form.json()["error"]) == (415, "send Content-Type: application/json")


def test_service__malformed_json_is_a_400(served: Served) -> None:
    response = served.client.post(
        f"{served.url}/predict", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400


def test_service__oversize_payload_is_a_413_with_the_limit(
    served: Served, test_rows: tuple[list, list]
) -> None:
    rows = (test_rows[0] * (MAX_ROWS // len(test_rows[0]) + 2))[: MAX_ROWS + 1]
    response = served.predict(rows)
    assert response.status_code == 413
    assert str(MAX_ROWS) in response.text


def test_service__a_body_over_the_limit_is_refused_before_it_is_read(served: Served) -> None:
    """413 from the announced length alone (nothing is sent), 411 for a chunked body; both say why."""
    port = httpx.URL(served.url).port or 0
    sent = BEARER | {"Content-Type": "application/json"}
    status, body = headers_only(port, "/predict", sent | {"Content-Length": str(int(MAX_BODY_MB * 1e6) + 1)})
    assert status == 413
    assert "serving.max_body_mb" in json.loads(body)["error"]
    status, body = headers_only(port, "/predict", sent | {"Transfer-Encoding": "chunked"})  # no chunk follows
    assert status == 411
    assert "Content-Length" in json.loads(body)["error"]
    assert served.client.get(f"{served.url}/readyz").status_code == 200  # the worker was never busy


@pytest.mark.parametrize(
    "headers",
    [{}, {CLIENT_HEADER: "operator"}, {"Authorization": "Bearer guessed", CLIENT_HEADER: "operator"}],
    ids=["no-key", "forged-client", "wrong-key"],
)
def test_service__a_color_answers_its_router_s_key_only(
    served: Served, test_rows: tuple[list, list], headers: dict[str, str]
) -> None:
    """A local caller on the color's own port, without the router's key: 401, nothing scored or filed."""
    for method, path, body in (("POST", "/predict", {"rows": test_rows[0][:1]}), ("GET", "/metadata", None)):
        answer = httpx.request(method, f"{served.url}{path}", json=body, headers=headers, timeout=30)
        assert answer.status_code == 401, answer.text
        assert "router" in answer.json()["error"]
    assert httpx.get(f"{served.url}/readyz", headers=headers, timeout=30).status_code == 200  # health is open


def test_service__a_400_is_one_warning_line_in_the_log(served: Served, test_rows: tuple[list, list]) -> None:
    row = dict(test_rows[0][0], tenure_months="twelve")
    assert served.client.post(f"{served.url}/predict", json={"rows": [row]}).status_code == 400
    time.sleep(0.5)  # the worker's log line reaches the file
    lines = served.log.read_text(errors="replace").splitlines()
    refused = [line for line in lines if "answered 400" in line and "tenure_months" in line]
    assert refused, lines[-20:]
    assert all("WARNING" in line for line in refused)
    assert not [line for line in lines if "Traceback" in line or "ValidationError" in line]


def test_service__health_endpoints(served: Served) -> None:
    assert served.client.get(f"{served.url}/livez").status_code == 200
    assert served.client.get(f"{served.url}/readyz").status_code == 200


def test_service__metadata_names_the_model_lineage(served: Served) -> None:
    client = registry.connect(served.cfg.mlflow)
    champion = registry.version_by_alias(client, served.cfg.mlflow.model_name, registry.CHAMPION)
    assert champion is not None
    lineage = registry.lineage(client, served.cfg.mlflow.model_name, str(champion.version))
    metadata = served.client.get(f"{served.url}/metadata").json()
    assert metadata["model_version"] == str(champion.version)
    assert metadata["run_id"] == lineage.run_id
    assert metadata["data_digest"] == lineage.data_digest
    assert metadata["git_commit"] == lineage.git_commit


def metric(text: str, name: str, **labels: str) -> float:
    """Sum of a Prometheus sample over series whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        series, _, value = line.rpartition(" ")
        if series.partition("{")[0] == name and all(
            f'{key}="{val}"' in series for key, val in labels.items()
        ):
            total += float(value)
    return total


def test_service__metrics_count_requests_errors_and_classes(
    served: Served, test_rows: tuple[list, list]
) -> None:
    served.predict(test_rows[0][:3])
    served.client.post(f"{served.url}/predict", json={"rows": []})
    text = served.client.get(f"{served.url}/metrics").text
    assert metric(text, "bentoml_service_request_total", endpoint="/predict", http_response_code="200") >= 1
    assert metric(text, "bentoml_service_request_total", endpoint="/predict", http_response_code="400") >= 1
    assert metric(text, "bentoml_service_request_duration_seconds_count", endpoint="/predict") >= 2
    assert metric(text, "predicted_rows_total") == served.rows_answered  # summed over the class label
    assert metric(text, "batch_rows_count") >= 1
    assert metric(text, "profile_write_failures_total") == 0


def test_service__schemathesis_with_every_check_finds_nothing(served: Served) -> None:
    """Status codes, content types, bodies and methods as the published OpenAPI says.

    After the metrics test: the rows schemathesis gets scored are added to the bookkeeping from
    the service's own count, so the profiles test still accounts for every row.
    """
    before = metric(served.client.get(f"{served.url}/metrics").text, "predicted_rows_total")
    result = checks.schemathesis_run(httpx.URL(served.url).port or 0, examples=100, key=KEY)
    assert result.passed, result.detail
    scored = metric(served.client.get(f"{served.url}/metrics").text, "predicted_rows_total") - before
    served.rows_answered += int(scored)
    served.by_client[DIRECT] += int(scored)


def test_service__profiles_hold_exactly_the_rows_served(served: Served) -> None:
    """Runs last: stopping the service flushes the partial window."""
    assert served.rows_answered > 0
    bento_server.stop(served.process)
    profiles = sorted(served.profile_dir.glob("*.bin"))
    assert sum(profiling.row_count(profiling.read(path)) for path in profiles) == served.rows_answered
    ids = pd.concat(pd.read_parquet(path) for path in served.profile_dir.glob("*.predictions.parquet"))
    assert len(ids) == served.rows_answered
    probabilities = [column for column in ids.columns if column.startswith("proba__")]  # one per class
    confidence = {"confidence", *probabilities} if served.cfg.task == "classification" else set()
    logged = {served.cfg.data.id_column, "prediction", "client", "model_version", "served_at"}
    assert set(ids.columns) == logged | confidence
    assert ids["model_version"].nunique() == 1  # the version this service loaded, on every row
    if confidence:
        assert len(probabilities) == 2  # the sample's two classes
        assert ids["confidence"].between(0.5, 1.0).all()  # the top class of two: at least half
        assert (ids[probabilities].sum(axis=1) - 1).abs().max() < 1e-6  # every class's probability
        assert (ids[probabilities].max(axis=1) - ids["confidence"]).abs().max() < 1e-6
    filed: Counter[str] = Counter()
    for path in profiles:
        filed[str(profiling.client_of(path.name))] += profiling.row_count(profiling.read(path))
    assert filed == served.by_client
    assert {"web-app", "batch", DIRECT} <= set(filed)
