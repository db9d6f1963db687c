"""The template's task list: every CI step and README command is one of these sessions."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv"
nox.options.sessions = ["lint", "tests"]

ROOT = Path(__file__).parent
TEMPLATE_DIR = ROOT / "{{cookiecutter.project_slug}}"
SLUG_PLACEHOLDER = "{{ cookiecutter.project_slug }}"


def install_group(session: nox.Session, group: str) -> None:
    """Install one dependency group of the template's own pyproject (locked in uv.lock)."""
    session.run_install(
        "uv",
        "sync",
        "--locked",
        "--no-install-project",
        "--only-group",
        group,
        env={"UV_PROJECT_ENVIRONMENT": session.virtualenv.location},
    )


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff on the template's own code (hooks, tests, noxfile)."""
    install_group(session, "lint")
    session.run("ruff", "check", "hooks", "tests", "noxfile.py")
    session.run("ruff", "format", "--check", "hooks", "tests", "noxfile.py")


@nox.session
def tests(session: nox.Session) -> None:
    """Bake every option combination and check it; the slow tier runs baked projects' own gates.

    Pass pytest arguments after --, e.g. `nox -s tests -- -m "not slow"`.
    """
    install_group(session, "test")
    session.run("pytest", *session.posargs)


@nox.session
def demo(session: nox.Session) -> None:
    """Bake a project with the defaults into a scratch folder and run its pipeline end to end."""
    install_group(session, "test")
    target = Path(os.environ.get("DEMO_DIR") or tempfile.mkdtemp(prefix="mlops-demo-"))
    session.run("python", "tests/demo.py", str(target), *session.posargs)


@nox.session(venv_backend="none")
def lock(session: nox.Session) -> None:
    """Re-resolve the generated project's uv.lock (run after editing its pyproject.toml)."""
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        pyproject = (TEMPLATE_DIR / "pyproject.toml").read_text()
        defaults = json.loads((ROOT / "cookiecutter.json").read_text())
        rendered = _render_minimal(pyproject, defaults)
        (work / "pyproject.toml").write_text(rendered)
        (work / "README.md").write_text("lock\n")
        current = TEMPLATE_DIR / "uv.lock"
        if current.exists():  # start from the current pins: only what changed moves
            (work / "uv.lock").write_text(current.read_text().replace(SLUG_PLACEHOLDER, "lock-placeholder"))
        session.run("uv", "lock", "--directory", str(work), *session.posargs, external=True)
        locked = (
            (work / "uv.lock")
            .read_text()
            .replace('name = "lock-placeholder"', f'name = "{SLUG_PLACEHOLDER}"')
        )
        (TEMPLATE_DIR / "uv.lock").write_text(locked)


def _render_minimal(pyproject: str, defaults: dict[str, object]) -> str:
    """Replace the Jinja fields of pyproject.toml with fixed values good enough for locking."""
    return (
        pyproject.replace(SLUG_PLACEHOLDER, "lock-placeholder")
        .replace("{{ cookiecutter.package_name }}", "lock_placeholder")
        .replace("{{ cookiecutter.description | tojson }}", json.dumps(defaults["description"]))
        .replace("{{ cookiecutter.author_name | tojson }}", json.dumps(defaults["author_name"]))
        .replace("{{ cookiecutter.author_email | tojson }}", json.dumps(defaults["author_email"]))
    )
