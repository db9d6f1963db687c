"""Serving benchmark: the service against its baselines, side by side, with a real load tool.

Variants (all started on loopback, one worker each, then loaded in turn at 1, 8 and 64
concurrent connections by ``wrk``, in interleaved rounds; each cell keeps its best round):

- ``service``: this service as deployed (micro-batching and traffic profiling on);
- ``profiling off``: the same, without profiling (what profiling costs);
- ``unbatched``: the same, one model call per request (what batching buys);
- ``fastapi``: a plain FastAPI/uvicorn server with the same model, schema and scoring code;
- ``no-op model``: the service with the model call replaced by a constant (the stack's ceiling);
- ``fastapi no-op``: the FastAPI server with the same constant (what the stacks cost apart from
  the model: the 1-client gap between the two no-op rows is BentoML's own per-request work).

Requests are single rows taken from the sample data, rotating over 100 bodies. ``wrk`` (Debian
package ``wrk``) is light on CPU, but it shares the machine with the server: on a small or
shared machine numbers move between runs, so the report records the load average. It also
records the server's own CPU time per request (all its processes, from the OS), which shows
where throughput comes from: a batched request costs a fraction of an unbatched one.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import mlflow
import psutil
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

from {{ cookiecutter.package_name }} import registry, reports
from {{ cookiecutter.package_name }}.config import PROJECT_ROOT, Config, compose, resolve, use_project_store
from {{ cookiecutter.package_name }}.data import DataError, feature_columns, load_table
from {{ cookiecutter.package_name }}.deployment import load, loopback
from {{ cookiecutter.package_name }}.errors import PipelineError
from {{ cookiecutter.package_name }}.serving import packaging, schema, scoring
from {{ cookiecutter.package_name }}.serving.traffic import TrafficProfiler

CLIENTS = (1, 8, 64)
STARTUP_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class Variant:
    """One server to measure: the service with some switches, or the plain FastAPI server."""

    name: str
    env: dict[str, str]
    fastapi: bool = False


VARIANTS = (
    Variant("service (batching + profiling)", {}),
    Variant("profiling off", {"SERVING_PROFILING": "false"}),
    Variant("unbatched", {"SERVING_BATCHING": "false"}),
    Variant("fastapi (plain, same model)", {}, fastapi=True),
    Variant("no-op model (ceiling)", {"SERVING_NOOP_MODEL": "true", "SERVING_PROFILING": "false"}),
    Variant("fastapi no-op", {"SERVING_NOOP_MODEL": "true"}, fastapi=True),
)


@dataclass(frozen=True)
class Measurement:
    """One wrk run."""

    variant: str
    clients: int
    requests_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    errors: int
    cpu_ms: float  # server CPU time per request, all of its processes


def request_bodies(cfg: Config, count: int = 100) -> list[str]:
    """Single-row request bodies from the sample data (id column included), one JSON line each."""
    frame = load_table(cfg.data.path).head(count)
    keep = [*feature_columns(frame, cfg.data), *([cfg.data.id_column] if cfg.data.id_column else [])]
    records = json.loads(frame[keep].to_json(orient="records"))
    return [json.dumps({"rows": [record]}) for record in records]


def model_dir(cfg: Config, folder: Path) -> Path:
    """Download the model behind ``serving.model_alias`` once, for the FastAPI variant."""
    client = registry.connect(cfg.mlflow)
    version = registry.version_by_alias(client, cfg.mlflow.model_name, cfg.serving.model_alias)
    if version is None:
        raise DataError(f"no model has the alias {cfg.serving.model_alias!r}; run `nox -s train` first")
    uri = f"models:/{cfg.mlflow.model_name}/{version.version}"
    return Path(mlflow.artifacts.download_artifacts(uri, dst_path=str(folder / "model")))


def start_server(
    variant: Variant, cfg: Config, folder: Path, model: Path, port: int
) -> subprocess.Popen[bytes]:
    """Launch the variant on loopback in its own process group."""
    if variant.fastapi:
        arguments = [str(model), str(port), cfg.task, cfg.data.id_column or ""]
        command = [sys.executable, __file__, "fastapi", *arguments]
    else:
        bentoml = str(Path(sys.executable).with_name("bentoml"))
        command = [bentoml, "serve", packaging.SERVICE, "--host", "127.0.0.1", "--port", str(port)]
    overrides = [
        f"mlflow.tracking_uri={cfg.mlflow.tracking_uri}",
        f"mlflow.model_name={cfg.mlflow.model_name}",
        f"serving.model_alias={cfg.serving.model_alias}",
    ]
    env = (
        os.environ
        | variant.env
        | {
            "SERVING_CONFIG_OVERRIDES": shlex.join(overrides),
            "SERVING_PROFILE_DIR": str(folder / "profiles"),  # never the project's production profiles
            "BENTOML_HOME": os.environ.get("BENTOML_HOME", str(PROJECT_ROOT / ".bentoml")),
        }
    )
    log = (folder / f"server-{port}.log").open("wb")
    return subprocess.Popen(
        command, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )


def wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    """Poll the health route until it answers (``/readyz`` for BentoML, ``/healthz`` for FastAPI)."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server for {url} exited with code {process.returncode}")
        for route in ("/readyz", "/healthz"):
            try:
                if httpx.get(url + route, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
        time.sleep(1)
    raise RuntimeError(f"server for {url} not ready after {STARTUP_TIMEOUT_S:.0f}s")


def run_wrk(url: str, bodies: list[str], clients: int, duration_s: float) -> load.LoadResult:
    """One wrk run on one thread (the server needs the other cores), rotating over the bodies."""
    return load.run(f"{url}/predict", bodies, clients=clients, duration_s=duration_s, threads=1)


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) used so far by a server process and every process under it."""
    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for process in tree:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def measure(
    variant: Variant, url: str, bodies: list[str], *, clients: int, duration_s: float, pid: int
) -> Measurement:
    """One wrk run of one variant at one client count, with the server's CPU time per request."""
    before = cpu_seconds(pid)
    raw = run_wrk(url, bodies, clients, duration_s)
    cpu_ms = (cpu_seconds(pid) - before) * 1000 / max(1, raw.requests)
    return Measurement(
        variant.name,
        clients,
        raw.requests_per_s,
        raw.p50_us / 1000,
        raw.p95_us / 1000,
        raw.p99_us / 1000,
        raw.errors,
        cpu_ms,
    )


