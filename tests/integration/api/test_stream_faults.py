"""The service's streams against the simulator's faults and quiet markets, end to end:
what is stored equals the exchange's klines, an exchange outage stays a confirmed-empty
gap (never flat candles), quiet minutes are the exchange's flat ones, a feed that goes
silent while connected is found out and reconnected, and after a drop the open minute
is made whole (Binance: aggTrades by id) or settled by the venue's own kline (Bybit)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from candlevault.domain.spans import SpanSet
from candlevault.domain.times import parse_time_ms
from tests.integration.api.service import Service, running_service, track
from tests.integration.api.test_candles import sim_klines
from tests.integration.api.test_streams import MINUTE, START, stream_settings
from tests.integration.exchanges.venues import Sim, running_sim
from tests.support.waiting import eventually

SPEED = 60.0
QUIET_START = parse_time_ms("2020-01-15T12:00:00Z")  # NEOETH: two minutes in three empty
OUTAGE = (QUIET_START + 9 * MINUTE, QUIET_START + 12 * MINUTE)
OUTAGE_SPEED = 30.0  # the 2 s grace is 67 ms of wall time: room for a loaded machine


async def stream_health(service: Service, series: int = 0) -> dict[str, Any]:
    status, body = await service.get("/api/v1/system/data-health")
    assert status == 200, body
    stream: dict[str, Any] = body["series"][series]["stream"]
    return stream


async def up(service: Service, series: int = 0) -> None:
    async def streaming() -> bool:
        stream = await stream_health(service, series)
        return stream["state"] == "up" and stream["last_event_ms"] is not None

    await eventually(streaming, timeout=20)


@contextlib.asynccontextmanager
async def streaming_eth(tmp_path: Path) -> AsyncIterator[tuple[Sim, Service]]:
    """A simulator at `SPEED` and the service streaming ETHUSDT from it, up."""
    async with (
        running_sim(paused=False, speed=SPEED, start_ms=START) as sim,
        running_service(sim, tmp_path, **stream_settings(sim)) as service,
    ):
        await track(service)
        await up(service)
        yield sim, service


async def matches_exchange(
    service: Service, sim: Sim, symbol: str, first: int, count: int, venue: str = "binance"
) -> dict[str, Any]:
    """Wait until the stored 1m candles [first, first + count) equal the simulator's."""
    last: list[str] = []  # the newest mismatch, for the failure message

    async def same() -> dict[str, Any] | None:
        status, body = await service.get(
            f"/api/v1/market/candles/{symbol}/1m", venue=venue, start_time=first,
            end_time=first + (count - 1) * MINUTE, cache_strategy="cache_only",
        )  # fmt: skip
        assert status == 200, body
        if venue == "binance":
            truth = await sim_klines(
                sim, symbol=symbol, interval="1m", startTime=first, limit=count
            )
        else:
            truth = await bybit_klines(sim, venue, symbol, first, count)
        truth = [row[:11] for row in truth if row[0] < first + count * MINUTE]
        if body["complete"] and body["candles"] == truth:
            return dict(body)
        mine = {row[0]: row for row in body["candles"]}
        theirs = {row[0]: row for row in truth}
        wrong = [(t, mine.get(t), theirs.get(t)) for t in sorted(mine.keys() | theirs.keys())
                 if mine.get(t) != theirs.get(t)]  # fmt: skip
        last[:] = [f"missing {body['missing']}, empty {body['empty']}, layers {body['layers']}, "
                   f"differing {wrong[:3]} ({len(wrong)})"]
        return None

    try:
        found = await eventually(same, timeout=30)
    except AssertionError as e:
        raise AssertionError(f"{e}; last: {last}") from None
    assert found is not None
    return found


async def bybit_klines(
    sim: Sim, venue: str, symbol: str, first: int, count: int
) -> list[list[Any]]:
    """The simulator's Bybit 1m klines as candlevault's v1 rows (no count, no taker)."""
    params: dict[str, Any] = {"category": venue.removeprefix("bybit-"), "symbol": symbol,
                              "interval": "1", "start": first, "limit": count}  # fmt: skip
    async with sim.session.get(sim.server.url + "/v5/market/kline", params=params) as reply:
        rows = orjson.loads(await reply.read())["result"]["list"]
    return [
        [int(r[0]), r[1], r[2], r[3], r[4], r[5], int(r[0]) + MINUTE - 1, r[6], None, None, None]
        for r in reversed(rows)
    ]


