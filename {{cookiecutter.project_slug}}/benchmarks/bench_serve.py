"""Serving benchmark: the service against the peers a user would pick, side by side, with wrk.

Variants (all started on loopback, then loaded in turn at 1, 8 and 64 concurrent connections
by ``wrk``, in interleaved rounds; each cell keeps its best round):

- ``service``: this service as deployed (micro-batching and traffic profiling on, one worker);
- ``profiling off``: the same, without profiling (what profiling costs);
- ``unbatched``: the same, one model call per request (what batching buys);
- ``no-op model``: the service with the model call replaced by a constant (the stack's ceiling);
- ``fastapi``: plain FastAPI under uvicorn with one worker per core, one model call per request
  (``peer_fastapi.py``, which also says why it sets ``TCP_NODELAY``), and its no-op twin with
  one worker (the 1-client gap between the two no-op rows is BentoML's own per-request work);
- ``bentoml batchable``: BentoML's own adaptive batching (``batchable=True``) around the same
  scoring (``peer_bentoml.py``);
- ``mlflow models serve``: MLflow's scoring server for the same model, as it starts by default
  (one worker: with ``-w 2`` its uvicorn binds the socket without ``TCP_NODELAY`` and a
  keep-alive answer takes ~50 ms); its body is ``dataframe_records`` at ``/invocations`` and it
  answers labels only, less work per row than ours.

Every variant but MLflow's scores through ``serving.scoring.Scorer``, so the table compares
serving stacks, not prediction code: the peers share its direct model call too (a hand-written
app calling the pipeline's ``predict_proba`` pays about 7 ms more per call, see
``serving/direct.py``). Requests are single rows taken from the sample data,
rotating over 100 bodies. ``wrk`` (Debian package ``wrk``) is light on CPU, but it shares the
machine with the servers: on a small or shared machine numbers move between runs, so the report
records the load average. It also records each server's own CPU time per request (all its
processes, from the OS), which shows where throughput comes from: a batched request costs a
fraction of an unbatched one.
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
from functools import partial
from pathlib import Path

import httpx
import mlflow
import pandas as pd
import psutil

from {{ cookiecutter.package_name }} import registry
from {{ cookiecutter.package_name }}.config import PROJECT_ROOT, Config, compose, resolve, use_project_store
from {{ cookiecutter.package_name }}.data import DataError, feature_columns, load_table
from {{ cookiecutter.package_name }}.deployment import load, loopback
from {{ cookiecutter.package_name }}.errors import PipelineError
from {{ cookiecutter.package_name }}.reports import tables
from {{ cookiecutter.package_name }}.serving import packaging, schema
from {{ cookiecutter.package_name }}.serving.traffic import TrafficProfiler

CLIENTS = (1, 8, 64)
STARTUP_TIMEOUT_S = 300.0


BENCHMARKS = Path(__file__).parent
WORKERS = os.cpu_count() or 1  # the peers run one worker per core, as their users would


@dataclass(frozen=True)
class Variant:
    """One server to measure: the service with some switches, or a peer (``server``) with its own."""

    name: str
    env: dict[str, str]
    server: str = "service"  # service | fastapi | bentoml-batchable | mlflow
    workers: int = 1

    @property
    def route(self) -> str:
        """Where the variant takes predictions: MLflow's scoring server has its own path."""
        return "/invocations" if self.server == "mlflow" else "/predict"

    @property
    def batches(self) -> bool:
        """Whether concurrent requests share model calls (the 64-client comparison's two camps)."""
        if self.server == "service":
            return self.env.get("SERVING_BATCHING") != "false"
        return self.server == "bentoml-batchable"


SERVICE = Variant("service (batching + profiling)", {})
PROFILING_OFF = Variant("profiling off", {"SERVING_PROFILING": "false"})
UNBATCHED = Variant("unbatched", {"SERVING_BATCHING": "false"})
NOOP = Variant("no-op model (ceiling)", {"SERVING_NOOP_MODEL": "true", "SERVING_PROFILING": "false"})
FASTAPI = Variant(f"fastapi, {WORKERS} workers", {}, server="fastapi", workers=WORKERS)
FASTAPI_NOOP = Variant("fastapi no-op, 1 worker", {"SERVING_NOOP_MODEL": "true"}, server="fastapi")
BENTOML_BATCHABLE = Variant("bentoml batchable=True", {}, server="bentoml-batchable")
MLFLOW = Variant("mlflow models serve", {}, server="mlflow")
VARIANTS = (SERVICE, PROFILING_OFF, UNBATCHED, NOOP, FASTAPI, FASTAPI_NOOP, BENTOML_BATCHABLE, MLFLOW)
PEERS = (FASTAPI, BENTOML_BATCHABLE, MLFLOW)


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


