"""The streams within Binance's WebSocket limits, as the simulator enforces them: control
messages paced under 5 a second, and symbols spread over as many connections as the
per-connection stream cap needs, each its own feed."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Coroutine
from typing import Any

from candlevault.domain.decimals import Precision
from candlevault.domain.venues import Venue
from candlevault.realtime.pool import VenueStreams
from candlevault.realtime.supervisor import StreamSupervisor
from candlevault.simulator.ws_limits import WsLimits
from tests.integration.exchanges.venues import running_sim
from tests.integration.realtime.streams import SPEED, Collected, precisions, ws_url
from tests.integration.realtime.test_supervisor import FAST, supervised
from tests.support.waiting import eventually

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "NEOETH")


async def test_a_burst_of_subscriptions_is_paced_under_the_message_limit() -> None:
    async with running_sim(paused=False, speed=SPEED, symbols=SYMBOLS) as sim:
        symbols = await precisions(sim, Venue.BINANCE, *SYMBOLS)
        first = {"BTCUSDT": symbols["BTCUSDT"]}
        async with supervised(sim, Venue.BINANCE, first) as (supervisor, got):
            await eventually(lambda: got.trades.get("BTCUSDT"), timeout=10)
            for _ in range(3):  # 15 control messages at once: past 5 a second unpaced
                for symbol in SYMBOLS[1:]:
                    await supervisor.unsubscribe(symbol)
                    await supervisor.subscribe(symbol, symbols[symbol])
            await eventually(lambda: all(got.trades.get(s) for s in SYMBOLS[:3]), timeout=15)
            stats = await sim.stats()
            assert stats["ws"]["received"]["binance"] >= 15
            assert stats["ws"].get("rate_limited", {}) == {}
            assert supervisor.reconnects == 0


async def test_symbols_past_the_stream_cap_go_on_more_connections() -> None:
    async with running_sim(paused=False, speed=SPEED, symbols=SYMBOLS) as sim:
        cap = 4  # streams a connection: two symbols, each with @aggTrade and @kline_1m
        hub = sim.server.hub
        limits = dict(hub.timings.limits) | {"binance": WsLimits(streams=cap)}
        hub.timings = dataclasses.replace(hub.timings, limits=limits)
        symbols = await precisions(sim, Venue.BINANCE, *SYMBOLS)
        got: dict[StreamSupervisor, Collected] = {}
        tasks: list[asyncio.Task[None]] = []

        def new(chosen: dict[str, Precision]) -> StreamSupervisor:
            collected = Collected()
            supervisor = StreamSupervisor(
                Venue.BINANCE, ws_url(sim, Venue.BINANCE), chosen,
                session=sim.session, on_trades=collected.on_trades,
                on_alive=collected.on_alive, on_gap=collected.on_gap,
                on_klines=lambda symbol, candles: None, backoff=FAST,
            )  # fmt: skip
            got[supervisor] = collected
            return supervisor

        def spawn(work: Coroutine[Any, Any, None]) -> None:
            tasks.append(asyncio.create_task(work))

        pool = VenueStreams(Venue.BINANCE, cap // 2, new, spawn)
        try:
            planned = pool.plan(dict(list(symbols.items())[:3]))
            pool.start()
            assert [s.symbols for s in planned] == [["BTCUSDT", "ETHUSDT"], ["SOLUSDT"]]
            added = await pool.subscribe("NEOETH", symbols["NEOETH"])
            assert added is planned[1]  # the connection with room
            await eventually(
                lambda: all(got[s].trades.get(x) for s in planned for x in s.symbols[:1]),
                timeout=15,
            )
            stats = await sim.stats()
            assert stats["ws"]["open"]["binance"] == 2
            assert stats["ws"].get("refused", {}) == {}
            assert all(s.health().connected for s in planned)
            # A fifth symbol finds no room: a third connection opens for it.
            assert len(pool.supervisors) == 2
            await pool.subscribe("XRPUSDT", symbols["BTCUSDT"])
            assert len(pool.supervisors) == 3
        finally:
            for task in tasks:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*tasks, return_exceptions=True)
