"""The BentoML service: the registered model behind HTTP, batched and profiled.

Serve
    From a built bento (staging, production, blue/green): ``nox -s package`` then
    ``BENTOML_HOME=$PWD/.bentoml bentoml serve {{ cookiecutter.project_slug }}:latest --host 127.0.0.1 --port 3000``
    (any bento tag works; ``bentoml list`` shows them). The bento carries the model, the
    serving settings frozen at build time and the lineage labels.
    From source, model from the registry alias ``serving.model_alias``: ``nox -s serve``, i.e.
    ``bentoml serve {{ cookiecutter.package_name }}.serving.service:ModelService --port 3000``.

Environment variables (all optional; they override the built-in settings)
    ``SERVING_PROFILE_DIR``      where whylogs profiles go (path or fsspec URI such as s3://b/p);
                                 a relative path is relative to the directory serve starts in
    ``SERVING_PROFILING``        ``false`` turns traffic profiling off
    ``SERVING_BATCHING``         ``false`` predicts each request on its own (benchmark baseline)
    ``SERVING_NOOP_MODEL``       ``true`` answers without calling the model (benchmark ceiling)
    ``SERVING_ACCESS_LOG``       ``true`` logs one line per request (off: /metrics has the counts)
    ``SERVING_TRACING``          ``true`` opens an OpenTelemetry span per request (off by default:
                                 a span costs ~0.8 ms of CPU even with no exporter; configure the
                                 exporter in BentoML's configuration, ``tracing.exporter_type``)
    ``SERVING_MODEL_TAG``        serve this BentoML model (``name:version``) instead of the registry
    ``SERVING_INSTANCE``         echoed by ``/metadata`` as ``instance``: the deploy tooling names each
                                 color it starts, and waits for that name, not any answer on the port
    ``SERVING_CONFIG_OVERRIDES`` Hydra overrides for source serving, e.g. ``serving.model_alias=candidate``
    ``SERVING_KEY_SHA256``       the SHA-256 of the only key this server answers (``Authorization:
                                 Bearer``; health and ``/metrics`` excepted): its router's, which
                                 alone names clients (``X-Client``). The deploy tooling sets it;
                                 without it the server answers anyone (see ``guard.py``)
    ``BENTOML_HOME``             the BentoML store; the nox sessions use ``.bentoml/`` in the project
    ``SERVING_METRICS_DIR``      this server's own Prometheus folder, which it empties as it starts
                                 (default ``$BENTOML_HOME/prometheus_multiproc_dir``, shared by every
                                 server of that store: starting one wiped the others' ``/metrics``);
                                 the deploy tooling gives each color of each environment its own

Endpoints
    ``POST /predict``  body ``{"rows": [{"<column>": value, ...}, ...]}``: the feature columns with
        the data's names (every feature present, ``null`` allowed), optionally the id column
        (``data.id_column``, echoed back as ``id``); other keys are ignored. Answers
        ``{"model_version": "3", "predictions": [{"id": "C1", "prediction": "yes",
        "probabilities": {"no": 0.2, "yes": 0.8}}]}`` (``probabilities`` is null for regression).
        400: wrong type (strict: ``true`` or ``"12"`` is not a number), missing field, empty
        ``rows``, a number outside the contract's ``allowed_min``/``allowed_max``, text over
        ``serving.max_text_chars``; 413: more than ``serving.max_rows_per_request`` rows, or a body
        over ``serving.max_body_mb`` (judged from ``Content-Length`` before it is read); 411: a
        chunked body; 415: not ``application/json``; 503: queue beyond the latency budget (retry).
        ``GET /docs.json`` (OpenAPI) declares every one of these answers.
    ``GET /metadata``  ``{"model_name", "model_version", "run_id", "data_digest", "git_commit",
        "bento", "instance", "task", "features", "batching", "profiling"}`` (``bento`` is
        ``name:version`` when serving a built bento, empty from source; ``instance`` is
        ``SERVING_INSTANCE``)
    ``GET /livez``, ``GET /readyz``  health (BentoML built-ins); ``GET /metrics`` Prometheus:
        BentoML's request counts and latencies plus ``predicted_rows_total{predicted_class}``,
        ``batch_rows``, ``profile_rows_written_total``, ``profile_write_failures_total``,
        ``rejected_requests_total{reason}``.

Profiles
    One whylogs profile per ``serving.profile_window_s``, process and client,
    ``<profile dir>/<UTC start>-<host>-<pid>-<seq>.model-<version>.client-<client>.bin`` (features +
    ``prediction``); the client is the router's ``X-Client`` (``direct`` without one). Beside them
    ``.predictions.parquet`` with id, prediction, client, ``model_version`` and ``served_at`` (a
    classifier's also ``confidence`` and ``proba__<class>`` per class); SIGTERM flushes the last window.
"""

