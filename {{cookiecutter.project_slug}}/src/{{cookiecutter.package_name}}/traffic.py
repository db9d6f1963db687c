"""Production traffic profiling: buffer served rows, profile them in bulk once per window.

whylogs costs ~5 ms per call but ~1 us per row in bulk, so the request path only appends the
batch it just predicted to an in-memory buffer; a background thread profiles the buffer once
per window and writes one binary profile per window and process. Files are named
``<window start>-<host>-<pid>-<sequence>.bin`` so several workers and blue/green processes
never overwrite each other (whylogs' rolling logger did, losing rows). Next to each profile, a
``.predictions.parquet`` file keeps id, prediction and time per row, so late labels can be
joined by id.

Guarantees, each tested: every recorded row ends up in exactly one profile (stop() flushes);
a store that cannot be written never fails a request: the rows stay buffered for the next
window (up to ``max_buffered_rows``, beyond which the oldest are dropped and counted) and the
failure is counted. ``directory`` may be a local path or an fsspec URI such as
``s3://bucket/profiles`` (install the matching fsspec driver, e.g. ``s3fs``).
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import fsspec
import pandas as pd

from {{ cookiecutter.package_name }} import profiling

logger = logging.getLogger(__name__)

PREDICTION_COLUMN = "prediction"


@dataclass
class TrafficStats:
    """Counters the service exports as metrics."""

    rows_written: int = 0
    files_written: int = 0
    write_failures: int = 0
    rows_dropped: int = 0


@dataclass
class TrafficProfiler:
    """Buffers served frames and writes one whylogs profile per window (see module docstring)."""

    directory: str
    window_s: float = 60.0
    id_column: str | None = None
    max_buffered_rows: int = 1_000_000
    on_write: Callable[[int], None] | None = None
    on_failure: Callable[[int], None] | None = None
    stats: TrafficStats = field(default_factory=TrafficStats)
    _buffer: deque[pd.DataFrame] = field(default_factory=deque)
    _buffered_rows: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _flush_lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _sequence: int = 0

    def record(self, frame: pd.DataFrame) -> None:
        """Keep a predicted batch (features, id, prediction) for the next profile; O(1)."""
        with self._lock:
            self._buffer.append(frame)
            self._buffered_rows += len(frame)
            while self._buffered_rows > self.max_buffered_rows and len(self._buffer) > 1:
                dropped = self._buffer.popleft()
                self._buffered_rows -= len(dropped)
                self.stats.rows_dropped += len(dropped)

    def start(self) -> None:
        """Flush every ``window_s`` seconds in a daemon thread until :meth:`stop`."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="traffic-profiler", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the timer and flush what is left: shutting down loses no rows."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        self.flush()

    def _loop(self) -> None:
        while not self._stop.wait(self.window_s):
            self.flush()

    def flush(self) -> str | None:
        """Profile and write everything buffered; on failure keep it for the next window."""
        with self._flush_lock:
            frames = self._take()
            if not frames:
                return None
            batch = pd.concat(frames, ignore_index=True)
            try:
                target = self._write(batch)
            except Exception as error:  # any store error: keep serving, count, retry next window
                logger.warning(
                    "profile store unavailable (%s); %d rows kept for the next window", error, len(batch)
                )
                self.stats.write_failures += 1
                self._requeue(batch)
                if self.on_failure is not None:
                    self.on_failure(len(batch))
                return None
            self.stats.rows_written += len(batch)
            self.stats.files_written += 1
            if self.on_write is not None:
                self.on_write(len(batch))
            return target

    def _take(self) -> list[pd.DataFrame]:
        with self._lock:
            frames = list(self._buffer)
            self._buffer.clear()
            self._buffered_rows = 0
            return frames

    def _requeue(self, batch: pd.DataFrame) -> None:
        with self._lock:
            self._buffer.appendleft(batch)
            self._buffered_rows += len(batch)

    def _write(self, batch: pd.DataFrame) -> str:
        """One profile (features + prediction) and, with an id column, a predictions file."""
        self._sequence += 1
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        stem = f"{stamp}-{socket.gethostname()}-{os.getpid()}-{self._sequence:05d}"
        view = profiling.profile(batch.drop(columns=[c for c in [self.id_column] if c and c in batch]))
        profile_path = _store(self.directory, f"{stem}.bin", lambda local: profiling.write(view, local))
        if self.id_column and self.id_column in batch:
            ids = batch[[self.id_column, PREDICTION_COLUMN]].assign(served_at=time.time())
            _store(self.directory, f"{stem}.predictions.parquet", lambda local: _write_parquet(ids, local))
        return profile_path


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    partial = path.with_name(f".{path.name}.partial")
    frame.astype({frame.columns[0]: str}).to_parquet(partial, index=False)
    partial.replace(path)


def _store(directory: str, name: str, write: Callable[[Path], object]) -> str:
    """Write locally (atomically), or to a local temp file then copy to an fsspec URI."""
    if "://" not in directory or directory.startswith("file://"):
        local = Path(directory.removeprefix("file://")) / name
        local.parent.mkdir(parents=True, exist_ok=True)
        write(local)
        return str(local)
    with tempfile.TemporaryDirectory() as scratch:
        local = Path(scratch) / name
        write(local)
        uri = f"{directory.rstrip('/')}/{name}"
        with fsspec.open(uri, "wb") as remote:
            remote.write(local.read_bytes())
    return uri