@pytest.mark.timeout(120)
async def test_an_outage_stays_empty_and_quiet_minutes_are_the_exchanges_flat_ones(
    tmp_path: Path,
) -> None:
    async with (
        running_sim(
            paused=False, speed=OUTAGE_SPEED, start_ms=QUIET_START, outages=(OUTAGE,)
        ) as sim,
        running_service(
            sim, tmp_path, **(stream_settings(sim) | {"bootstrap_since": QUIET_START - MINUTE})
        ) as service,
    ):
        await track(service)
        await track(service, "NEOETH")  # illiquid: most minutes see no trade
        await up(service)
        since = sim.clock.now_ms() - sim.clock.now_ms() % MINUTE + MINUTE
        assert since < OUTAGE[0] - 2 * MINUTE, "the service came up too late for the test"
        # The stream cannot tell an outage from quiet minutes: REST does, once the
        # minutes have settled (an empty answer about a minute just closed proves nothing).
        await eventually(lambda: sim.clock.now_ms() > OUTAGE[1] + 7 * MINUTE, timeout=60)
        count = (OUTAGE[1] + 2 * MINUTE - since) // MINUTE
        for symbol in ("ETHUSDT", "NEOETH"):
            status, body = await service.get(
                f"/api/v1/market/candles/{symbol}/1m", start_time=since, limit=count
            )
            assert status == 200, body
        eth = await matches_exchange(service, sim, "ETHUSDT", since, count)
        neo = await matches_exchange(service, sim, "NEOETH", since, count)
        stream = await stream_health(service)
    outage = SpanSet.of(*OUTAGE)
    assert SpanSet.from_pairs(eth["empty"]) == outage  # confirmed empty, as the exchange has it
    assert not [row for row in eth["candles"] if OUTAGE[0] <= row[0] < OUTAGE[1]]
    flat = [row for row in neo["candles"] if float(row[5]) == 0 and row[0] >= since]
    assert flat, "NEOETH had no quiet minute to check"
    assert stream["closed_minutes"] > 0
    assert stream["silent_feeds"] == 0  # the outage and the quiet minutes are no fault


async def test_a_feed_silent_while_connected_is_found_out_and_reconnected(tmp_path: Path) -> None:
    async with streaming_eth(tmp_path) as (sim, service):
        await faults(sim, {"ws_silent": True})
        silent_from = sim.clock.now_ms()

        async def found_out() -> dict[str, Any]:
            stream = await stream_health(service)
            assert stream["silent_feeds"] >= 1
            assert stream["silences"] >= 1  # reconnected on the finding
            return stream

        await eventually(found_out, timeout=30)
        await faults(sim, {"ws_silent": False})
        resumed = sim.clock.now_ms()
        await eventually(lambda: sim.clock.now_ms() > resumed + 4 * MINUTE, timeout=20)
        first = silent_from - silent_from % MINUTE - MINUTE
        count = (resumed - first) // MINUTE + 2
        await matches_exchange(service, sim, "ETHUSDT", first, count)


async def test_binance_makes_the_minute_after_a_drop_whole_from_aggtrades(tmp_path: Path) -> None:
    async with streaming_eth(tmp_path) as (sim, service):
        before = (await stream_health(service))["backfilled_trades"]
        await drop(sim)

        async def backfilled() -> dict[str, Any]:
            stream = await stream_health(service)
            assert stream["reconnects"] >= 1
            assert stream["backfilled_trades"] > before
            return stream

        await eventually(backfilled, timeout=30)
        stats = await sim.stats()
        assert stats["venues"]["binance"]["requests"].get("/api/v3/aggTrades", 0) >= 2
        # The open candle, from the builder made whole, equals the exchange's.
        await eventually(lambda: 20_000 <= sim.clock.now_ms() % MINUTE <= 35_000, timeout=5)
        sim.world.clock.pause()
        await eventually(lambda: forming_equal(service, sim), timeout=5)


async def forming_equal(service: Service, sim: Sim) -> bool:
    """The forming kline through candlevault equals the simulator's own."""
    params: dict[str, Any] = {"symbol": "ETHUSDT", "interval": "1m", "limit": 1}
    status, mine = await service.get("/api/v3/klines", **params)
    assert status == 200, mine
    theirs = await sim_klines(sim, **params)
    assert mine == theirs
    return True


