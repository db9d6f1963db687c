"""The project's task list: every workflow step, README command and stage is one session here.

All sessions share the project's locked environment (``uv run --locked``): one install of the
ML stack instead of one per session. ``nox -s train -- model=hgb`` passes Hydra overrides.
"""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "none"
nox.options.sessions = ["lint", "typecheck", "tests"]


def uv_run(session: nox.Session, *args: str) -> None:
    """Run a command in the locked project environment (created or updated as needed)."""
    session.run("uv", "run", "--locked", *args, external=True)


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff lint and format check over code and tests."""
    uv_run(session, "ruff", "check", ".")
    uv_run(session, "ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the package."""
    uv_run(session, "mypy")


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite; pass pytest arguments after --, e.g. `nox -s tests -- -m "not slow"`."""
    uv_run(session, "pytest", *session.posargs)


@nox.session(name="derive-contract")
def derive_contract(session: nox.Session) -> None:
    """Derive data/sample/contract.yaml and the reference profile from reference data."""
    uv_run(session, "derive-contract", *session.posargs)


@nox.session(name="validate-data")
def validate_data(session: nox.Session) -> None:
    """The data gate: contract and distribution checks; non-zero exit on bad data."""
    uv_run(session, "validate-data", *session.posargs)


@nox.session
def train(session: nox.Session) -> None:
    """Train, evaluate, log to MLflow and register the model as 'candidate'."""
    uv_run(session, "train", *session.posargs)


@nox.session
def compare(session: nox.Session) -> None:
    """Candidate versus champion on the same test split; writes reports/training/gate.json."""
    uv_run(session, "compare", *session.posargs)


@nox.session
def predict(session: nox.Session) -> None:
    """Batch inference: `nox -s predict -- inference.input=new.csv inference.alias=candidate`."""
    uv_run(session, "predict", *session.posargs)