def request_bodies(cfg: Config, variant: Variant, count: int = 100) -> list[str]:
    """Single-row request bodies from the sample data, one JSON line each, in the variant's shape.

    Ours and the FastAPI/BentoML peers take ``{"rows": [row]}`` with the id column; MLflow's
    scoring server takes ``{"dataframe_records": [row]}`` and only the model's features.
    """
    frame = load_table(cfg.data.path).head(count)
    features = feature_columns(frame, cfg.data)
    if variant.server == "mlflow":
        return [
            json.dumps({"dataframe_records": [r]})
            for r in json.loads(frame[features].to_json(orient="records"))
        ]
    keep = [*features, *([cfg.data.id_column] if cfg.data.id_column else [])]
    return [json.dumps({"rows": [r]}) for r in json.loads(frame[keep].to_json(orient="records"))]


def model_dir(cfg: Config, folder: Path) -> Path:
    """Download the model behind ``serving.model_alias`` once, for the peers."""
    client = registry.connect(cfg.mlflow)
    version = registry.version_by_alias(client, cfg.mlflow.model_name, cfg.serving.model_alias)
    if version is None:
        raise DataError(f"no model has the alias {cfg.serving.model_alias!r}; run `nox -s train` first")
    uri = f"models:/{cfg.mlflow.model_name}/{version.version}"
    return Path(mlflow.artifacts.download_artifacts(uri, dst_path=str(folder / "model")))


def server_command(variant: Variant, model: Path, port: int) -> list[str]:
    """The command line that serves one variant on loopback."""
    tool = Path(sys.executable).with_name
    host = ["--host", "127.0.0.1", "--port", str(port)]
    if variant.server == "fastapi":
        return [sys.executable, str(BENCHMARKS / "peer_fastapi.py"), str(port), str(variant.workers)]
    if variant.server == "bentoml-batchable":
        return [
            str(tool("bentoml")),
            "serve",
            "peer_bentoml:BatchablePeer",
            "--working-dir",
            str(BENCHMARKS),
            *host,
        ]
    if variant.server == "mlflow":
        serve = ["models", "serve", "-m", str(model), "--env-manager", "local", "-w", str(variant.workers)]
        return [str(tool("mlflow")), *serve, "-h", "127.0.0.1", "-p", str(port)]  # execs uvicorn from PATH
    return [str(tool("bentoml")), "serve", packaging.SERVICE, *host]


def start_server(
    variant: Variant, cfg: Config, folder: Path, model: Path, port: int
) -> subprocess.Popen[bytes]:
    """Launch the variant on loopback in its own process group."""
    command = server_command(variant, model, port)
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
            "PEER_MODEL_DIR": str(model),
            "PEER_TASK": cfg.task,
            "PEER_ID_COLUMN": cfg.data.id_column or "",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
    )
    log = (folder / f"server-{port}.log").open("wb")
    return subprocess.Popen(
        command, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )


def wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    """Poll the health routes until one answers (BentoML /readyz, FastAPI /healthz, MLflow /ping)."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server for {url} exited with code {process.returncode}")
        for route in ("/readyz", "/healthz", "/ping"):
            try:
                if httpx.get(url + route, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
        time.sleep(1)
    raise RuntimeError(f"server for {url} not ready after {STARTUP_TIMEOUT_S:.0f}s")


def run_wrk(endpoint: str, bodies: list[str], clients: int, duration_s: float) -> load.LoadResult:
    """One wrk run on one thread (the servers need the other cores), rotating over the bodies."""
    return load.run(endpoint, bodies, clients=clients, duration_s=duration_s, threads=1)


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
    variant: Variant, endpoint: str, bodies: list[str], *, clients: int, duration_s: float, pid: int
) -> Measurement:
    """One wrk run of one variant at one client count, with the server's CPU time per request."""
    before = cpu_seconds(pid)
    raw = run_wrk(endpoint, bodies, clients, duration_s)
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
        bodies = {variant.name: request_bodies(cfg, variant) for variant in variants}
        model = model_dir(cfg, folder)
        ports = {variant.name: loopback.free_port() for variant in variants}

        def url(variant: Variant) -> str:
            return f"http://127.0.0.1:{ports[variant.name]}"

        processes = [start_server(v, cfg, folder, model, ports[v.name]) for v in variants]
        try:
            for variant, process in zip(variants, processes, strict=True):
                wait_ready(url(variant), process)
                run_wrk(url(variant) + variant.route, bodies[variant.name], 8, 2)  # warm-up
            for round_number in range(rounds):
                for clients in CLIENTS:
                    for variant, process in zip(variants, processes, strict=True):
                        cell = measure(
                            variant,
                            url(variant) + variant.route,
                            bodies[variant.name],
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
    top, one = max(CLIENTS), min(CLIENTS)
    s64, s1 = lookup(results, SERVICE, top), lookup(results, SERVICE, one)
    rows = []
    best_peer = min((lookup(results, peer, one) for peer in PEERS), key=lambda m: m.p50_ms)
    gap = s1.p50_ms - best_peer.p50_ms
    rows.append((f"1 client: p50 <= best peer's + 1 ms ({best_peer.variant})", f"{gap:+.2f} ms", gap <= 1.0))
    ceiling = s64.requests_per_s / lookup(results, NOOP, top).requests_per_s
    rows.append(("64 clients: >= 90% of the no-op ceiling", f"{ceiling:.0%}", ceiling >= 0.9))
    for peer in (UNBATCHED, *PEERS):
        ratio = s64.requests_per_s / lookup(results, peer, top).requests_per_s
        bar = 1.0 if peer.batches else 5.0
        rows.append((f"64 clients: >= {bar:g}x {peer.name}", f"{ratio:.2f}x", ratio >= bar))
    errors = sum(m.errors for m in results if m.variant == SERVICE.name)
    rows.append(("service: zero errors", str(errors), errors == 0))
    off = lookup(results, PROFILING_OFF, top)
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
        "rounds (errors summed over all), one server worker per variant unless its name says more, "
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
    lines += [tables.table(header, measured), ""]
    met = [(name, value, "yes" if ok else "NO") for name, value, ok in targets(results)]
    lines.append(tables.table(["target", "measured", "met"], met))
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class ProfilerCost:
    """CPU the traffic profiler spends, measured in-process: what profiling costs, without the noise."""

    rows_per_batch: int
    record_us_per_batch: float  # on the request path, once per model call
    flush_us_per_row: float  # in the profiler's own thread, once per window


def profiler_cost(cfg: Config, sizes: tuple[int, ...], batches: int = 3000) -> list[ProfilerCost]:
    """Record sample batches the way the service does (validated rows), then flush; CPU per batch and row.

    Wall-clock throughput with profiling on and off differs by more than profiling costs on a
    shared machine; process CPU time of the profiler's own work does not.
    """
    frame = load_table(cfg.data.path)
    features = feature_columns(frame, cfg.data)
    keep = [*features, *([cfg.data.id_column] if cfg.data.id_column else [])]
    columns = [schema.Column(name, _kind(frame[name])) for name in features]
    row = schema.row_model(columns, cfg.data.id_column, {}, cfg.serving.max_text_chars)
    records = json.loads(frame[keep].to_json(orient="records"))
    costs = []
    for size in sizes:
        chunks = [
            [row.model_validate(r) for r in records[(i * size) % len(records) :][:size]]
            for i in range(batches)
        ]
        with tempfile.TemporaryDirectory(prefix="bench-profiler-") as scratch:
            profiler = TrafficProfiler(
                scratch,
                id_column=cfg.data.id_column,
                frame_of=partial(schema.to_frame, columns=columns, id_column=cfg.data.id_column),
            )
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


def _kind(column: pd.Series) -> str:
    """The signature type training logs for a column."""
    if pd.api.types.is_integer_dtype(column):
        return "long"
    return "double" if pd.api.types.is_numeric_dtype(column) else "string"


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
        service = lookup(results, SERVICE, cost.rows_per_batch)
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
    lines.append(tables.table(header, rows))
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


def main(argv: list[str]) -> int:
    """``nox -s bench-serve -- key=value...``: every variant, then the report."""
    use_project_store()
    try:
        print(f"report: {bench(compose(argv))}")
    except PipelineError as error:
        print(f"bench-serve: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
