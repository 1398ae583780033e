"""`StreamSupervisor` on the simulator: reconnects, gap reports, watchdog and rotation.

Every fault test checks the recovery: the feed resumes, the gap reported covers what
was lost (minutes clear of it fold exactly into the REST klines) and nothing is doubled.
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
from candlevault.realtime.supervisor import Backoff, StreamSupervisor
from tests.integration.exchanges.venues import Sim
from tests.integration.realtime.streams import (
    Collected,
    assert_minutes_match,
    live_sim,
    precisions,
    ws_url,
)
from tests.support.waiting import eventually

FAST = Backoff(base_s=0.01, cap_s=0.05)


@contextlib.asynccontextmanager
async def supervised(
    sim: Sim, venue: Venue, symbols: dict[str, Precision], **options: Any
) -> AsyncIterator[tuple[StreamSupervisor, Collected]]:
    """Run a supervisor in a task for the block; cancel it after."""
    got = Collected()
    supervisor = StreamSupervisor(
        venue,
        ws_url(sim, venue),
        symbols,
        session=sim.session,
        on_trades=got.on_trades,
        on_alive=got.on_alive,
        on_gap=got.on_gap,
        backoff=FAST,
        **options,
    )
    task = asyncio.create_task(supervisor.run())
    try:
        yield supervisor, got
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert task.cancelled()  # it never ends on its own


def clear_of(gap: tuple[int, int], minutes: list[int]) -> list[int]:
    """Return the minutes that do not overlap the gap [start, end]."""
    start, end = gap
    return [m for m in minutes if m + MINUTE_MS <= start or m > end]


@pytest.mark.parametrize("venue", [Venue.BINANCE, Venue.BYBIT_LINEAR])
async def test_a_dropped_feed_reconnects_and_reports_the_gap(venue: Venue) -> None:
    async with live_sim() as sim:
        symbols = await precisions(sim, venue, "BTCUSDT")
        async with supervised(sim, venue, symbols) as (sup, got):
            await eventually(lambda: got.trades.get("BTCUSDT"), timeout=10)
            first = got.first_whole_minute("BTCUSDT")
            await eventually(lambda: got.alive_past(first), timeout=10)
            assert sup.health().connected
            assert sup.health().reconnects == 0
            before = got.alive_ms
            assert await sim.server.hub.drop_all() == 1
            await eventually(lambda: got.gaps, timeout=10)
            (gap,) = got.gaps
            assert before is not None
            assert before <= gap[0] <= gap[1]
            last = gap[1] - gap[1] % MINUTE_MS + MINUTE_MS
            await eventually(lambda: got.alive_past(last), timeout=10)
            health = sup.health()
            assert health.connected
            assert health.reconnects == 1
            assert health.gaps == 1
            assert health.last_message_age_s is not None
            assert health.last_message_age_s < 5
        trades = got.trades["BTCUSDT"]
        assert trades == sorted(trades, key=lambda t: t.time_ms)
        minutes = clear_of(gap, list(range(first, last + 1, MINUTE_MS)))
        assert first in minutes
        assert last in minutes
        await assert_minutes_match(sim, venue, "BTCUSDT", symbols["BTCUSDT"], trades, minutes)


async def test_a_silent_feed_is_closed_and_reopened() -> None:
    async with live_sim() as sim:
        symbols = await precisions(sim, Venue.BINANCE, "BTCUSDT")
        async with supervised(sim, Venue.BINANCE, symbols, silence_s=0.3) as (sup, got):
            await eventually(lambda: got.trades.get("BTCUSDT"), timeout=10)
            sim.world.clock.pause()
            await eventually(lambda: sup.health().silences >= 1, timeout=5)
            await eventually(lambda: sup.health().reconnects >= 1, timeout=5)
            assert sup.health().last_message_age_s is not None
            sim.world.clock.resume()
            await eventually(lambda: got.gaps, timeout=10)
            count = len(got.trades["BTCUSDT"])
            await eventually(lambda: len(got.trades["BTCUSDT"]) > count, timeout=10)
            assert sup.health().connected


async def test_rotation_hands_over_without_loss_or_duplicates() -> None:
    async with live_sim() as sim:
        symbols = await precisions(sim, Venue.BINANCE, "BTCUSDT")
        async with supervised(sim, Venue.BINANCE, symbols, rotate_after_s=1.0) as (sup, got):
            await eventually(lambda: got.trades.get("BTCUSDT"), timeout=10)
            first = got.first_whole_minute("BTCUSDT")
            await eventually(lambda: sup.rotations >= 2, timeout=10)
            await eventually(lambda: got.alive_past(first + 2 * MINUTE_MS), timeout=10)
            assert not got.gaps
            assert sup.health().reconnects == 0
            assert (await sim.stats())["ws"]["connections"]["binance"] >= 3
            assert sup.health().duplicates > 0  # the connections overlapped: no hole
        trades = got.trades["BTCUSDT"]
        ids = [t.trade_id for t in trades]
        assert len(ids) == len(set(ids))
        minutes = [first + i * MINUTE_MS for i in range(3)]
        await assert_minutes_match(
            sim, Venue.BINANCE, "BTCUSDT", symbols["BTCUSDT"], trades, minutes
        )


async def test_subscribing_through_the_supervisor_survives_a_reconnect() -> None:
    async with live_sim() as sim:
        symbols = await precisions(sim, Venue.BYBIT_SPOT, "BTCUSDT", "ETHUSDT")
        btc = {"BTCUSDT": symbols["BTCUSDT"]}
        async with supervised(sim, Venue.BYBIT_SPOT, btc) as (sup, got):
            await eventually(lambda: got.trades.get("BTCUSDT"), timeout=10)
            await sup.subscribe("ETHUSDT", symbols["ETHUSDT"])
            await eventually(lambda: got.trades.get("ETHUSDT"), timeout=10)
            await sim.server.hub.drop_all()
            await eventually(lambda: got.gaps, timeout=10)
            count = len(got.trades["ETHUSDT"])
            await eventually(lambda: len(got.trades["ETHUSDT"]) > count, timeout=10)
            assert sorted(sup.symbols) == ["BTCUSDT", "ETHUSDT"]


def test_backoff_is_jittered_exponential_and_capped() -> None:
    backoff = Backoff(base_s=1.0, factor=2.0, cap_s=8.0)
    assert [backoff.delay(n, lambda: 0.0) for n in range(5)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert [backoff.delay(n, lambda: 1.0) for n in range(5)] == [1.0, 2.0, 4.0, 8.0, 8.0]
    assert backoff.delay(10_000, lambda: 0.5) == 6.0
