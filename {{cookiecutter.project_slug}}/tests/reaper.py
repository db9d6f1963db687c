"""What a GitHub Actions runner does when a job ends, for tests of the production host.

The runner kills every process whose environment carries the job's ``RUNNER_TRACKING_ID``: the
processes a job started and left behind. Production started by a job must not be among them.
Run as a script (``python tests/reaper.py <tracking id>``) it reaps and prints what it killed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from pathlib import Path

MARK = "RUNNER_TRACKING_ID"


def marked(tracking_id: str) -> list[int]:
    """Pids whose environment carries ``RUNNER_TRACKING_ID=<tracking_id>`` (this process excluded)."""
    wanted = f"{MARK}={tracking_id}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if wanted in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:  # gone already, or not ours to read
            continue
    return found


def reap(tracking_id: str) -> list[int]:
    """Kill (SIGKILL, as the runner does) every process marked with the job's id; the pids."""
    victims = marked(tracking_id)
    for pid in victims:
        with contextlib.suppress(ProcessLookupError):  # it ended on its own meanwhile
            os.kill(pid, signal.SIGKILL)
    return victims


if __name__ == "__main__":
    print(" ".join(map(str, reap(sys.argv[1]))))