import asyncio
import gc
import os
import shlex
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from http import HTTPStatus
from typing import Any

import bentoml
from bentoml._internal.configuration.containers import BentoMLContainer
from bentoml.exceptions import BentoMLException
from pydantic import BaseModel

from ..config import MlflowConfig, compose, resolve
from ..headers import CLIENT_HEADER
from . import refusals, schema
from .batching import MicroBatcher, OverloadedError
from .body import BodyLimit
from .guard import RouterOnly
from .metadata import MetadataEndpoint
from .openapi import OpenApiAmendments
from .settings import Settings, apply_environment, from_config
from .traffic import TrafficProfiler, client_name

Sent = tuple[str, BaseModel]
"""One row as the batcher carries it: the client that sent it, and the row."""

LINEAGE_KEYS = ("model_name", "model_version", "run_id", "data_digest", "git_commit")
TRUE = {"1", "true", "yes", "on"}


class PayloadTooLarge(BentoMLException):
    """More rows than ``serving.max_rows_per_request``: split the request."""

    error_code = HTTPStatus.REQUEST_ENTITY_TOO_LARGE


class ServiceOverloaded(BentoMLException):
    """The batch queue is beyond the latency budget: retry after a moment."""

    error_code = HTTPStatus.SERVICE_UNAVAILABLE


def load_settings() -> Settings:
    """Bento arguments when serving a built bento, else the project config; then env overrides."""
    arguments = vars(bentoml.use_arguments())
    if arguments.get("model_tag"):
        return apply_environment(Settings(**arguments), os.environ)
    cfg = compose(shlex.split(os.environ.get("SERVING_CONFIG_OVERRIDES", "")))
    profile_dir = cfg.serving.profile_dir  # from source: relative to the project, not to PWD
    resolved = profile_dir if "://" in profile_dir else str(resolve(profile_dir))
    return apply_environment(replace(from_config(cfg), profile_dir=resolved), os.environ)


@dataclass(frozen=True)
class ModelSource:
    """Where the model files are and what produced them."""

    directory: str
    lineage: dict[str, str]


def locate_model(settings: Settings) -> ModelSource:
    """The MLflow model directory: inside a BentoML model, or downloaded from the registry alias."""
    if settings.model_tag:
        stored = bentoml.models.get(settings.model_tag)
        lineage = {key: str(stored.info.labels.get(key, "")) for key in LINEAGE_KEYS}
        return ModelSource(stored.path_of(schema.BENTO_MLFLOW_FOLDER), lineage)
    return _from_registry(settings)


def _from_registry(settings: Settings) -> ModelSource:
    import mlflow  # noqa: PLC0415 - serving from source only; a bento's supervisor never needs MLflow

    from .. import registry  # noqa: PLC0415

    client = registry.connect(
        MlflowConfig(tracking_uri=settings.tracking_uri, model_name=settings.model_name)
    )
    version = registry.version_by_alias(client, settings.model_name, settings.model_alias)
    if version is None:
        raise BentoMLException(
            f"no model {settings.model_name!r} has the alias {settings.model_alias!r}; "
            "run `nox -s train` (and promote it), or set SERVING_MODEL_TAG"
        )
    lineage = asdict(registry.lineage(client, settings.model_name, str(version.version)))
    lineage["model_version"] = lineage.pop("version")
    directory = mlflow.artifacts.download_artifacts(f"models:/{settings.model_name}/{version.version}")
    return ModelSource(directory, {key: str(lineage.get(key, "")) for key in LINEAGE_KEYS})


