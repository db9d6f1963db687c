"""Adaptive micro-batching: requests that arrive while the model is busy share its next call.

A tree ensemble predicts 512 rows in about the time it takes for one, so throughput lives in
batching. BentoML's built-in dispatcher waits to grow batches and cancels requests (HTTP 503)
whenever its latency estimate crosses ``max_queue_ms``; under 64 connections with a tight
budget it rejected most requests. This batcher never waits on purpose: when the model is idle
a request runs at once (no added latency at low load); while a batch runs, new requests queue
and the next call takes all of them, up to ``max_batch_rows`` rows. Batch size therefore
follows load. The latency budget is enforced by admission: a request is refused only when
more than a full batch is already queued and clearing it would take longer than the budget
(true overload, not a burst), and the refusal names the budget so callers back off or scale.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Item = TypeVar("Item")
Out = TypeVar("Out")


class OverloadedError(RuntimeError):
    """The queue already holds more work than the latency budget allows."""


@dataclass
class _Job(Generic[Item, Out]):
    items: Sequence[Item]
    future: asyncio.Future[list[Out]]


@dataclass
class CostModel:
    """Seconds per batch as ``fixed + per_row * rows``, learnt online (exponential average)."""

    fixed: float = 0.004
    per_row: float = 0.00002
    smoothing: float = 0.2
    observed: int = field(default=0)

    def estimate(self, rows: int) -> float:
        """Expected seconds to predict ``rows`` rows in one call."""
        return self.fixed + self.per_row * rows

    def update(self, rows: int, seconds: float) -> None:
        """Attribute the surprise to the per-row cost for big batches, to the fixed cost otherwise."""
        self.observed += 1
        error = seconds - self.estimate(rows)
        if rows > 64:
            self.per_row = max(1e-7, self.per_row + self.smoothing * error / rows)
        else:
            self.fixed = max(1e-5, self.fixed + self.smoothing * error)


class MicroBatcher(Generic[Item, Out]):
    """Runs ``predict`` on concatenated request items in a worker thread, one batch at a time."""

    def __init__(
        self, predict: Callable[[list[Item]], list[Out]], max_batch_rows: int, max_queue_s: float
    ) -> None:
        self._predict = predict
        self.max_batch_rows = max_batch_rows
        self.max_queue_s = max_queue_s
        self.cost = CostModel()
        self._queue: deque[_Job[Item, Out]] = deque()
        self._queued_rows = 0
        self._wake: asyncio.Event | None = None
        self._runner: asyncio.Task[None] | None = None
        self.on_batch: Callable[[int, float], None] | None = None

    def queued_wait(self) -> float:
        """Estimated seconds until the rows already queued are answered."""
        batches = -(-self._queued_rows // self.max_batch_rows)
        return batches * self.cost.fixed + self._queued_rows * self.cost.per_row

    def over_budget(self) -> bool:
        """More than a full batch is queued and clearing it would take longer than the budget.

        Rows that fit in the next call are never refused: they leave with it, so refusing them
        would not make anyone faster. Only a backlog of several batches is shed.
        """
        return self._queued_rows >= self.max_batch_rows and self.queued_wait() > self.max_queue_s

    async def submit(self, items: Sequence[Item]) -> list[Out]:
        """Queue one request's items and wait for their outputs, in order."""
        if self.over_budget():
            raise OverloadedError(
                f"{self._queued_rows} rows are queued, more than the {self.max_queue_s * 1000:.0f} ms "
                "latency budget allows; retry later or add workers"
            )
        loop = asyncio.get_running_loop()
        if self._runner is None or self._runner.done():
            self._wake = asyncio.Event()
            self._runner = loop.create_task(self._run())
        job: _Job[Item, Out] = _Job(items, loop.create_future())
        self._queue.append(job)
        self._queued_rows += len(items)
        assert self._wake is not None
        self._wake.set()
        return await job.future

    async def _run(self) -> None:
        """Forever: wait for work, take up to ``max_batch_rows`` rows, predict off the event loop."""
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                jobs = self._take()
                await self._dispatch(jobs)

    def _take(self) -> list[_Job[Item, Out]]:
        """Whole requests only (a request is never split), at least one per batch."""
        jobs = [self._queue.popleft()]
        rows = len(jobs[0].items)
        while self._queue and rows + len(self._queue[0].items) <= self.max_batch_rows:
            rows += len(self._queue[0].items)
            jobs.append(self._queue.popleft())
        self._queued_rows -= rows
        return jobs

    async def _dispatch(self, jobs: list[_Job[Item, Out]]) -> None:
        """One model call for all jobs; each job gets its slice of the outputs (or the error)."""
        items = [item for job in jobs for item in job.items]
        started = time.perf_counter()
        try:
            outputs = await asyncio.to_thread(self._predict, items)
        except Exception as error:  # every waiting request must learn the batch failed
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(error)
            return
        elapsed = time.perf_counter() - started
        self.cost.update(len(items), elapsed)
        if self.on_batch is not None:
            self.on_batch(len(items), elapsed)
        start = 0
        for job in jobs:
            end = start + len(job.items)
            if not job.future.done():
                job.future.set_result(outputs[start:end])
            start = end
