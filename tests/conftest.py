"""Suite-wide fixtures: a real Redis, found or started once per session.

`redis_url` resolves the server (see `tests/support/redis_server.py` for the order). When
no Redis can be had, tests that need one are skipped locally but fail under CI, so a
broken CI image cannot turn the Redis tests into silent skips. `redis_namespace` gives
each test its own client and key prefix and removes that prefix's keys afterwards.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis

from tests.support.redis_namespace import RedisNamespace, open_namespace
from tests.support.redis_server import resolve_redis, unavailable

REDIS_FIXTURES = frozenset({"redis_url", "redis_namespace", "redis_client", "redis_prefix"})
REDIS_SOURCE = pytest.StashKey[str]()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses a Redis fixture `redis`, so `-m "not redis"` works."""
    for item in items:
        if REDIS_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.redis)


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    """Say which Redis the session used, so a fallback is visible in the output."""
    if REDIS_SOURCE in config.stash:
        terminalreporter.write_line(f"redis: {config.stash[REDIS_SOURCE]}")


@pytest.fixture(scope="session")
def redis_url(pytestconfig: pytest.Config) -> Iterator[str]:
    """Return the URL (with its test DB) of the Redis this session uses."""
    with contextlib.ExitStack() as stack:
        found = resolve_redis(stack)
        pytestconfig.stash[REDIS_SOURCE] = found.source
        if found.url is None:
            unavailable("no Redis for the tests: " + "; ".join(found.tried))
        yield found.url


@pytest.fixture
async def redis_namespace(
    redis_url: str, request: pytest.FixtureRequest
) -> AsyncIterator[RedisNamespace]:
    """Give the test a client and a unique key prefix; delete the prefix's keys after."""
    async with open_namespace(redis_url, label=request.node.name) as namespace:
        yield namespace


@pytest.fixture
def redis_client(redis_namespace: RedisNamespace) -> aioredis.Redis:
    """Return the test's async Redis client (bytes in, bytes out)."""
    return redis_namespace.client


@pytest.fixture
def redis_prefix(redis_namespace: RedisNamespace) -> str:
    """Return the key prefix that the test owns; its keys are deleted after the test."""
    return redis_namespace.prefix
