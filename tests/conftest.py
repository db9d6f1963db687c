"""The option matrix from cookiecutter.json and a baking fixture shared by the template tests."""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import random
import re
import socket
import tomllib
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from cookiecutter.main import cookiecutter

# nox points UV_PROJECT_ENVIRONMENT (and VIRTUAL_ENV) at the template's test venv; a baked
# project's `uv sync`/`uv run` must use the project's own .venv, never overwrite ours.
for _variable in ("UV_PROJECT_ENVIRONMENT", "VIRTUAL_ENV"):
    os.environ.pop(_variable, None)

ROOT = Path(__file__).resolve().parents[1]
DEFAULTS: dict[str, Any] = json.loads((ROOT / "cookiecutter.json").read_text())
CHOICES = {
    key: value for key, value in DEFAULTS.items() if isinstance(value, list) and not key.startswith("_")
}


def load_hook(name: str) -> ModuleType:
    """Import a hook script as a module (its main() only runs under __main__)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "hooks" / f"{name}.py")
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PRE_GEN = load_hook("pre_gen_project")

ACTION_PINS: dict[str, dict[str, str]] = tomllib.loads((ROOT / "tests" / "action_pins.toml").read_text())
"""``{owner/repo: {tag: commit}}``, as read from each action's own repository."""
USES = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>[^\s#]+)[ \t]*(?:#[ \t]*(?P<tag>\S+))?", re.MULTILINE)


def unverified_pins(github: Path) -> list[str]:
    """Every remote ``uses:`` under a ``.github`` folder whose commit is not the one its tag names.

    The tag is the version comment (``@<sha> # v4.2.2``); the pair must be in action_pins.toml,
    because GitHub fails a job at "Set up job" when a pinned SHA is not a commit of the action.
    """
    problems = []
    for path in sorted(github.rglob("*.y*ml")):
        for found in USES.finditer(path.read_text()):
            ref, tag = found["ref"], found["tag"]
            if ref.startswith("./"):
                continue
            action, _, sha = ref.partition("@")
            repository = "/".join(action.split("/")[:2])
            recorded = ACTION_PINS.get(repository, {}).get(tag or "")
            if recorded != sha:
                where = f"{path.relative_to(github.parent)}: {ref} # {tag}"
                problems.append(f"{where}: action_pins.toml has {repository} {tag} = {recorded}")
    return problems


# Options that add or change a file or two and meet no other option: they take turns across the
# matrix instead of multiplying it (the licence is LICENSE and one pyproject line; init_git
# writes no file, and the hooks' tests cover it).
ROTATED = ("license", "init_git")


def combinations() -> list[dict[str, str]]:
    """One bake per distinct tree: every product of the options that meet in the same files,
    minus the pairs the pre-gen hook refuses, with the rotated options taking turns."""
    keys = [key for key in CHOICES if key not in ROTATED]
    every = [
        dict(zip(keys, values, strict=True)) for values in itertools.product(*(CHOICES[k] for k in keys))
    ]
    supported = [combo for combo in every if not PRE_GEN.unsupported_combination(combo)]
    return [
        combo | {key: CHOICES[key][index % len(CHOICES[key])] for key in ROTATED}
        for index, combo in enumerate(supported)
    ]


def combo_id(combo: dict[str, str]) -> str:
    """Readable test ids: 'classification-local-local-py3.11-MIT-git'."""
    return "-".join(
        [combo["ml_task"], combo["deploy_target"], combo["mlflow_tracking"], f"py{combo['python_version']}"]
        + [combo["license"]]
        + (["git"] if combo["init_git"] == "yes" else [])
    )


Bake = Callable[..., Path]


PORTS = range(20000, 32768)
"""Where tests draw server ports: below the ephemeral range, above the usual services."""


def free_ports(count: int) -> list[int]:
    """Loopback ports nothing listens on right now, all distinct (held open together while chosen).

    Drawn below Linux's ephemeral range (32768-60999), where outgoing connections take their
    source ports: a port the kernel hands out there can be taken by any client (wrk opens 64
    connections, act and uv open more) between the choice and the server's bind.
    """
    draw = random.SystemRandom()
    held: list[socket.socket] = []
    while len(held) < count:
        sock = socket.socket()
        try:
            sock.bind(("127.0.0.1", draw.choice(PORTS)))
        except OSError:  # taken: draw again
            sock.close()
            continue
        held.append(sock)
    ports = [int(sock.getsockname()[1]) for sock in held]
    for sock in held:
        sock.close()
    return ports


def free_port() -> int:
    """One loopback port nothing listens on right now."""
    return free_ports(1)[0]


@pytest.fixture
def bake(tmp_path: Path) -> Bake:
    """Bake the template with the given context into tmp_path; returns the project folder."""

    def run(**context: str) -> Path:
        context = {"init_git": "no", **context}
        return Path(cookiecutter(str(ROOT), no_input=True, extra_context=context, output_dir=str(tmp_path)))

    return run
