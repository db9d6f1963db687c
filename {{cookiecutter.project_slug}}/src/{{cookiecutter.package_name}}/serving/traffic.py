"""Production traffic profiling: buffer served rows, profile them in bulk once per window.

whylogs costs ~5 ms per call but ~1 us per row in bulk, so the request path only appends the
batch it just predicted and its predictions to an in-memory buffer (no DataFrame work: adding a
column costs more than scoring a row); a background thread profiles the buffer once
per window and writes one binary profile per window, process and client. Files are named
``<window start>-<host>-<pid>-<sequence>.model-<version>.client-<client>.bin`` so several workers
and blue/green processes never overwrite each other (whylogs' rolling logger did, losing rows),
monitoring can leave out clients by name (the router names each caller: see :mod:`..headers`)
and count rows per model version. Next to each window's profiles, a ``.predictions.parquet``
file keeps id, prediction, client, model version and time per row and, for a classifier, its
confidence (the top class's probability) and every class's probability (``proba__<class>``,
float32), so late labels can be joined by id, the realised metric and ROC AUC computed (one
versus rest for more than two classes), split by version, and accuracy estimated from confidence
before any label arrives. One float column per class, not a list column: Parquet stores and
compresses columns alike, pandas reads them with no unpacking, and logs written before the
columns existed still read (the probabilities are simply absent).

Guarantees, each tested: every recorded row ends up in exactly one profile (stop() flushes);
a store that cannot be written never fails a request: the rows stay buffered for the next
window (up to ``max_buffered_rows``, beyond which the oldest are dropped and counted) and the
failure is counted. ``directory`` may be a local path or an fsspec URI such as
``s3://bucket/profiles`` (see :mod:`store`).
"""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from itertools import chain, groupby
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from ..headers import DIRECT

logger = logging.getLogger(__name__)

PREDICTION_COLUMN = "prediction"
CLIENT_COLUMN = "client"
VERSION_COLUMN = "model_version"
CONFIDENCE_COLUMN = "confidence"
PROBABILITY_PREFIX = "proba__"
CLIENT_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
UNKNOWN = "unknown"

FrameOf = Callable[[list[Any]], pd.DataFrame]
"""Builds the input frame (features and id) from validated request rows."""


def client_name(header: str | None) -> str:
    """The client a request is filed under: the router's ``X-Client``, else ``direct``.

    A name outside the router's alphabet (a caller reaching a color directly with its own header)
    becomes ``unknown``, so it can never shape a file name.
    """
    if header is None:
        return DIRECT
    return header if CLIENT_NAME.fullmatch(header) else UNKNOWN


@dataclass
class TrafficStats:
    """Counters the service exports as metrics."""

    rows_written: int = 0
    files_written: int = 0
    write_failures: int = 0
    rows_dropped: int = 0


@dataclass(frozen=True)
class Served:
    """One predicted batch as the request path hands it over: inputs, predictions, clients.

    ``inputs`` is the input frame, or the validated rows it was built from (see
    :attr:`TrafficProfiler.frame_of`).
    """

    inputs: pd.DataFrame | Sequence[Any]
    predictions: Sequence[Any]
    clients: Sequence[str]
    probabilities: np.ndarray[Any, Any] | None = None

    def __len__(self) -> int:
        return len(self.inputs)


def probability_column(label: object) -> str:
    """The prediction log's column holding one class's probability: ``proba__<class>``."""
    return f"{PROBABILITY_PREFIX}{label}"


def combine(
    served: list[Served], classes: Sequence[Any] = (), frame_of: FrameOf | None = None
) -> pd.DataFrame:
    """Many batches as one frame with ``prediction`` and ``client`` columns: one concat, two inserts.

    Batches given as rows become one frame per run of them, by ``frame_of``.

    When every batch carries probabilities for ``classes``, the confidence and one column per
    class are added; a window mixing batches with and without them logs neither (it never
    happens within one service, whose model is fixed).
    """
    batch = _inputs(served, frame_of)
    batch[PREDICTION_COLUMN] = list(chain.from_iterable(item.predictions for item in served))
    batch[CLIENT_COLUMN] = list(chain.from_iterable(item.clients for item in served))
    scored = [item.probabilities for item in served if item.probabilities is not None]
    if classes and len(scored) == len(served):
        probabilities = np.vstack(scored)
        batch[CONFIDENCE_COLUMN] = probabilities.max(axis=1)
        columns = [probability_column(label) for label in classes]
        batch[columns] = probabilities.astype(np.float32)
    return batch


def _inputs(served: list[Served], frame_of: FrameOf | None) -> pd.DataFrame:
    """The batches' inputs as one frame: frames concatenated, each run of row lists built at once."""
    parts: list[pd.DataFrame] = []
    for is_frame, run in groupby(served, key=lambda item: isinstance(item.inputs, pd.DataFrame)):
        inputs = [item.inputs for item in run]
        if is_frame:
            parts.extend(cast(list[pd.DataFrame], inputs))
        elif frame_of is None:
            raise TypeError("rows were recorded without TrafficProfiler.frame_of to build their frame")
        else:
            parts.append(frame_of(list(chain.from_iterable(inputs))))
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0].reset_index(drop=True)


