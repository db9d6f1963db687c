"""Native thread pools (OpenMP, BLAS) held to the cores this process may use.

Histogram gradient boosting splits every tree's work over OpenMP threads that meet at a
barrier many times per tree. On cores shared with other busy processes a thread that loses
its core holds every other one at the next barrier, and a fit that takes seconds alone can
take minutes. ``training.threads`` caps the pools (threadpoolctl sets the limit in every
native library loaded: OpenMP, OpenBLAS, MKL); ``null`` means the cores the scheduler lets this
process run on, which a ``taskset`` or a container's cpuset makes fewer than the machine's.
On a machine shared with other heavy work, ``training.threads=1`` trades the parallel speed-up
for never waiting at a barrier.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from threadpoolctl import threadpool_limits

from ..config import ConfigError


def available_cores() -> int:
    """The cores this process may run on: its CPU affinity where the OS has one (Linux), else all."""
    affinity = getattr(os, "sched_getaffinity", None)  # absent on macOS and Windows
    return len(affinity(0)) if affinity is not None else os.cpu_count() or 1


def thread_count(configured: int | None) -> int:
    """``training.threads``, or the cores this process may use when it is null."""
    if configured is None:
        return available_cores()
    if configured < 1:
        raise ConfigError(
            f"training.threads={configured}: give 1 or more threads, or null for the cores this "
            f"process may use ({available_cores()} here)"
        )
    return configured


@contextmanager
def limited(configured: int | None) -> Iterator[int]:
    """Every native thread pool capped at :func:`thread_count` threads inside the block."""
    count = thread_count(configured)
    with threadpool_limits(limits=count):
        yield count
