"""`StreamConnection` on the simulator's streams: real sockets, the simulator in-process.

What a connection hands on, folded per minute, must equal the venue's REST klines of
those minutes (the simulator's stream and REST come from one tape); symbols added at
run time start streaming; a feed that goes quiet is closed by the watchdog.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from candlevault.domain.decimals import Precision
from candlevault.domain.timeframes import MINUTE_MS
from candlevault.domain.venues import Venue
from candlevault.realtime.connection import StreamConnection, StreamEnded
from tests.integration.exchanges.venues import Sim
from tests.integration.realtime.streams import (
    Collected,
    assert_minutes_match,
    live_sim,
    precisions,
    ws_url,
)
from tests.support.waiting import eventually


@contextlib.asynccontextmanager
async def running(
    sim: Sim, venue: Venue, symbols: dict[str, Precision], **options: Any
) -> AsyncIterator[tuple[StreamConnection, Collected, asyncio.Task[None]]]:
    """Run a connection in a task for the block; cancel it after."""
    got = Collected()
    conn = StreamConnection(
        sim.session,
        venue,
        ws_url(sim, venue),
        symbols,
        on_trades=got.on_trades,
        on_alive=got.on_alive,
        **options,
    )
    task = asyncio.create_task(conn.run())
    try:
        yield conn, got, task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, StreamEnded):
            await task


@pytest.mark.parametrize(
    "venue", [Venue.BINANCE, Venue.BINANCE_USDM, Venue.BYBIT_SPOT, Venue.BYBIT_LINEAR]
)
async def test_streamed_trades_fold_into_the_rest_klines(venue: Venue) -> None:
    async with live_sim() as sim:
        symbols = await precisions(sim, venue, "BTCUSDT")
        async with running(sim, venue, symbols) as (conn, got, _):
            await eventually(lambda: got.trades.get("BTCUSDT"), timeout=10)
            first = got.first_whole_minute("BTCUSDT")
            minutes = [first + i * MINUTE_MS for i in range(3)]
            await eventually(lambda: got.alive_past(minutes[-1]), timeout=15)
            assert conn.connected
            assert conn.malformed == 0
            assert not conn.refusals
            assert conn.last_message_ms is not None
            assert conn.last_event_ms is not None
        trades = got.trades["BTCUSDT"]
        assert all(t.count >= 1 for t in trades)
        if venue.exchange == "bybit":
            assert all(isinstance(t.trade_id, str) and t.count == 1 for t in trades)
        await assert_minutes_match(sim, venue, "BTCUSDT", symbols["BTCUSDT"], trades, minutes)


@pytest.mark.parametrize("venue", [Venue.BINANCE, Venue.BYBIT_LINEAR])
async def test_a_symbol_added_at_run_time_streams_and_one_removed_stops(venue: Venue) -> None:
    async with live_sim() as sim:
        symbols = await precisions(sim, venue, "BTCUSDT", "ETHUSDT")
        btc = {"BTCUSDT": symbols["BTCUSDT"]}
        async with running(sim, venue, btc) as (conn, got, _):
            await eventually(lambda: got.trades.get("BTCUSDT"), timeout=10)
            assert "ETHUSDT" not in got.trades
            await conn.subscribe("ETHUSDT", symbols["ETHUSDT"])
            await eventually(lambda: got.trades.get("ETHUSDT"), timeout=10)
            first = got.first_whole_minute("ETHUSDT")
            await eventually(lambda: got.alive_past(first), timeout=10)
            await conn.unsubscribe("BTCUSDT")
            btc_count, alive = len(got.trades["BTCUSDT"]), got.alive_ms
            assert alive is not None
            await eventually(lambda: got.alive_past(alive + MINUTE_MS), timeout=10)
            assert len(got.trades["BTCUSDT"]) == btc_count
            assert conn.symbols == ["ETHUSDT"]
            assert not conn.refusals
        eth = got.trades["ETHUSDT"]
        await assert_minutes_match(sim, venue, "ETHUSDT", symbols["ETHUSDT"], eth, [first])


@pytest.mark.parametrize("venue", [Venue.BINANCE, Venue.BYBIT_SPOT])
async def test_the_watchdog_ends_a_silent_feed(venue: Venue) -> None:
    async with live_sim() as sim:
        symbols = await precisions(sim, venue, "BTCUSDT")
        async with running(sim, venue, symbols, silence_s=0.3) as (conn, got, task):
            await eventually(lambda: got.trades.get("BTCUSDT"), timeout=10)
            sim.world.clock.pause()  # nothing prints, so nothing is sent
            await eventually(task.done, timeout=5)
            with pytest.raises(StreamEnded) as ended:
                task.result()
            assert ended.value.silent
            assert not conn.connected


async def test_a_dropped_connection_ends_the_run() -> None:
    async with live_sim() as sim:
        symbols = await precisions(sim, Venue.BINANCE, "BTCUSDT")
        async with running(sim, Venue.BINANCE, symbols) as (conn, got, task):
            await eventually(lambda: got.trades.get("BTCUSDT"), timeout=10)
            assert await sim.server.hub.drop_all() == 1
            await eventually(task.done, timeout=5)
            with pytest.raises(StreamEnded) as ended:
                task.result()
            assert not ended.value.silent
            assert not conn.connected


async def test_bybit_is_pinged_and_its_pongs_keep_a_quiet_feed_open() -> None:
    async with live_sim() as sim:
        symbols = await precisions(sim, Venue.BYBIT_SPOT, "BTCUSDT")
        sim.world.clock.pause()  # no trades: only the pongs arrive
        options = {"ping_every_s": 0.4, "silence_s": 1.0}
        async with running(sim, Venue.BYBIT_SPOT, symbols, **options) as (conn, _, task):

            async def pinged() -> bool:
                received: int = (await sim.stats())["ws"]["received"].get("bybit-spot", 0)
                return received >= 8  # the subscribe and seven pings

            await eventually(pinged, timeout=10)  # 2.8 s or more: past twice the silence
            assert not task.done()
            assert conn.connected
            assert conn.messages >= 7
            assert not conn.refusals


async def test_binance_is_pinged_and_a_quiet_feed_stays_open() -> None:
    """Binance answers ping frames with pong frames: they keep the watchdog fed, so a
    connection whose symbols do not trade is not taken for a broken one."""
    async with live_sim() as sim:
        symbols = await precisions(sim, Venue.BINANCE, "BTCUSDT")
        sim.world.clock.pause()  # no trades: only the pongs arrive
        options = {"ping_every_s": 0.4, "silence_s": 1.0}
        async with running(sim, Venue.BINANCE, symbols, **options) as (conn, _, task):
            # 2.8 s or more: past twice the silence allowed
            await eventually(lambda: task.done() or conn.pongs >= 7, timeout=10)
            assert not task.done()
            assert conn.connected
            assert conn.messages == 0
