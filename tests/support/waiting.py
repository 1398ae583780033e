"""Wait for a condition instead of sleeping: the one place in the tests that sleeps.

`await eventually(condition)` polls a sync or async condition until it returns something
truthy and returns that value. An `AssertionError` raised by the condition counts as "not
yet" (so a condition may be a small function full of asserts); any other exception is a
bug and propagates at once. On timeout it fails with what the condition last said, so the
failure explains itself instead of reading "timed out".
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar, cast, overload

T = TypeVar("T")


@overload
async def eventually(
    condition: Callable[[], Awaitable[T]],
    *,
    timeout: float = ...,  # noqa: ASYNC109
    interval: float = ...,
    message: str = ...,
) -> T: ...


@overload
async def eventually(
    condition: Callable[[], T],
    *,
    timeout: float = ...,  # noqa: ASYNC109
    interval: float = ...,
    message: str = ...,
) -> T: ...


async def eventually(
    condition: Callable[[], T | Awaitable[T]],
    *,
    # A polling deadline that ends in an explanatory AssertionError, not a cancellation
    # scope, so asyncio.timeout() (what ASYNC109 suggests) would lose the message.
    timeout: float = 5.0,  # noqa: ASYNC109
    interval: float = 0.01,
    message: str = "",
) -> T:
    """Await `condition` until it is truthy and return its value; fail after `timeout` s."""
    if timeout <= 0 or interval <= 0:
        raise ValueError("timeout and interval must be positive")
    deadline = time.monotonic() + timeout
    attempts = 0
    last_value: object = None
    last_error: AssertionError | None = None
    while True:
        attempts += 1
        try:
            value = await _call(condition, deadline)
        except AssertionError as e:
            last_error = e
        else:
            if value:
                return value
            last_value, last_error = value, None
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        await asyncio.sleep(min(interval, remaining))
    outcome = f"raised {last_error!r}" if last_error is not None else f"returned {last_value!r}"
    details = f"{message}: " if message else ""
    raise AssertionError(
        f"{details}{_describe(condition)} was not truthy within {timeout:g}s "
        f"({attempts} attempts); last it {outcome}"
    ) from last_error


async def _call(condition: Callable[[], T | Awaitable[T]], deadline: float) -> T:
    result = condition()
    if not inspect.isawaitable(result):
        return result
    try:
        async with asyncio.timeout_at(_loop_deadline(deadline)):
            return await cast(Awaitable[T], result)
    except TimeoutError:
        raise AssertionError("the awaited condition did not return before the deadline") from None


def _loop_deadline(monotonic_deadline: float) -> float:
    # asyncio deadlines are in loop time; convert from the monotonic clock used above.
    return asyncio.get_running_loop().time() + max(0.0, monotonic_deadline - time.monotonic())


def _describe(condition: Callable[..., object]) -> str:
    name = getattr(condition, "__qualname__", None) or repr(condition)
    code = getattr(condition, "__code__", None)
    where = f" ({code.co_filename.rsplit('/', 1)[-1]}:{code.co_firstlineno})" if code else ""
    return f"condition {name}{where}"


def wait_until(
    condition: Callable[[], T],
    *,
    timeout: float = 5.0,
    interval: float = 0.01,
    message: str = "",
) -> T:
    """`eventually` for synchronous tests (those that drive subprocesses)."""
    return asyncio.run(eventually(condition, timeout=timeout, interval=interval, message=message))
