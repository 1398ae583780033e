"""The v1 read path over real HTTP: every layer, against the simulator's own klines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from candlevault.domain.times import parse_time_ms
from tests.integration.api.service import running_service
from tests.integration.exchanges.venues import START_MS, Sim, running_sim

CANDLES = "/api/v1/market/candles/{}/{}"
MINUTE = 60_000


async def sim_klines(sim: Sim, path: str = "/api/v3/klines", **params: Any) -> list[list[Any]]:
    """The simulator's own klines (what the exchange says)."""
    async with sim.session.get(sim.server.url + path, params=params) as reply:
        assert reply.status == 200
        rows: list[list[Any]] = orjson.loads(await reply.read())
    return rows


async def kline_requests(sim: Sim, venue: str = "binance") -> int:
    stats = await sim.stats()
    return sum(n for p, n in stats["venues"][venue]["requests"].items() if "klines" in p)


async def test_newest_candles_equal_the_exchange_then_come_from_the_hot_cache(
    tmp_path: Path,
) -> None:
    async with running_sim() as sim, running_service(sim, tmp_path) as service:
        status, first = await service.get(CANDLES.format("BTCUSDT", "1m"), limit=50)
        assert status == 200, first
        truth = await sim_klines(sim, symbol="BTCUSDT", interval="1m", limit=50)
        assert first["candles"] == [row[:11] for row in truth]
        assert first["open_candle"] is True
        assert first["candles"][-1][0] == START_MS - START_MS % MINUTE  # forming, last
        assert first["complete"] is True
        assert "exchange" in first["layers"]  # never read before: fetched and written back
        before = await kline_requests(sim)
        _, again = await service.get(CANDLES.format("BTCUSDT", "1m"), limit=50)
        assert again["candles"] == first["candles"]
        assert again["layers"] == ["forming", "hot"]
        assert await kline_requests(sim) == before  # the open candle is still fresh


async def test_higher_timeframes_are_derived_and_equal_the_exchange(tmp_path: Path) -> None:
    async with running_sim() as sim, running_service(sim, tmp_path) as service:
        for tf in ("5m", "1h", "4h"):
            status, body = await service.get(CANDLES.format("ETHUSDT", tf), limit=20)
            assert status == 200, body
            truth = await sim_klines(sim, symbol="ETHUSDT", interval=tf, limit=20)
            assert body["candles"] == [row[:11] for row in truth], tf
            assert body["open_candle"] is True


async def test_a_window_in_the_past_pages_like_binance(tmp_path: Path) -> None:
    start = parse_time_ms("2024-01-10T00:00:30Z")  # inside a minute: the next one first
    end = parse_time_ms("2024-01-10T02:00:00Z")
    async with running_sim() as sim, running_service(sim, tmp_path) as service:
        params = {"start_time": "2024-01-10T00:00:30Z", "end_time": str(end), "limit": 100}
        status, body = await service.get(CANDLES.format("BTCUSDT", "1m"), **params)
        assert status == 200, body
        truth = await sim_klines(
            sim, symbol="BTCUSDT", interval="1m", startTime=start, endTime=end, limit=100
        )
        assert body["candles"] == [row[:11] for row in truth]
        assert body["count"] == 100
        assert body["open_candle"] is False
        assert body["start_time"] == start + 30_000


async def test_cache_only_reports_what_is_missing_and_asks_nothing(tmp_path: Path) -> None:
    async with running_sim() as sim, running_service(sim, tmp_path) as service:
        before = await kline_requests(sim)
        status, body = await service.get(
            CANDLES.format("BTCUSDT", "1m"),
            start_time="2024-01-14T00:00:00Z",
            limit=10,
            cache_strategy="cache_only",
        )
        assert status == 200, body
        assert body["candles"] == []
        assert body["complete"] is False
        start = parse_time_ms("2024-01-14T00:00:00Z")
        assert body["missing"] == [[start, start + 10 * MINUTE]]
        assert await kline_requests(sim) == before


async def test_force_fresh_fetches_again_and_auto_does_not(tmp_path: Path) -> None:
    params = {"start_time": "2024-01-12T00:00:00Z", "limit": 100}
    async with running_sim() as sim, running_service(sim, tmp_path) as service:
        path = CANDLES.format("BTCUSDT", "1m")
        _, first = await service.get(path, **params)
        after_first = await kline_requests(sim)
        _, cached = await service.get(path, **params)
        assert await kline_requests(sim) == after_first
        assert "exchange" not in cached["layers"]
        _, fresh = await service.get(path, cache_strategy="force_fresh", **params)
        assert await kline_requests(sim) == after_first + 1
        assert "exchange" in fresh["layers"]
        assert fresh["candles"] == first["candles"] == cached["candles"]


async def test_newest_candles_across_an_exchange_outage_reach_further_back(tmp_path: Path) -> None:
    """Binance's 2018-02-08 maintenance left 28 hours without candles: the newest 500
    before a time just after it are the simulator's 500, reaching back past the outage."""
    end = parse_time_ms("2018-02-09T09:39:00Z")  # 100 minutes after the outage ended
    async with running_sim() as sim, running_service(sim, tmp_path) as service:
        path = CANDLES.format("BTCUSDT", "1m")
        status, body = await service.get(path, end_time=str(end), limit=500)
        assert status == 200, body
        _, again = await service.get(path, end_time=str(end), limit=500)
        truth = await sim_klines(sim, symbol="BTCUSDT", interval="1m", endTime=end, limit=500)
    assert body["candles"] == again["candles"] == [row[:11] for row in truth]
    assert body["count"] == 500
    assert body["complete"] is True
    outage = [parse_time_ms("2018-02-08T04:00Z"), parse_time_ms("2018-02-09T08:00Z")]
    assert body["empty"] == [outage]
