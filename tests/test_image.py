"""Slow tier: a baked project's bento becomes a real OCI image (podman, daemonless) that serves.

No image registry is reachable from the machines this runs on, so the base image the bento's
Dockerfile names (``python:3.X-slim``) is made here from Debian packages with mmdebstrap, once,
and tagged with that name: the build pulls nothing. Two settings this machine kind needs live in
a containers.conf of the test's own: the ``runc`` runtime (crun refuses cgroup v1 hybrid mode)
and no default ulimits (setting RLIMIT_NOFILE is not permitted here); the host's CA bundle and a
``uv.toml`` trusting it are mounted into build steps, because package downloads here go through a
TLS-inspecting proxy. On GitHub's runners none of this is needed: docker pulls the base image.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import Bake
from test_generated import assert_ok, run

pytestmark = pytest.mark.slow

PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"  # the bento's Dockerfile: FROM python:X.Y-slim
BASE = f"docker.io/library/python:{PYTHON}-slim"
CONF = """\
[containers]
default_ulimits = []
volumes = [
    "/etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro",
    "{uv}:/etc/uv/uv.toml:ro",
]

[engine]
runtime = "runc"
"""
DEBOOTSTRAP = [
    "mmdebstrap", "--quiet", "--variant=minbase",
    "--include=python3,python3-venv,python3-pip,python-is-python3,ca-certificates,passwd",
    # BentoML's Dockerfile pip-installs uv system-wide, which Debian's Python refuses by default
    '--customize-hook=rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED',
    '--customize-hook=rm -rf "$1"/var/lib/apt/lists/*',
    "bookworm",
]  # fmt: skip


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """podman set up for this machine kind, with the base image in its store; the environment to use."""
    for tool in ("podman", "mmdebstrap", "runc"):
        install = "apt-get install podman runc mmdebstrap uidmap fuse-overlayfs"
        assert shutil.which(tool), f"{tool} missing: {install}"
    folder = tmp_path_factory.mktemp("podman")
    (folder / "uv.toml").write_text("system-certs = true\n")
    (folder / "containers.conf").write_text(CONF.format(uv=folder / "uv.toml"))
    env = {"CONTAINERS_CONF": str(folder / "containers.conf")}
    if subprocess.run(["podman", "image", "exists", BASE], env=os.environ | env, check=False).returncode:
        rootfs = folder / "rootfs.tar"
        _ok(subprocess.run([*DEBOOTSTRAP, str(rootfs)], capture_output=True, text=True, check=False))
        imported = ["podman", "import", "--change", 'CMD ["python3"]', str(rootfs), BASE]
        _ok(subprocess.run(imported, env=os.environ | env, capture_output=True, text=True, check=False))
    return env


def test_image__bento_becomes_an_image_that_serves_the_model_it_names(
    bake: Bake, podman: dict[str, str]
) -> None:
    project = bake()
    for command in (
        ["uv", "sync", "--locked", "--quiet"],
        ["nox", "-s", "validate-data"],
        ["nox", "-s", "train", "--", "experiment=quick"],
        ["nox", "-s", "package", "--", "serving.model_alias=candidate"],
        ["nox", "-s", "containerize"],
    ):
        assert_ok(run(project, *command, env=podman))
    image = json.loads((project / "reports" / "image.json").read_text())
    bento = json.loads((project / "reports" / "package.json").read_text())["bento_tag"]
    assert (image["bento_tag"], image["engine"]) == (bento, "podman")
    assert image["image_id"].startswith("sha256:")

    port = _free_port()
    started = run(project, "podman", "run", "-d", "--network=host", "-e", f"BENTOML_PORT={port}",
                  image["reference"], env=podman)  # fmt: skip
    assert_ok(started)
    container = started.stdout.strip()
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_ready(url, project, container, podman)
        assert json.loads(_get(f"{url}/metadata"))["bento"] == bento  # the image serves what it names
        row = _sample_row(project)
        answer = json.loads(_post(f"{url}/predict", {"rows": [row]}))
        assert answer["predictions"][0]["id"] == row["customer_id"]
        assert answer["model_version"] == json.loads(_get(f"{url}/metadata"))["model_version"]
    finally:
        run(project, "podman", "rm", "-f", container, env=podman)
        run(project, "podman", "rmi", "-f", image["reference"], env=podman)


def _ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, f"{result.args}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())


def _sample_row(project: Path) -> dict[str, object]:
    """The first row of the committed sample, typed as JSON would carry it (empty cells as null)."""
    with (project / "data" / "sample" / "customers.csv").open() as handle:
        raw = next(csv.DictReader(handle))
    return {name: _typed(value) for name, value in raw.items()}


def _typed(value: str) -> object:
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value or None


def _post(url: str, body: object) -> str:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return str(response.read().decode())


def _wait_ready(url: str, project: Path, container: str, env: dict[str, str]) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1)
    logs = run(project, "podman", "logs", container, env=env)
    pytest.fail(f"the image did not become ready in 300 s:\n{logs.stdout[-3000:]}{logs.stderr[-3000:]}")
