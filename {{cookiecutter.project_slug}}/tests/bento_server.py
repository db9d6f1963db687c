"""Start and stop a real ``bentoml serve`` process on a free loopback port, for slow tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from {{ cookiecutter.package_name }}.deployment.loopback import free_port, stop_process

BENTOML = str(Path(sys.executable).with_name("bentoml"))
STARTUP_TIMEOUT_S = 300.0


def start(target: str, cwd: Path, env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """``bentoml serve target`` in its own process group; returns once /readyz answers 200."""
    port = free_port()
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [BENTOML, "serve", target, "--host", "127.0.0.1", "--port", str(port)],
            cwd=cwd,
            env=os.environ | env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"bentoml serve exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(1)
    stop(process)
    raise RuntimeError(f"bentoml serve not ready after {STARTUP_TIMEOUT_S:.0f}s:\n{log.read_text()[-3000:]}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (graceful: shutdown hooks flush profiles), then SIGKILL the whole tree if it hangs."""
    stop_process(process.pid, grace_s=60)
