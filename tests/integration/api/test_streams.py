"""The service with its streams up: trades become the stored candles and the open one,
with no REST request for either, and a dropped feed is repaired from REST exactly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from candlevault.domain.times import parse_time_ms
from tests.integration.api.service import Service, running_service, track
from tests.integration.api.test_candles import sim_klines
from tests.integration.exchanges.venues import Sim, running_sim
from tests.support.waiting import eventually

MINUTE = 60_000
SPEED = 60.0  # a sim minute a wall second
START = parse_time_ms("2024-01-15T12:00:00Z")


def stream_settings(sim: Sim) -> dict[str, Any]:
    env = sim.server.env()
    return {
        "streams": True,
        "binance_ws_url": env["CANDLEVAULT_BINANCE_WS_URL"],
        "binance_usdm_ws_url": env["CANDLEVAULT_BINANCE_USDM_WS_URL"],
        "bybit_ws_url": env["CANDLEVAULT_BYBIT_WS_URL"],
        "bootstrap_since": START - 60 * MINUTE,
        "gap_monitor_s": 3600.0,
    }


async def stored_minutes(service: Service, first: int, count: int) -> list[list[Any]]:
    status, body = await service.get(
        "/api/v1/market/candles/ETHUSDT/1m",
        start_time=first,
        limit=count,
        cache_strategy="cache_only",
    )
    assert status == 200, body
    assert body["complete"], body
    rows: list[list[Any]] = body["candles"]
    return rows


async def kline_requests(sim: Sim) -> int:
    stats = await sim.stats()
    return int(stats["venues"]["binance"]["requests"].get("/api/v3/klines", 0))


async def test_streamed_trades_become_the_stored_and_the_open_candles(tmp_path: Path) -> None:
    async with running_sim(paused=False, speed=SPEED, start_ms=START) as sim:
        settings = stream_settings(sim)
        async with running_service(sim, tmp_path, **settings) as service:
            await track(service)

            async def streaming() -> int:
                minute = sim.clock.now_ms() - sim.clock.now_ms() % MINUTE
                status, body = await service.get("/api/v1/system/data-health")
                assert status == 200
                assert body["series"][0]["stream"]["connected"] is True
                return minute

            since = await eventually(streaming, timeout=15)
            # Three whole minutes closed by the stream after it came up.
            await eventually(lambda: sim.clock.now_ms() > since + 5 * MINUTE, timeout=15)
            before = await kline_requests(sim)
            status, newest = await service.get("/api/v1/market/candles/ETHUSDT/1m", limit=3)
            assert status == 200, newest
            assert newest["open_candle"] is True
            assert "exchange" not in newest["layers"]
            assert await kline_requests(sim) == before  # the open candle came from the stream

            first = since + MINUTE
            truth = await sim_klines(sim, symbol="ETHUSDT", interval="1m", startTime=first, limit=3)

            async def written() -> list[list[Any]]:
                rows = await stored_minutes(service, first, 3)
                assert rows == [row[:11] for row in truth]
                return rows

            await eventually(written, timeout=15)
            async with service.http.get(service.url + "/metrics") as reply:
                text = await reply.text()
    assert 'candlevault_stream_connected{venue="binance"} 1.0' in text
    closed = [line for line in text.splitlines() if line.startswith("candlevault_stream_minutes")]
    assert any('kind="closed"' in line and not line.endswith(" 0.0") for line in closed), closed


async def test_a_dropped_feed_is_repaired_from_rest(tmp_path: Path) -> None:
    async with running_sim(paused=False, speed=SPEED, start_ms=START) as sim:
        settings = stream_settings(sim)
        async with running_service(sim, tmp_path, **settings) as service:
            await track(service)

            async def streaming() -> bool:
                _, body = await service.get("/api/v1/system/data-health")
                stream = body["series"][0]["stream"]
                return stream["state"] == "up" and stream["last_event_ms"] is not None

            await eventually(streaming, timeout=15)  # trades flowed before the drop
            async with sim.session.post(sim.server.url + "/_sim/ws/drop") as reply:
                assert orjson.loads(await reply.read())["dropped"] >= 1
            dropped_at = sim.clock.now_ms()
            await eventually(lambda: sim.clock.now_ms() > dropped_at + 4 * MINUTE, timeout=15)
            first = dropped_at - dropped_at % MINUTE - MINUTE
            truth = await sim_klines(sim, symbol="ETHUSDT", interval="1m", startTime=first, limit=4)

            async def repaired() -> list[list[Any]]:
                rows = await stored_minutes(service, first, 4)
                assert rows == [row[:11] for row in truth]
                return rows

            await eventually(repaired, timeout=30)

            async def reconnected() -> dict[str, Any]:
                _, health = await service.get("/api/v1/system/data-health")
                stream: dict[str, Any] = health["series"][0]["stream"]
                assert stream["reconnects"] >= 1
                assert stream["gaps"] >= 1  # reported with the first event after it
                return stream

            stream = await eventually(reconnected, timeout=30)
    assert stream["state"] == "up"


async def test_a_bucket_just_closed_is_served_from_the_minutes_the_stream_still_holds(
    tmp_path: Path,
) -> None:
    """Right after a 5m boundary its last minute is still within the stream's grace (not
    stored): the 5m reply has the bucket anyway, folded from the stored part and that
    minute, equal to the exchange's, and no exchange request was made for it."""
    async with running_sim(paused=False, speed=30.0, start_ms=START) as sim:
        settings = stream_settings(sim) | {"stream_grace_s": 60.0}  # 2 s of wall time
        async with running_service(sim, tmp_path, **settings) as service:
            await track(service)

            async def streaming() -> int:
                _, body = await service.get("/api/v1/system/data-health")
                assert body["series"][0]["stream"]["state"] == "up"
                return sim.clock.now_ms()

            up = await eventually(streaming, timeout=15)
            # A bucket after the minute the stream came up in (repaired from REST).
            bucket = up - up % (5 * MINUTE) + 5 * MINUTE
            await eventually(lambda: sim.clock.now_ms() >= bucket + 5 * MINUTE + 500, timeout=30)
            before = await kline_requests(sim)
            status, body = await service.get("/api/v1/market/candles/ETHUSDT/5m", limit=2)
            read_at = sim.clock.now_ms()
            assert status == 200, body
            assert await kline_requests(sim) == before
            assert read_at < bucket + 5 * MINUTE + 60_000  # the minute was still held
            truth = await sim_klines(
                sim, symbol="ETHUSDT", interval="5m", startTime=bucket, limit=1
            )
    assert body["candles"][0] == truth[0][:11], body
    assert body["complete"] is True
    assert "exchange" not in body["layers"]