async def test_bybit_settles_the_minute_after_a_drop_with_its_own_closed_kline(
    tmp_path: Path,
) -> None:
    async with running_sim(paused=False, speed=SPEED, start_ms=START) as sim:
        settings = stream_settings(sim) | {"symbols": "bybit-linear:ETHUSDT"}
        async with running_service(sim, tmp_path, **settings) as service:
            await eventually(lambda: jobs_done(service), timeout=20)
            await up(service)
            await drop(sim)
            dropped = sim.clock.now_ms()

            async def settled() -> dict[str, Any]:
                stream = await stream_health(service)
                assert stream["reconnects"] >= 1
                assert stream["settled_minutes"] >= 1  # the minute it came back in
                return stream

            await eventually(settled, timeout=30)
            await eventually(lambda: sim.clock.now_ms() > dropped + 3 * MINUTE, timeout=10)
            first = dropped - dropped % MINUTE - MINUTE
            await matches_exchange(service, sim, "ETHUSDT", first, 3, venue="bybit-linear")


async def jobs_done(service: Service) -> bool:
    status, body = await service.admin("GET", "/api/v1/admin/bootstrap/status")
    assert status == 200, body
    return bool(body["jobs"]) and all(j["state"] == "done" for j in body["jobs"])


async def faults(sim: Sim, patch: dict[str, Any]) -> None:
    async with sim.session.post(sim.server.url + "/_sim/faults", json=patch) as reply:
        assert reply.status == 200, await reply.text()


async def drop(sim: Sim) -> None:
    async with sim.session.post(sim.server.url + "/_sim/ws/drop") as reply:
        assert orjson.loads(await reply.read())["dropped"] >= 1


async def test_duplicated_reordered_and_dropped_frames_leave_every_minute_exact(
    tmp_path: Path,
) -> None:
    async with streaming_eth(tmp_path) as (sim, service):
        began = sim.clock.now_ms()
        await faults(sim, {"ws_duplicate": 0.2, "ws_reorder": 0.2, "ws_drop_every_s": 2.0})
        await eventually(lambda: sim.clock.now_ms() > began + 6 * MINUTE, timeout=20)
        await faults(sim, {"ws_duplicate": 0.0, "ws_reorder": 0.0, "ws_drop_every_s": 0.0})
        ended = sim.clock.now_ms()
        await eventually(lambda: sim.clock.now_ms() > ended + 3 * MINUTE, timeout=20)
        stats = (await sim.stats())["ws"]
        first = began - began % MINUTE
        await matches_exchange(service, sim, "ETHUSDT", first, (ended - first) // MINUTE + 2)
        stream = await stream_health(service)
    assert stats["duplicated"]["binance"] > 0
    assert stats["reordered"]["binance"] > 0
    assert stats["dropped"]["binance"] >= 2
    assert stream["reconnects"] >= 2


async def test_every_timeframe_served_while_streaming_equals_the_exchanges(
    tmp_path: Path,
) -> None:
    """The closed and the open candles of all 15 timeframes, read while the stream builds
    the minutes, equal the simulator's own klines at the same moment."""
    async with streaming_eth(tmp_path) as (sim, service):
        began = sim.clock.now_ms()
        await eventually(lambda: sim.clock.now_ms() > began + 16 * MINUTE, timeout=30)
        for tf in INTERVALS:  # the history each bucket needs, fetched once, ahead
            status, body = await service.get("/api/v3/klines", **klines(tf))
            assert status == 200, body
        await eventually(lambda: 15_000 <= sim.clock.now_ms() % MINUTE <= 25_000, timeout=5)
        sim.world.clock.pause()

        async def all_equal() -> bool:
            for tf in INTERVALS:
                status, mine = await service.get("/api/v3/klines", **klines(tf))
                assert status == 200, mine
                assert mine == await sim_klines(sim, **klines(tf)), tf
            return True

        await eventually(all_equal, timeout=5)


INTERVALS = ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d",
             "1w", "1M")  # fmt: skip


def klines(interval: str) -> dict[str, Any]:
    return {"symbol": "ETHUSDT", "interval": interval, "limit": 3}
