"""Micro-batching: concurrent requests share model calls; answers stay with their requests."""

from __future__ import annotations

import asyncio
import time

import pytest

from {{ cookiecutter.package_name }}.serving.batching import CostModel, MicroBatcher, OverloadedError


def slow_double(calls: list[int]):
    def predict(items: list[int]) -> list[int]:
        calls.append(len(items))
        time.sleep(0.02)
        return [2 * item for item in items]

    return predict


def test_batching__concurrent_requests_share_calls_and_keep_their_answers() -> None:
    calls: list[int] = []
    batcher = MicroBatcher(slow_double(calls), max_batch_rows=100, max_queue_s=10)

    async def scenario() -> list[list[int]]:
        return await asyncio.gather(*(batcher.submit([i, i + 1000]) for i in range(40)))

    answers = asyncio.run(scenario())
    assert answers == [[2 * i, 2 * (i + 1000)] for i in range(40)]
    assert sum(calls) == 80
    assert len(calls) < 40  # requests that queued behind a running batch shared the next call


def test_batching__a_batch_never_exceeds_max_rows_nor_splits_a_request() -> None:
    calls: list[int] = []
    batcher = MicroBatcher(slow_double(calls), max_batch_rows=10, max_queue_s=10)

    async def scenario() -> None:
        await asyncio.gather(*(batcher.submit([1, 2, 3]) for _ in range(20)))

    asyncio.run(scenario())
    assert max(calls) <= 10
    assert all(size % 3 == 0 for size in calls)


def test_batching__lone_request_is_not_held_back() -> None:
    batcher = MicroBatcher(lambda items: items, max_batch_rows=512, max_queue_s=1)

    async def one() -> float:
        started = time.perf_counter()
        await batcher.submit([1])
        return time.perf_counter() - started

    assert asyncio.run(one()) < 0.5


def test_batching__queue_beyond_the_latency_budget_is_refused() -> None:
    batcher = MicroBatcher(slow_double([]), max_batch_rows=1, max_queue_s=0.05)
    batcher.cost = CostModel(fixed=0.02, per_row=0.0)

    async def flood() -> list[object]:
        return await asyncio.gather(*(batcher.submit([i]) for i in range(20)), return_exceptions=True)

    outcomes = asyncio.run(flood())
    refused = [o for o in outcomes if isinstance(o, OverloadedError)]
    assert refused
    assert "latency budget" in str(refused[0])
    assert [o for o in outcomes if isinstance(o, list)]


def test_batching__model_error_reaches_every_waiting_request() -> None:
    def broken(items: list[int]) -> list[int]:
        raise RuntimeError("model exploded")

    batcher = MicroBatcher(broken, max_batch_rows=10, max_queue_s=10)

    async def scenario() -> list[object]:
        return await asyncio.gather(*(batcher.submit([1]) for _ in range(3)), return_exceptions=True)

    assert all(isinstance(o, RuntimeError) for o in asyncio.run(scenario()))


@pytest.mark.parametrize(("rows", "seconds"), [(1, 0.01), (512, 0.02)])
def test_batching__cost_model_learns_from_observations(rows: int, seconds: float) -> None:
    cost = CostModel()
    for _ in range(50):
        cost.update(rows, seconds)
    assert cost.estimate(rows) == pytest.approx(seconds, rel=0.05)