@dataclass
class TrafficProfiler:
    """Buffers served frames and writes one whylogs profile per window (see module docstring)."""

    directory: str
    window_s: float = 60.0
    id_column: str | None = None
    model_version: str = ""
    classes: Sequence[Any] = ()
    max_buffered_rows: int = 1_000_000
    on_write: Callable[[int], None] | None = None
    on_failure: Callable[[int], None] | None = None
    frame_of: FrameOf | None = None
    stats: TrafficStats = field(default_factory=TrafficStats)
    _buffer: deque[Served] = field(default_factory=deque)
    _buffered_rows: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _flush_lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _sequence: int = 0

    def record(
        self,
        inputs: pd.DataFrame | Sequence[Any],
        predictions: Sequence[Any],
        clients: Sequence[str] = (),
        probabilities: np.ndarray[Any, Any] | None = None,
    ) -> None:
        """Keep a predicted batch (features and id; its predictions; who sent each row); O(1).

        ``inputs`` is the batch's frame, or the rows ``frame_of`` builds it from at the flush:
        then a window of single-row requests costs one frame build, not a concat of thousands
        of one-row frames (about 2 s of CPU, most of it holding the GIL, for a window of 18,000).

        ``clients`` names each row's sender; without it every row is ``direct``. ``probabilities``
        is a classifier's (rows x ``classes``), logged beside the prediction, never profiled.
        """
        with self._lock:
            self._buffer.append(Served(inputs, predictions, clients or [DIRECT] * len(inputs), probabilities))
            self._buffered_rows += len(inputs)
            while self._buffered_rows > self.max_buffered_rows and len(self._buffer) > 1:
                dropped = self._buffer.popleft()
                self._buffered_rows -= len(dropped)
                self.stats.rows_dropped += len(dropped)

    def start(self) -> None:
        """Flush every ``window_s`` seconds in a daemon thread until :meth:`stop`."""
        from .. import profiling, store  # noqa: F401, PLC0415 - imported now, not in the first window's flush

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

    def flush(self, window_start: datetime | None = None) -> str | None:
        """Profile and write everything buffered; on failure keep it for the next window.

        ``window_start`` stamps the file with another time than now (replays of past windows).
        """
        with self._flush_lock:
            served = self._take()
            if not served:
                return None
            batch = combine(served, self.classes, self.frame_of)
            try:
                target = self._write(batch, window_start or datetime.now(UTC))
            except Exception as error:  # any store error: keep serving, count, retry next window
                logger.warning(
                    "profile store unavailable (%s); %d rows kept for the next window", error, len(batch)
                )
                self.stats.write_failures += 1
                self._requeue(served)
                if self.on_failure is not None:
                    self.on_failure(len(batch))
                return None
            self.stats.rows_written += len(batch)
            self.stats.files_written += 1
            if self.on_write is not None:
                self.on_write(len(batch))
            return target

    def _take(self) -> list[Served]:
        with self._lock:
            served = list(self._buffer)
            self._buffer.clear()
            self._buffered_rows = 0
            return served

    def _requeue(self, served: list[Served]) -> None:
        """Put an unwritten window back in front of what arrived since, in order."""
        with self._lock:
            self._buffer.extendleft(reversed(served))
            self._buffered_rows += sum(len(item) for item in served)

    def _write(self, batch: pd.DataFrame, window_start: datetime) -> str:
        """One profile per client (features + prediction) and, with an id column, a predictions file."""
        from .. import profiling, store  # noqa: PLC0415 - whylogs and fsspec: first used a window after start

        self._sequence += 1
        stamp = window_start.astimezone(UTC).strftime(profiling.STAMP)
        stem = f"{stamp}-{socket.gethostname()}-{os.getpid()}-{self._sequence:05d}"
        scores = [CONFIDENCE_COLUMN, *(probability_column(label) for label in self.classes)]
        unprofiled = [c for c in [self.id_column, CLIENT_COLUMN, *scores] if c and c in batch]
        written = ""
        for client, rows in batch.groupby(CLIENT_COLUMN, sort=True):
            view = profiling.profile(rows.drop(columns=unprofiled))
            name = profiling.profile_name(stem, str(client), self.model_version)
            written = store.put(self.directory, name, partial(profiling.write, view))
        if self.id_column and self.id_column in batch:
            logged = [self.id_column, PREDICTION_COLUMN, CLIENT_COLUMN, *scores]
            ids = batch[[column for column in logged if column in batch]].assign(
                **{VERSION_COLUMN: self.model_version}, served_at=window_start.timestamp()
            )
            store.put(self.directory, f"{stem}.predictions.parquet", lambda local: _write_parquet(ids, local))
        return written


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    partial = path.with_name(f".{path.name}.partial")
    frame.astype({frame.columns[0]: str}).to_parquet(partial, index=False)
    partial.replace(path)
