"""HTTP load with wrk: one Lua script and the functions that run it and read its numbers.

The latency check, the switch benchmark and the serving benchmark all load the service the
same way, so they share this module rather than each carrying a script: wrk (Debian package
``wrk``) POSTs JSON bodies read from a file, one document per line, rotating over them (a
single body is a one-line file); it counts which color answered by the router's
``X-Deploy-Color`` header; and its ``done`` hook prints every number as one ``WRK_JSON`` line,
which :func:`parse` reads. wrk is used rather than a Python client because it is light on CPU:
on a small machine the load generator shares the cores with the service it measures.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path

from ..errors import PipelineError
from ..headers import CLIENT_HEADER
from ..tools import require
from .access import OPERATOR
from .router import COLOR_HEADER

BODIES_ENV = "WRK_BODIES"
"""The environment variable naming the bodies file; the script reads it when each thread starts."""
KEY_ENV = "WRK_KEY"
"""The environment variable holding the front door key to send, if any (never on wrk's command line)."""

RESULT_PREFIX = "WRK_JSON "
STOP_GRACE_S = 10.0
RESULT_GRACE_S = 60.0

# Counters are per-thread globals, summed in `done` over the threads `setup` collected. No `init`:
# the bodies are read when the script loads. One body makes a static request (wrk formats it once);
# several take a `request` function that rotates. `response` makes wrk parse every response's
# headers, which costs it little next to the service's work.
_TEMPLATE = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["__CLIENT_HEADER__"] = "__OPERATOR__"  -- the router replaces it on the front door
local key = os.getenv("__KEY_ENV__")
if key and key ~= "" then wrk.headers["Authorization"] = "Bearer " .. key end
local bodies = {}
for line in io.lines(os.getenv("__BODIES_ENV__") or error("__BODIES_ENV__ is not set")) do
  if line ~= "" then bodies[#bodies + 1] = line end
end
if #bodies == 1 then
  wrk.body = bodies[1]
else
  local i = 0
  request = function()
    i = i % #bodies + 1
    return wrk.format(nil, nil, nil, bodies[i])
  end
end
blue, green, other = 0, 0, 0
local threads = {}
function setup(thread) table.insert(threads, thread) end
function response(status, headers, body)
  if status ~= 200 then return end  -- counted by wrk as a status error when >= 400
  local color = headers["__HEADER_LOWER__"] or headers["__HEADER__"]
  if color == "blue" then blue = blue + 1
  elseif color == "green" then green = green + 1
  else other = other + 1 end
end
done = function(summary, latency, requests)
  local e = summary.errors
  local b, g, o = 0, 0, 0
  for _, t in ipairs(threads) do b = b + t:get("blue"); g = g + t:get("green"); o = o + t:get("other") end
  io.write(string.format(
    '__PREFIX__{"requests": %d, "duration_us": %d, "p50_us": %d, "p95_us": %d, "p99_us": %d, ' ..
    '"max_us": %d, "connect": %d, "read": %d, "write": %d, "timeout": %d, "status": %d, ' ..
    '"blue": %d, "green": %d, "other": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), latency.max, e.connect, e.read, e.write, e.timeout, e.status, b, g, o))
end
"""
SCRIPT = (
    _TEMPLATE.replace("__BODIES_ENV__", BODIES_ENV)
    .replace("__KEY_ENV__", KEY_ENV)
    .replace("__CLIENT_HEADER__", CLIENT_HEADER)
    .replace("__OPERATOR__", OPERATOR)
    .replace("__HEADER_LOWER__", COLOR_HEADER.lower())  # HAProxy sends header names in lower case
    .replace("__HEADER__", COLOR_HEADER)
    .replace("__PREFIX__", RESULT_PREFIX)
)
"""The Lua script every wrk run loads."""


class LoadError(PipelineError, RuntimeError):
    """wrk could not run or printed no result; the message says why in one line."""


@dataclass(frozen=True)
class LoadResult:
    """What one wrk run measured: latencies in microseconds, every error kind, answers by color.

    ``other`` counts 200 answers without a known color (a service reached directly, without the
    router, answers every request that way); non-200 answers count in ``status`` from 400 up.
    """

    requests: int
    duration_us: int
    p50_us: int
    p95_us: int
    p99_us: int
    max_us: int
    connect: int
    read: int
    write: int
    timeout: int
    status: int
    blue: int
    green: int
    other: int

    @property
    def errors(self) -> int:
        """Every request wrk counts as failed: connect, read, write, timeout and 4xx/5xx status."""
        return self.connect + self.read + self.write + self.timeout + self.status

    @property
    def requests_per_s(self) -> float:
        """Completed requests per second of the run."""
        return self.requests / max(self.duration_us / 1e6, 1e-9)


def require_wrk() -> str:
    """The wrk executable, checked before a run so that a missing program is one clear line."""
    return require("wrk", "load generation (the latency check and the benchmarks)")


def command(
    url: str, script: Path, *, clients: int, duration_s: float, threads: int | None = None
) -> list[str]:
    """The wrk command line for ``clients`` connections held for ``duration_s``.

    Args:
        url: The full URL every request goes to.
        script: The Lua script file (:data:`SCRIPT`, written out).
        clients: Concurrent connections.
        duration_s: How long to run; wrk takes whole seconds, so it is rounded up (at least 1).
        threads: wrk threads; by default ``min(2, clients)``, because the machine's cores are
            shared with the service being measured and two threads saturate it already.

    Returns:
        The argument list for :mod:`subprocess`.
    """
    count = max(1, min(2, clients)) if threads is None else max(1, min(threads, clients))
    return ["wrk", "-t", str(count), "-c", str(clients), "-d", f"{max(1, math.ceil(duration_s))}s",
            "--timeout", "10s", "-s", str(script), url]  # fmt: skip


def parse(stdout: str, stderr: str = "") -> LoadResult:
    """The numbers on the ``WRK_JSON`` line the script's ``done`` hook prints.

    Args:
        stdout: wrk's standard output (its own summary, then our line).
        stderr: wrk's standard error, quoted when there is no result line.

    Returns:
        The run's numbers.

    Raises:
        LoadError: No readable result line (a script error, or wrk could not connect).
    """
    for line in stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            try:
                doc = json.loads(line.removeprefix(RESULT_PREFIX))
                return LoadResult(**{field.name: int(doc[field.name]) for field in fields(LoadResult)})
            except KeyError as error:
                raise LoadError(f"wrk's result has no {error.args[0]!r}: {line}") from error
            except (TypeError, ValueError) as error:
                raise LoadError(f"wrk's result is unreadable ({error}): {line}") from error
    said = [text.strip() for text in (stderr + "\n" + stdout).splitlines() if text.strip()]
    raise LoadError(f"wrk printed no result: {' / '.join(said[-3:]) or 'no output'}")


class Background:
    """A wrk run in progress: wait for its end with :meth:`result`, or cut it short with :meth:`stop`."""

    def __init__(self, process: subprocess.Popen[str], duration_s: float) -> None:
        self.process = process
        self.duration_s = duration_s
        self._output: tuple[str, str] | None = None

    def result(self) -> LoadResult:
        """Wait for wrk to end (its duration, plus a grace period) and return its numbers.

        Raises:
            LoadError: wrk printed no result.
        """
        return parse(*self._collect(self.duration_s + RESULT_GRACE_S))

    def stop(self) -> LoadResult:
        """Interrupt wrk now and return what it measured so far (wrk reports on SIGINT).

        Raises:
            LoadError: wrk printed no result (interrupted before it had started, say).
        """
        self._interrupt()
        return parse(*self._collect(STOP_GRACE_S))

    def close(self) -> None:
        """Interrupt wrk if it still runs and reap it, killing it if it will not stop."""
        self._interrupt()
        try:
            self._collect(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self._output = self.process.communicate()

    def _interrupt(self) -> None:
        if self._output is None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)

    def _collect(self, timeout_s: float) -> tuple[str, str]:
        if self._output is None:
            self._output = self.process.communicate(timeout=timeout_s)
        return self._output


def _write_bodies(path: Path, bodies: str | Sequence[str]) -> None:
    items = [bodies] if isinstance(bodies, str) else list(bodies)
    if not items or any(not body.strip() or "\n" in body or "\r" in body for body in items):
        raise ValueError("request bodies must be non-empty JSON documents of one line each")
    path.write_text("".join(body + "\n" for body in items))


@contextmanager
def background(
    url: str,
    bodies: str | Sequence[str],
    *,
    clients: int,
    duration_s: float,
    threads: int | None = None,
    key: str | None = None,
) -> Iterator[Background]:
    """Run wrk while the ``with`` block does something else under load (a switch, a kill).

    Leaving the block early interrupts wrk; the script and bodies files are removed either way.

    Args:
        url: The full URL every request goes to.
        bodies: One JSON request body, or several to rotate over (each on one line).
        clients: Concurrent connections.
        duration_s: How long wrk runs, rounded up to whole seconds.
        threads: wrk threads, ``min(2, clients)`` by default (see :func:`command`).
        key: A front door key, sent as ``Authorization: Bearer`` (see :mod:`access`).

    Yields:
        The run; call :meth:`Background.result` for its numbers.

    Raises:
        MissingToolError: wrk is not installed.
        ValueError: No body, or one spanning lines.
    """
    require_wrk()
    with tempfile.TemporaryDirectory(prefix="wrk-") as scratch:
        script, bodies_file = Path(scratch) / "load.lua", Path(scratch) / "bodies.jsonl"
        script.write_text(SCRIPT)
        _write_bodies(bodies_file, bodies)
        process = subprocess.Popen(
            command(url, script, clients=clients, duration_s=duration_s, threads=threads),
            env=os.environ | {BODIES_ENV: str(bodies_file), KEY_ENV: key or ""},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        load = Background(process, duration_s)
        try:
            yield load
        finally:
            load.close()


def run(
    url: str,
    bodies: str | Sequence[str],
    *,
    clients: int,
    duration_s: float,
    threads: int | None = None,
    key: str | None = None,
) -> LoadResult:
    """Run wrk to the end and return its numbers (the arguments are :func:`background`'s).

    Raises:
        MissingToolError: wrk is not installed.
        LoadError: wrk printed no result.
    """
    with background(url, bodies, clients=clients, duration_s=duration_s, threads=threads, key=key) as load:
        return load.result()
