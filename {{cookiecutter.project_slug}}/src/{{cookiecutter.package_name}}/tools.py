"""System programs the stages run (HAProxy, wrk, uv), found on PATH or named with their install.

A stage that needs a program outside Python asks :func:`require` first, so a machine without it
gets one line naming the program and the command that installs it, never a FileNotFoundError
traceback from deep inside :mod:`subprocess`. The project's setup action installs all of them on
GitHub's runners; ``nox -s demo`` in the template does the same on a fresh machine.
"""

from __future__ import annotations

import shutil

from .errors import PipelineError

INSTALL = {
    "haproxy": "sudo apt-get install haproxy (macOS: brew install haproxy)",
    "wrk": "sudo apt-get install wrk (macOS: brew install wrk)",
    "uv": "python3 -m pip install uv",
    "git": "sudo apt-get install git",
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