def own_metrics_folder(environ: Mapping[str, str]) -> None:
    """Point BentoML at ``SERVING_METRICS_DIR`` when it is set.

    BentoML's server takes its metrics folder from its container
    (``BentoMLContainer.prometheus_multiproc_dir``, under ``BENTOML_HOME``), empties it, then hands
    it to its workers as ``PROMETHEUS_MULTIPROC_DIR``. ``bentoml serve`` imports this module before
    that, so setting the container here gives the server, and its workers, this folder alone. A
    variable of its own, not ``PROMETHEUS_MULTIPROC_DIR``: set in the server process, that one
    put this module's metrics there in multiprocess mode before the folder existed.
    """
    if folder := environ.get("SERVING_METRICS_DIR"):
        BentoMLContainer.prometheus_multiproc_dir.set(folder)


own_metrics_folder(os.environ)
SETTINGS = load_settings()
SOURCE = locate_model(SETTINGS)
COLUMNS = schema.read_columns(SOURCE.directory)
ROW = schema.row_model(COLUMNS, SETTINGS.id_column, SETTINGS.bounds, SETTINGS.max_text_chars)
REQUEST = schema.request_model(ROW, SETTINGS.max_rows_per_request)
METADATA = {
    **SOURCE.lineage,
    "task": SETTINGS.task,
    "features": [column.name for column in COLUMNS],
    "batching": SETTINGS.batching,
    "profiling": SETTINGS.profiling,
}

PREDICTED_ROWS = bentoml.metrics.Counter(
    name="predicted_rows_total",
    documentation="Rows predicted, by predicted class",
    labelnames=["predicted_class"],
)
BATCH_ROWS = bentoml.metrics.Histogram(
    name="batch_rows",
    documentation="Rows per model call",
    buckets=[1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024],
)
PROFILE_ROWS = bentoml.metrics.Counter(
    name="profile_rows_written_total", documentation="Rows written to profiles"
)
PROFILE_FAILURES = bentoml.metrics.Counter(
    name="profile_write_failures_total",
    documentation="Profile writes that failed (rows kept for the next window)",
)
REJECTED = bentoml.metrics.Counter(
    name="rejected_requests_total", documentation="Requests refused before the model", labelnames=["reason"]
)


