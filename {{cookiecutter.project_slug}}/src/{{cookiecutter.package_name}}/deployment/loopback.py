"""Loopback plumbing shared by the local target, the checks, the tests and the benchmarks.

Free ports, readiness probes and process trees: a color is a ``bentoml serve`` arbiter in its
own session with workers below it, so stopping one means the whole tree (BentoML's workers keep
serving if only the arbiter dies). The tooling's own HTTP calls to a color or to the router go
through :func:`client`.
"""

from __future__ import annotations

import functools
import os
import signal
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx


@functools.cache
def client() -> httpx.Client:
    """The one HTTP client of the tooling's loopback calls (readiness, checks, warm-up, watch).

    Built once: each ``httpx.Client`` loads the CA bundle (~40 ms), which plain HTTP to
    127.0.0.1 never uses. It takes no proxy from the environment (a loopback call must never
    leave the host) and keeps no connection open: each call opens its own and closes it, so a
    color restarted on the same port is met afresh (the watch keeps connections open, in a
    client of its own). httpx is imported on first use: ``deploy stop`` and the status of an
    environment with nothing running never pay for it (0.7 to 1 s on a busy host: importing
    httpx imports its command line's click and rich too).
    """
    import httpx  # noqa: PLC0415 - see above

    return httpx.Client(trust_env=False, limits=httpx.Limits(max_keepalive_connections=0))


def free_ports(count: int) -> list[int]:
    """Ports the kernel has free right now, all distinct (held open together while chosen)."""
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [int(sock.getsockname()[1]) for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def free_port() -> int:
    """One port nothing listens on right now."""
    return free_ports(1)[0]


def ready(port: int, timeout_s: float = 1.0, path: str = "/readyz") -> bool:
    """Whether the service on ``port`` answers ``path`` (BentoML's ``/readyz``) with 200."""
    import httpx  # noqa: PLC0415 - imported by client() already; see there

    try:
        return client().get(f"http://127.0.0.1:{port}{path}", timeout=timeout_s).status_code == 200
    except httpx.HTTPError:
        return False


def answering_instance(port: int, timeout_s: float = 1.0, key: str | None = None) -> str | None:
    """The ``instance`` the service on ``port`` names in ``/metadata``, once it is ready; else None.

    ``key``: the operator key, which a color started by the deploy tooling asks for.
    """
    if not ready(port, timeout_s):
        return None
    import httpx  # noqa: PLC0415 - imported by client() already; see there

    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        answer = client().get(f"http://127.0.0.1:{port}/metadata", headers=headers, timeout=timeout_s)
        return str(answer.json().get("instance", "")) if answer.is_success else None
    except (httpx.HTTPError, ValueError):
        return None


def listening(port: int) -> bool:
    """Whether something accepts connections on the loopback ``port``."""
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def alive(pid: int | None, marker: str) -> bool:
    """Whether ``pid`` runs and is still the process we started (its command line has ``marker``)."""
    if pid is None:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z" and marker in cmdline


def stop_process(pid: int, grace_s: float = 10.0) -> None:
    """SIGTERM the process group, SIGKILL it after ``grace_s``, then any process left of its tree."""
    tree = process_tree(pid)
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if _reaped(pid):
                break
            time.sleep(0.1)
        else:
            continue
        break
    for leftover in tree[1:]:
        if alive(leftover, ""):
            os.kill(leftover, signal.SIGKILL)


def process_tree(pid: int) -> list[int]:
    """``pid`` and every process below it (BentoML's workers keep serving if only the arbiter dies)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[-1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, pending = [], [pid]
    while pending:
        current = pending.pop()
        tree.append(current)
        pending += children.get(current, [])
    return tree


def _reaped(pid: int) -> bool:
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:  # not our child: gone once /proc says so
        return not Path(f"/proc/{pid}").exists() or not alive(pid, "")
    return done == pid
