"""``nox -s doctor``: what this machine and checkout still lack before the workflows can run.

Each finding says what was found and, when something is missing, the one thing to do. It checks
what can be seen from here: the programs the stages run, a container engine, the git remote
against the image repository, the tracking URI and ``DEPLOY_HOME``; and, where the GitHub CLI is
logged in, the promotion App's settings. GitHub's other settings (reviewers, runner groups)
cannot be read this way: the README's "Connect to GitHub" lists them. A check that cannot be made
from here says so ("unchecked") instead of passing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from . import tools
from .config import PROJECT_ROOT, Config
from .tools import INSTALL

PROGRAMS = ("git", "uv", "haproxy", "wrk")
MANIFEST_PROGRAMS = ("kubectl", "node")  # `nox -s manifests`: kustomize build and the CRD schemas
GITHUB_REMOTE = re.compile(r"github\.com[:/](?P<owner>[^/]+)/(?P<repo>[^/]+?)(?:\.git)?$")


@dataclass(frozen=True)
class Finding:
    """One check: its name, whether it holds, and what was found or what to do."""

    name: str
    ok: bool | None  # None: it cannot be checked from here
    detail: str


def programs(root: Path = PROJECT_ROOT) -> list[Finding]:
    """Every program a stage runs, on PATH or named with its install command.

    A project with Kubernetes manifests also needs what checks them offline.
    """
    wanted = PROGRAMS + (MANIFEST_PROGRAMS if (root / "deploy" / "kubernetes").is_dir() else ())
    return [
        Finding(tool, True, found) if (found := shutil.which(tool)) else Finding(tool, False, INSTALL[tool])
        for tool in wanted
    ]


def container_engine(environ: Mapping[str, str] = os.environ) -> Finding:
    """A container engine answering (docker or podman), as ``containerize`` and image colors need."""
    engine = tools.container_engine(environ)
    if engine.name:
        return Finding("container engine", True, engine.name)
    return Finding("container engine", False, f"{engine.reason}: install podman (or docker)")


def git_remote(image_repository: str, root: Path = PROJECT_ROOT) -> Finding:
    """``origin`` is a GitHub repository whose owner is the one the image repository names."""
    git = shutil.which("git")
    if git is None:
        return Finding("git remote", False, f"git is not installed: {INSTALL['git']}")
    asked = subprocess.run(
        [git, "-C", str(root), "remote", "get-url", "origin"], capture_output=True, text=True, check=False
    )
    url = asked.stdout.strip()
    found = GITHUB_REMOTE.search(url)
    if not found:
        why = f"origin is {url!r}" if url else "no git remote 'origin'"
        return Finding("git remote", False, f"{why}: git remote add origin git@github.com:<owner>/<repo>.git")
    owner = found["owner"].lower()
    if f"/{owner}/" not in f"{image_repository.lower()}/":
        return Finding(
            "git remote",
            False,
            f"origin's owner is {owner!r} but images go to {image_repository}: "
            "set serving.image_repository in conf/serving/default.yaml",
        )
    return Finding("git remote", True, url)


def tracking(cfg: Config) -> Finding:
    """A tracking URI the stages can use (a remote project's must be exported)."""
    uri = cfg.mlflow.tracking_uri.strip()
    if not uri:
        return Finding("tracking URI", False, "export MLFLOW_TRACKING_URI (and MLFLOW_TRACKING_TOKEN)")
    return Finding("tracking URI", True, uri.split("@")[-1])  # never print credentials in a URI


def deploy_home(environ: Mapping[str, str] = os.environ) -> Finding:
    """On the production host, ``DEPLOY_HOME`` is a folder this user can write; elsewhere unset."""
    home = environ.get("DEPLOY_HOME", "").strip()
    if not home:
        return Finding("DEPLOY_HOME", True, "not set: only the production host needs it")
    folder = Path(home)
    existing = next((parent for parent in (folder, *folder.parents) if parent.exists()), folder)
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        return Finding("DEPLOY_HOME", False, f"{existing} is not a folder this user can write: chown it")
    return Finding("DEPLOY_HOME", True, str(folder))


APP_CHECK = "promotion App"
PROMOTION_ENVIRONMENT = "promotion"
PROMOTION_APP = {"variable": "PROMOTION_APP_CLIENT_ID", "secret": "PROMOTION_APP_PRIVATE_KEY"}
PROMOTION_SETUP = (
    f"create the promotion GitHub App, then set variable {PROMOTION_APP['variable']} and secret "
    f"{PROMOTION_APP['secret']} in environment '{PROMOTION_ENVIRONMENT}' (README: Connect to GitHub)"
)


def promotion_app(root: Path = PROJECT_ROOT) -> Finding:
    """The App that opens promotion pull requests: its client ID and key in the ``promotion`` environment.

    A pull request opened with the workflow's own token starts no checks (GitHub's rule against
    recursive runs), so ``release`` opens it with the App's token and stops when the App is not
    set. Only names are read (``gh variable list`` / ``gh secret list``), never values.
    """
    gh = shutil.which("gh")
    if gh is None:
        return Finding(APP_CHECK, None, f"no gh CLI to read the repository's settings: {PROMOTION_SETUP}")
    missing = []
    for kind, name in PROMOTION_APP.items():
        command = [gh, kind, "list", "--env", PROMOTION_ENVIRONMENT, "--json", "name"]
        listed = subprocess.run(command, capture_output=True, text=True, check=False, cwd=root)
        if listed.returncode:
            reason = tools.last_line(listed.stderr)
            return Finding(APP_CHECK, None, f"`gh {kind} list` failed ({reason}): {PROMOTION_SETUP}")
        if name not in {item["name"] for item in json.loads(listed.stdout or "[]")}:
            missing.append(f"{kind} {name}")
    where = f"environment '{PROMOTION_ENVIRONMENT}'"
    if missing:
        return Finding(APP_CHECK, False, f"{where} lacks {' and '.join(missing)}: {PROMOTION_SETUP}")
    return Finding(APP_CHECK, True, f"{' and '.join(PROMOTION_APP.values())} in {where}")


def examine(cfg: Config) -> list[Finding]:
    """Every finding, in the order a new user would fix them."""
    return [
        *programs(),
        container_engine(),
        git_remote(cfg.serving.image_repository),
        tracking(cfg),
        deploy_home(),
        promotion_app(),
    ]