def best(runs: list[Measurement]) -> Measurement:
    """The run least disturbed by other load (highest req/s, least CPU); errors summed over all."""
    top = max(runs, key=lambda m: m.requests_per_s)
    return replace(top, errors=sum(m.errors for m in runs), cpu_ms=min(m.cpu_ms for m in runs))


def run(
    cfg: Config, duration_s: float, rounds: int, variants: tuple[Variant, ...] = VARIANTS
) -> list[Measurement]:
    """All variants up at once, measured in interleaved rounds; each cell keeps its best round.

    Interleaving makes drifting background load on a shared machine hit every variant alike.
    """
    load.require_wrk()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per readiness poll otherwise
    runs: dict[tuple[str, int], list[Measurement]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as scratch:
        folder = Path(scratch)
        bodies = request_bodies(cfg)
        model = model_dir(cfg, folder)
        ports = {variant.name: loopback.free_port() for variant in variants}
        processes = [start_server(v, cfg, folder, model, ports[v.name]) for v in variants]
        try:
            for variant, process in zip(variants, processes, strict=True):
                wait_ready(f"http://127.0.0.1:{ports[variant.name]}", process)
                run_wrk(f"http://127.0.0.1:{ports[variant.name]}", bodies, 8, 2)  # warm-up
            for round_number in range(rounds):
                for clients in CLIENTS:
                    for variant, process in zip(variants, processes, strict=True):
                        url = f"http://127.0.0.1:{ports[variant.name]}"
                        cell = measure(
                            variant,
                            url,
                            bodies,
                            clients=clients,
                            duration_s=duration_s,
                            pid=process.pid,
                        )
                        runs.setdefault((variant.name, clients), []).append(cell)
                print(f"  round {round_number + 1}/{rounds} measured", flush=True)
        finally:
            for process in processes:
                loopback.stop_process(process.pid, grace_s=60)
    return [best(cell_runs) for cell_runs in runs.values()]


def lookup(results: list[Measurement], variant: Variant, clients: int) -> Measurement:
    """The measurement of one variant at one client count."""
    return next(m for m in results if m.variant == variant.name and m.clients == clients)


def targets(results: list[Measurement]) -> list[tuple[str, str, bool]]:
    """The goals from the serving design, each with the measured value and whether it holds."""
    service, no_profiling, unbatched, fastapi, noop, _ = VARIANTS
    top, one = max(CLIENTS), min(CLIENTS)
    s64, s1 = lookup(results, service, top), lookup(results, service, one)
    checks = [
        (
            "64 clients: >= 3x unbatched req/s",
            s64.requests_per_s / lookup(results, unbatched, top).requests_per_s,
            3.0,
        ),
        (
            "64 clients: >= 1.5x FastAPI req/s",
            s64.requests_per_s / lookup(results, fastapi, top).requests_per_s,
            1.5,
        ),
        (
            "64 clients: >= 50% of no-op ceiling",
            s64.requests_per_s / lookup(results, noop, top).requests_per_s,
            0.5,
        ),
    ]
    rows = [(name, f"{value:.2f}x", value >= bar) for name, value, bar in checks]
    errors = sum(m.errors for m in results if m.variant == service.name)
    rows.append(("service: zero errors", str(errors), errors == 0))
    gap = s1.p50_ms - lookup(results, fastapi, one).p50_ms
    rows.append(("1 client: p50 within 2 ms of FastAPI", f"{gap:+.2f} ms", gap <= 2.0))
    off = lookup(results, no_profiling, top)
    cost = 1 - s64.requests_per_s / off.requests_per_s
    rows.append(("profiling costs <= 5% req/s (64 clients)", f"{cost:.1%}", cost <= 0.05))
    p50_cost = s64.p50_ms / off.p50_ms - 1 if off.p50_ms else 0.0
    rows.append(("profiling costs <= 5% p50 (64 clients)", f"{p50_cost:+.1%}", p50_cost <= 0.05))
    return rows


def render(results: list[Measurement], duration_s: float, rounds: int, load: tuple[float, float]) -> str:
    """The Markdown report: measurements, then the targets."""
    lines = [
        "# Serving benchmark",
        "",
        f"wrk, 1 thread, single-row POST /predict, {duration_s:g} s per run, best of {rounds} interleaved "
        "rounds (errors summed over all), one server worker per variant, "
        f"{os.cpu_count()} CPUs shared by server and load generator (load average {load[0]:.1f} before, "
        f"{load[1]:.1f} after: other processes share the CPU, so treat differences under ~10% as noise).",
        "",
    ]
    header = ["variant", "clients", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors", "server CPU ms/req"]
    measured = [
        (
            m.variant,
            m.clients,
            round(m.requests_per_s),
            *_ms(m.p50_ms, m.p95_ms, m.p99_ms),
            m.errors,
            _ms(m.cpu_ms)[0],
        )
        for m in results
    ]
    lines += [reports.table(header, measured), ""]
    met = [(name, value, "yes" if ok else "NO") for name, value, ok in targets(results)]
    lines.append(reports.table(["target", "measured", "met"], met))
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class ProfilerCost:
    """CPU the traffic profiler spends, measured in-process: what profiling costs, without the noise."""

    rows_per_batch: int
    record_us_per_batch: float  # on the request path, once per model call
    flush_us_per_row: float  # in the profiler's own thread, once per window


def profiler_cost(cfg: Config, sizes: tuple[int, ...], batches: int = 3000) -> list[ProfilerCost]:
    """Record sample batches the way the service does, then flush; CPU time per request and row.

    Wall-clock throughput with profiling on and off differs by more than profiling costs on a
    shared machine; process CPU time of the profiler's own work does not.
    """
    frame = load_table(cfg.data.path)
    keep = [*feature_columns(frame, cfg.data), *([cfg.data.id_column] if cfg.data.id_column else [])]
    costs = []
    for size in sizes:
        chunks = [
            frame[keep].iloc[(i * size) % len(frame) :][:size].reset_index(drop=True) for i in range(batches)
        ]
        with tempfile.TemporaryDirectory(prefix="bench-profiler-") as scratch:
            profiler = TrafficProfiler(scratch, id_column=cfg.data.id_column)
            started = time.process_time()
            for chunk in chunks:
                profiler.record(chunk, ["x"] * len(chunk))
            recorded = time.process_time()
            profiler.flush()
            flushed = time.process_time()
        rows = sum(len(chunk) for chunk in chunks)
        costs.append(
            ProfilerCost(size, (recorded - started) * 1e6 / batches, (flushed - recorded) * 1e6 / rows)
        )
    return costs


def _ms(*values: float) -> tuple[float, ...]:
    """Milliseconds to two decimals, as the tables show them."""
    return tuple(round(value, 2) for value in values)


def render_profiler(costs: list[ProfilerCost], results: list[Measurement]) -> str:
    """The profiler's CPU next to a request's server CPU at as many clients as rows per batch.

    With single-row requests a batch at N clients holds about N rows: 1 row at 1 client, up to 64
    at 64, so each batch size is set against the service's measurement at that concurrency.
    """
    lines = [
        "",
        "## Traffic profiler CPU (in process, single thread)",
        "",
    ]
    rows = []
    for cost in costs:
        service = lookup(results, VARIANTS[0], cost.rows_per_batch)
        per_request = cost.record_us_per_batch / cost.rows_per_batch + cost.flush_us_per_row
        share = per_request / (service.cpu_ms * 1000) if service.cpu_ms else 0.0
        record, flush = round(cost.record_us_per_batch, 1), round(cost.flush_us_per_row, 1)
        rows.append((cost.rows_per_batch, record, flush, f"{share:.1%}"))
    header = [
        "rows per batch",
        "record, us per batch",
        "flush, us per row",
        "share of a request's server CPU",
    ]
    lines.append(reports.table(header, rows))
    return "\n".join(lines) + "\n"


def bench(cfg: Config, duration_s: float = 5.0, rounds: int = 3) -> Path:
    """Run every variant and write ``reports/bench-serve.md``; prints the table too."""
    before = os.getloadavg()[0]
    results = sorted(
        run(cfg, duration_s, rounds), key=lambda m: ([v.name for v in VARIANTS].index(m.variant), m.clients)
    )
    report = render(results, duration_s, rounds, (before, os.getloadavg()[0]))
    report += render_profiler(profiler_cost(cfg, sizes=(min(CLIENTS), max(CLIENTS))), results)
    target = resolve(cfg.serving.report_dir) / "bench-serve.md"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(report)
    print(report)
    return target


def fastapi_app(model_path: Path, task: str, id_column: str | None, noop: bool) -> FastAPI:
    """The plain comparison server: same schema, same scoring, no batching, no profiling."""
    columns = schema.read_columns(model_path)
    request_model = schema.request_model(schema.row_model(columns, id_column), 10_000)
    scorer = scoring.Scorer(mlflow.sklearn.load_model(str(model_path)), columns, task, id_column, noop)
    app = FastAPI()

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    def predict(body: BaseModel) -> dict[str, Any]:
        frame = scorer.frame(body.rows)  # type: ignore[attr-defined]
        labels, probabilities = scorer.score(frame)
        return {"model_version": "", "predictions": scorer.answers(frame, labels, probabilities)}

    # The request model is built at runtime, so the annotation is set here, not in the source.
    predict.__annotations__ = {"body": request_model, "return": dict[str, Any]}
    app.add_api_route("/predict", predict, methods=["POST"])
    return app


def main(argv: list[str]) -> int:
    """``nox -s bench-serve -- key=value...``; ``fastapi <model> <port> <task> <id>`` serves the baseline."""
    if argv[:1] == ["fastapi"]:
        path, port, task, id_column = argv[1:5]
        noop = os.environ.get("SERVING_NOOP_MODEL", "").lower() == "true"
        server_app = fastapi_app(Path(path), task, id_column or None, noop)
        uvicorn.run(server_app, host="127.0.0.1", port=int(port), log_level="warning", access_log=False)
        return 0
    use_project_store()
    try:
        print(f"report: {bench(compose(argv))}")
    except PipelineError as error:
        print(f"bench-serve: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
