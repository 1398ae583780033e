"""WorkerPool: work runs on the pool's threads with their own resource, errors come back."""

from __future__ import annotations

import asyncio
import threading

import pytest

from candlevault.storage.workers import WorkerPool


class Resource:
    def __init__(self) -> None:
        self.thread = threading.current_thread().name
        self.closed = False


async def test_each_thread_uses_its_own_resource_and_closes_it() -> None:
    made: list[Resource] = []

    def open_resource() -> Resource:
        made.append(Resource())
        return made[-1]

    def close(resource: Resource) -> None:
        resource.closed = True

    pool = WorkerPool(2, "test-pool", open_resource, close)
    started = threading.Barrier(2)

    def work(resource: Resource) -> str:
        started.wait(timeout=10)  # both threads busy at once: each built its own resource
        assert resource.thread == threading.current_thread().name
        return resource.thread

    names = await asyncio.gather(pool.run(work), pool.run(work))
    await pool.aclose()
    assert sorted(names) == ["test-pool-0", "test-pool-1"]
    assert len(made) == 2
    assert all(r.closed for r in made)


async def test_an_error_reaches_the_caller_and_the_pool_goes_on() -> None:
    pool: WorkerPool[int] = WorkerPool(1, "test-pool", lambda: 7, lambda _: None)

    def boom(_: int) -> int:
        raise ValueError("bad work")

    with pytest.raises(ValueError, match="bad work"):
        await pool.run(boom)
    assert await pool.run(lambda r: r * 6) == 42
    await pool.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await pool.run(lambda r: r)


async def test_a_cancelled_caller_does_not_break_the_pool() -> None:
    pool: WorkerPool[int] = WorkerPool(1, "test-pool", lambda: 1, lambda _: None)
    gate = threading.Event()
    slow = asyncio.create_task(pool.run(lambda r: gate.wait(10) and r))
    await asyncio.sleep(0)
    slow.cancel()
    gate.set()
    with pytest.raises(asyncio.CancelledError):
        await slow
    assert await pool.run(lambda r: r + 1) == 2
    await pool.aclose()