# Access logs cost a formatted line per request and spans ~0.8 ms each; /metrics carries counts
# and latencies instead. Excluding every URL is how BentoML's OpenTelemetry middleware is skipped.
@bentoml.service(
    name=SETTINGS.service_name,
    workers=SETTINGS.workers,
    traffic={"timeout": 30},
    logging={"access": {"enabled": SETTINGS.access_log}},
    tracing={} if SETTINGS.tracing else {"excluded_urls": [".*"]},
)
class ModelService:
    """One worker: the model, its micro-batcher and its traffic profiler."""

    def __init__(self) -> None:
        # The worker's imports: BentoML's supervisor process imports this module too, to read the
        # service's configuration, and starts faster without scikit-learn, MLflow and whylogs.
        import mlflow.sklearn  # noqa: PLC0415

        from . import scoring  # noqa: PLC0415

        refusals.install()  # a 4xx is one WARNING line, not an ERROR traceback
        self.scorer = scoring.Scorer(
            mlflow.sklearn.load_model(SOURCE.directory),
            COLUMNS,
            SETTINGS.task,
            SETTINGS.id_column,
            SETTINGS.noop_model,
            examples=schema.input_example(SOURCE.directory),
        )
        self.batcher: MicroBatcher[Sent, dict[str, Any]] = MicroBatcher(
            self._predict_rows, SETTINGS.max_batch_size, SETTINGS.max_queue_ms / 1000
        )
        self.profiler: TrafficProfiler | None = None
        if SETTINGS.profiling:
            self.profiler = TrafficProfiler(
                SETTINGS.profile_dir,
                SETTINGS.profile_window_s,
                SETTINGS.id_column,
                model_version=SOURCE.lineage["model_version"],
                classes=self.scorer.classes or (),
                on_write=PROFILE_ROWS.inc,
                on_failure=lambda _rows: PROFILE_FAILURES.inc(),
                frame_of=self.scorer.frame,
            )
            self.profiler.start()
        # What is loaded by now lives as long as the process. Frozen out of the collector's sight,
        # it is no longer walked by every full collection (~250k objects, ~110 ms each): at 8
        # clients p99 fell from ~200 to ~17 ms, and 64 clients gained ~29 % (bench-serve).
        gc.collect()
        gc.freeze()

    @bentoml.api(route="/predict", input_spec=REQUEST, output_spec=schema.PredictResponse)  # type: ignore[untyped-decorator]
    async def predict(self, rows: list[BaseModel], ctx: bentoml.Context) -> schema.PredictResponse:
        """Validate size, then batch (or not) and answer one prediction per row, filed under its client."""
        if len(rows) > SETTINGS.max_rows_per_request:
            REJECTED.labels(reason="too_large").inc()
            raise PayloadTooLarge(
                f"{len(rows)} rows in one request; the limit is {SETTINGS.max_rows_per_request} "
                "(serving.max_rows_per_request): split the request"
            )
        client = client_name(ctx.request.headers.get(CLIENT_HEADER))
        sent = [(client, row) for row in rows]
        try:
            answers = (
                await self.batcher.submit(sent)
                if SETTINGS.batching
                else await _in_thread(self._predict_rows, sent)
            )
        except OverloadedError as error:
            REJECTED.labels(reason="overloaded").inc()
            raise ServiceOverloaded(str(error)) from None
        return schema.PredictResponse.model_validate(
            {"model_version": SOURCE.lineage["model_version"], "predictions": answers}
        )

    def _predict_rows(self, sent: list[Sent]) -> list[dict[str, Any]]:
        """Runs in a worker thread: frame, model, metrics, and the rows handed to the profiler."""
        clients = [client for client, _ in sent]
        rows = [row for _, row in sent]
        frame = self.scorer.frame(rows)
        labels, probabilities = self.scorer.score(frame)
        BATCH_ROWS.observe(len(frame))
        if self.scorer.classes is None:
            PREDICTED_ROWS.labels(predicted_class="").inc(len(frame))
        else:
            for label, count in Counter(labels).items():
                PREDICTED_ROWS.labels(predicted_class=str(label)).inc(count)
        if self.profiler is not None:
            self.profiler.record(rows, labels, clients, probabilities)
        return self.scorer.answers(frame, labels, probabilities)

    @bentoml.on_shutdown  # type: ignore[untyped-decorator]
    def flush_profiles(self) -> None:
        """Write the last partial window before the process exits: no served row is lost."""
        if self.profiler is not None:
            self.profiler.stop()


async def _in_thread(
    function: Callable[[list[Sent]], list[dict[str, Any]]], sent: list[Sent]
) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = await asyncio.to_thread(function, sent)
    return result


# First added, outermost: a request the guard refuses reaches nothing else, /metadata included.
ModelService.add_asgi_middleware(RouterOnly, key_sha256=os.environ.get("SERVING_KEY_SHA256"))  # type: ignore[attr-defined]
ModelService.add_asgi_middleware(MetadataEndpoint, payload=METADATA)  # type: ignore[attr-defined]
ModelService.add_asgi_middleware(  # type: ignore[attr-defined]
    BodyLimit,
    max_bytes=int(SETTINGS.max_body_mb * 1e6),
    max_rows=SETTINGS.max_rows_per_request,
    on_too_many_rows=lambda: REJECTED.labels(reason="too_large").inc(),
)
ModelService.add_asgi_middleware(OpenApiAmendments)  # type: ignore[attr-defined]
