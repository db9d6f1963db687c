"""The project's task list: every workflow step, README command and stage is one session here.

All sessions share the project's locked environment (synced once per nox invocation): one install of the
ML stack instead of one per session. ``nox -s train -- model=hgb`` passes Hydra overrides.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import nox

# Compile bytecode at install time: with PYTHONDONTWRITEBYTECODE set (common in CI images),
# every stage would otherwise recompile scikit-learn and MLflow on import (~15 s each).
os.environ.setdefault("UV_COMPILE_BYTECODE", "1")
# OpenMP threads wait passively, from each process's start (see the package's __init__ for why).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
nox.options.default_venv_backend = "none"
nox.options.sessions = ["lint", "typecheck", "tests"]


SYNCED: set[str] = set()  # the environments this nox invocation has synced


def uv_run(session: nox.Session, *args: str) -> None:
    """Run a command in the locked project environment, synced once per nox invocation.

    ``uv sync --locked`` checks the lock and installs exactly it; each ``uv run`` would do that
    again, so the commands run with ``--no-sync`` after the first. ``--inexact`` keeps what a user
    added to the environment (an fsspec driver such as s3fs), as ``uv run`` does.
    """
    environment = Path(os.environ.get("UV_PROJECT_ENVIRONMENT", ".venv"))
    if str(environment) not in SYNCED:
        sync(session, environment)
        SYNCED.add(str(environment))
    session.run("uv", "run", "--no-sync", *args, external=True)


def sync(session: nox.Session, environment: Path) -> None:
    """``uv sync --locked``, compiling bytecode only when the lock changed since the last sync.

    Compiling walks the stack's ~12k files (1-5 s) even when nothing was installed, so once an
    environment was synced and compiled for this exact ``uv.lock`` (a digest kept inside it), the
    sync still runs, checking the lock and installing any difference, but skips the walk.
    """
    digest = hashlib.sha256(Path("uv.lock").read_bytes()).hexdigest() if Path("uv.lock").exists() else ""
    stamp = environment / ".compiled-for-lock"
    current = stamp.exists() and stamp.read_text() == digest
    env = {"UV_COMPILE_BYTECODE": "0"} if current else {}
    session.run("uv", "sync", "--locked", "--inexact", external=True, env=env)
    if not current and os.environ.get("UV_COMPILE_BYTECODE") == "1":
        stamp.write_text(digest)


# ruff's findings as JSON for the CI page (reports.lint_section); the gate is the run after it.
RUFF_REPORT = ("--exit-zero", "--output-format=json", "--output-file=reports/lint/ruff.json")


# The project's own gate: what every pull request runs.
@nox.session
def lint(session: nox.Session) -> None:
    """Ruff lint and format check over code and tests; the findings also go to the CI page."""
    Path("reports/lint").mkdir(parents=True, exist_ok=True)
    uv_run(session, "ruff", "check", ".", *RUFF_REPORT)
    uv_run(session, "ruff", "check", ".")
    uv_run(session, "ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the package; the findings also go to the CI page (reports/lint/mypy.xml)."""
    uv_run(session, "mypy", "--junit-xml", "reports/lint/mypy.xml")


@nox.session
def tests(session: nox.Session) -> None:
    """The fast tier, what every pull request waits for: all tests but those marked slow.

    Runs on every core this process may use (pytest-xdist, one worker per core): its tests share
    no server, port or file. Pass pytest arguments after --, e.g. `nox -s tests -- tests/training`
    (`-n 0` for one process).
    """
    uv_run(session, "pytest", "-m", "not slow", "-n", workers(), *session.posargs)


def workers() -> str:
    """One pytest worker per core this process may use."""
    return str(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


@nox.session(name="tests-slow")
def tests_slow(session: nox.Session) -> None:
    """The slow tier: real servers, load, several models (release.yml runs it beside each release).

    With the 'ray' extra: a sweep's test starts a real Ray head.
    """
    session.run("uv", "sync", "--locked", "--inexact", "--extra", "ray", external=True)
    # A file's tests stay on one worker (--dist loadfile): they share its module's servers and models.
    # Mostly waiting on servers, one worker kept a core about half idle: 708 s, 372 s on two (quiet).
    uv_run(session, "pytest", "-m", "slow", "-n", workers(), "--dist", "loadfile", *session.posargs)


# Data: the contract and the gate in front of training.
@nox.session(name="adopt-data")
def adopt_data(session: nox.Session) -> None:
    """Adopt your own table: `nox -s adopt-data -- data.path=<file> data.target=<column>`."""
    uv_run(session, "adopt-data", *session.posargs)


@nox.session(name="derive-contract")
def derive_contract(session: nox.Session) -> None:
    """Derive data/sample/contract.yaml and the reference profile from reference data."""
    uv_run(session, "derive-contract", *session.posargs)


@nox.session(name="validate-data")
def validate_data(session: nox.Session) -> None:
    """The data gate: contract and distribution checks; non-zero exit on bad data."""
    uv_run(session, "validate-data", *session.posargs)


# Training: fit and register, select against the champion, score files.
@nox.session
def train(session: nox.Session) -> None:
    """Train, evaluate, log to MLflow and register the model as 'candidate'."""
    uv_run(session, "train", *session.posargs)


@nox.session
def compare(session: nox.Session) -> None:
    """Candidate versus champion (or production's recorded scores); writes reports/training/gate.json."""
    uv_run(session, "compare", *session.posargs)


@nox.session
def predict(session: nox.Session) -> None:
    """Batch inference: `nox -s predict -- inference.input=new.csv inference.model_alias=candidate`."""
    uv_run(session, "predict", *session.posargs)


# Serving: the bento, its image, the service from source.
def use_bento_store(session: nox.Session) -> None:
    """Keep BentoML's models and bentos in the project (``.bentoml/``, git-ignored), not in ~."""
    session.env.setdefault("BENTOML_HOME", str(Path(__file__).parent / ".bentoml"))


@nox.session
def package(session: nox.Session) -> None:
    """Build a bento from the model behind serving.model_alias; labels carry version, run, data, commit."""
    use_bento_store(session)
    uv_run(session, "package", *session.posargs)


@nox.session
def containerize(session: nox.Session) -> None:
    """OCI image of the latest bento (docker, else podman; CONTAINER_ENGINE chooses); says why if neither."""
    use_bento_store(session)
    uv_run(session, "containerize", *session.posargs)


@nox.session
def serve(session: nox.Session) -> None:
    """Serve from source, model from the registry alias: `nox -s serve -- --port 3000` (Ctrl+C stops)."""
    use_bento_store(session)
    uv_run(session, "bentoml", "serve", "{{ cookiecutter.package_name }}.serving.service:ModelService", *session.posargs)


@nox.session
def doctor(session: nox.Session) -> None:
    """What this machine and checkout lack for the workflows (programs, engine, remote, tracking...)."""
    uv_run(session, "doctor", *session.posargs)


# Deployment: staging, its checks, the promotion edit, production (desired state in deploy/).
@nox.session(name="deploy-staging")
def deploy_staging(session: nox.Session) -> None:
    """Put the newest packaged bento in deploy/staging.yaml and reconcile staging to it."""
    uv_run(session, "deploy", "apply", "staging", "--from-store", *session.posargs)


@nox.session(name="check-staging")
def check_staging(session: nox.Session) -> None:
    """Sanity checks through the staging router: health, OpenAPI format, schemathesis, latency, parity."""
    uv_run(session, "deploy", "check", "staging", *session.posargs)


@nox.session(name="push-image")
def push_image(session: nox.Session) -> None:
    """Push the image check-staging passed to its registry; reports/image.json names its digest."""
    uv_run(session, "deploy", "push", "staging", *session.posargs)


@nox.session(name="propose-promotion")
def propose_promotion(session: nox.Session) -> None:
    """The promotion edit: staging's checked release, with its test scores, onto production's idle color."""
    uv_run(session, "deploy", "propose", "production", *session.posargs)


@nox.session
def promote(session: nox.Session) -> None:
    """Reconcile production to deploy/production.yaml: candidate on the idle color, checks, switch, watch."""
    uv_run(session, "deploy", "apply", "production", *session.posargs)


@nox.session
def rollback(session: nox.Session) -> None:
    """Undo the last promotion: traffic back to the warm previous color (never a refused one)."""
    uv_run(session, "deploy", "rollback", "production", *session.posargs)


{% if cookiecutter.deploy_target != 'local' -%}
# The Kubernetes target: Argo CD syncs the overlays from git; these check and edit git only.
@nox.session
def manifests(session: nox.Session) -> None:
    """Check deploy/kubernetes and deploy/gitops offline: kustomize build, core + CRD schemas, references."""
    uv_run(session, "deploy", "manifests", *session.posargs)


@nox.session
def revert(session: nox.Session) -> None:
    """The GitOps rollback edit: the previous release live again in deploy/production.yaml and its overlay."""
    uv_run(session, "deploy", "revert", "production", *session.posargs)


@nox.session(name="rollout-status")
def rollout_status(session: nox.Session) -> None:
    """The cluster's Rollout against git (read-only KUBECONFIG); skipped, and said, without one."""
    uv_run(session, "deploy", "rollout-status", "production", *session.posargs)


{% endif -%}
@nox.session(name="deploy-status")
def deploy_status(session: nox.Session) -> None:
    """Desired against running: `nox -s deploy-status -- production`; exits 1 when they differ."""
    uv_run(session, "deploy", "status", *(session.posargs or ["production"]))


@nox.session(name="deploy-stop")
def deploy_stop(session: nox.Session) -> None:
    """Stop an environment's processes (state is kept): `nox -s deploy-stop -- staging`."""
    uv_run(session, "deploy", "stop", *(session.posargs or ["staging"]))


@nox.session(name="add-key")
def add_key(session: nox.Session) -> None:
    """A front door key: `nox -s add-key -- production web-app [--requests-per-s 50]`; prints it once."""
    uv_run(session, "deploy", "add-key", *session.posargs)


@nox.session(name="revoke-key")
def revoke_key(session: nox.Session) -> None:
    """Revoke a client's keys, or one key by its hash: `nox -s revoke-key -- production web-app`."""
    uv_run(session, "deploy", "revoke-key", *session.posargs)


# Monitoring: traffic against the training reference, and the CI dashboard.
@nox.session(name="simulate-drift")
def simulate_drift(session: nox.Session) -> None:
    """Replay synthetic traffic: `-- monitoring.simulation.shift=covariate` (none|covariate|label|concept)."""
    uv_run(session, "simulate-drift", *session.posargs)


@nox.session
def monitor(session: nox.Session) -> None:
    """Production profiles of a window vs the training reference: reports/monitoring/ (HTML, MD, JSON, PNG).

    `nox -s monitor -- monitoring.fail_on_drift=true` exits 3 on drift;
    `monitoring.metrics_sources=[http://127.0.0.1:3000/metrics]` adds service health.
    """
    uv_run(session, "monitor", *session.posargs)


@nox.session
def summary(session: nox.Session) -> None:
    """Render reports/*.json as reports/summary.md (tables + charts); CI appends it to the job summary."""
    uv_run(session, "summary", *session.posargs)


# Benchmarks: benchmarks/, run here, not shipped in the bento; each prints a table.
@nox.session(name="bench-stages")
def bench_stages(session: nox.Session) -> None:
    """Start-up apart from work for each stage, interleaved: `-- --repeats 5` (after validate-data train)."""
    uv_run(session, "python", "benchmarks/bench_stages.py", *session.posargs)


@nox.session(name="bench-sweep")
def bench_sweep(session: nox.Session) -> None:
    """8-trial sweep on local Ray vs Hydra's basic launcher, and one trial's Ray overhead, interleaved."""
    session.run("uv", "sync", "--locked", "--inexact", "--extra", "ray", external=True)
    uv_run(session, "python", "benchmarks/bench_sweep.py", *session.posargs)


@nox.session(name="sweep")
def sweep(session: nox.Session) -> None:
    """Trials as Ray tasks: `nox -s sweep -- model=linear,random_forest,hgb` (RAY_ADDRESS: a cluster)."""
    # `uv run` itself, not --no-sync: with RAY_ENABLE_UV_RUN_RUNTIME_ENV=1 (sweep.yml) a cluster's
    # workers replay this very command line in the project Ray ships them
    command = ["uv", "run", "--locked", "--extra", "ray", "train", "-m", "hydra/launcher=ray"]
    session.run(*command, *session.posargs, external=True)


@nox.session(name="bench-serve")
def bench_serve(session: nox.Session) -> None:
    """Service vs unbatched, plain FastAPI and no-op ceiling at 1/8/64 clients (wrk)."""
    use_bento_store(session)
    uv_run(session, "python", "benchmarks/bench_serve.py", *session.posargs)


@nox.session(name="bench-switch")
def bench_switch(session: nox.Session) -> None:
    """Blue/green switches under 64-client load: failed requests, switch and rollback times."""
    uv_run(session, "python", "benchmarks/bench_switch.py", *session.posargs)


@nox.session(name="bench-drift")
def bench_drift(session: nox.Session) -> None:
    """False alarms on fresh windows and detections of each shift at 300 and 3,000 rows; prints a table."""
    uv_run(session, "python", "benchmarks/bench_drift.py", *session.posargs)


@nox.session(name="bench-shift")
def bench_shift(session: nox.Session) -> None:
    """Both tasks: windows x strengths x kinds; detection, right kind, false alarms, estimate vs realised."""
    uv_run(session, "python", "benchmarks/bench_shift.py", *session.posargs)


@nox.session(name="bench-monitor")
def bench_monitor(session: nox.Session) -> None:
    """Time profiling, merging, comparing and reporting 1,000,000 logged rows; prints a table."""
    uv_run(session, "python", "benchmarks/bench_monitor.py", *session.posargs)
