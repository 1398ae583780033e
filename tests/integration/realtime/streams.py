"""Shared by the real-time tests: a running simulator, clients on it, and a collector.

`Collected` records what a connection or supervisor hands its owner (trades per symbol,
the alive time, gaps), so a test waits on it with `eventually`. `assert_minutes_match`
is the end-to-end check: the trades of whole minutes, folded, equal the venue's REST
klines of those minutes.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import msgspec

from candlevault.aggregation.trades import fold_trades
from candlevault.domain.candles import Candle
from candlevault.domain.decimals import Precision
from candlevault.domain.timeframes import MINUTE_MS
from candlevault.domain.trades import Trade
from candlevault.domain.venues import Venue
from candlevault.exchanges.bybit.rest import bybit_client
from candlevault.exchanges.ports import ExchangeClient
from candlevault.simulator.ws_binance import USDM_PREFIX
from tests.integration.exchanges.venues import Sim, binance_client, running_sim

SPEED = 120.0  # two sim minutes per wall second


@contextlib.asynccontextmanager
async def live_sim() -> AsyncIterator[Sim]:
    """A running (unpaused) simulator at `SPEED`."""
    async with running_sim(paused=False, speed=SPEED, symbols=("BTCUSDT", "ETHUSDT")) as sim:
        yield sim


def ws_url(sim: Sim, venue: Venue) -> str:
    """Return the stream URL candlevault's settings would hold for `venue`."""
    base = "ws" + sim.server.url.removeprefix("http")
    return {
        Venue.BINANCE: base,
        Venue.BINANCE_USDM: base + USDM_PREFIX,
        Venue.BYBIT_SPOT: base + "/v5/public/spot",
        Venue.BYBIT_LINEAR: base + "/v5/public/linear",
    }[venue]


def client(sim: Sim, venue: Venue) -> ExchangeClient:
    """Return candlevault's REST client of `venue` on the simulator."""
    if venue.exchange == "binance":
        return binance_client(sim, venue)
    return bybit_client(sim.server.url, venue, sim.session, sim.clock)


async def precisions(sim: Sim, venue: Venue, *symbols: str) -> dict[str, Precision]:
    """Return the symbols' precisions as the venue's REST lists them."""
    listed = await client(sim, venue).symbols()
    return {s: listed[s].precision for s in symbols}


@dataclass
class Collected:
    """What an owner was handed: trades per symbol, the alive time, the gaps."""

    trades: dict[str, list[Trade]] = field(default_factory=dict)
    alive_ms: int | None = None
    gaps: list[tuple[int, int]] = field(default_factory=list)

    def on_trades(self, symbol: str, trades: list[Trade]) -> None:
        """Record a batch."""
        self.trades.setdefault(symbol, []).extend(trades)

    def on_alive(self, event_ms: int) -> None:
        """Record the alive time (it never goes back)."""
        assert self.alive_ms is None or event_ms >= self.alive_ms - 5_000
        self.alive_ms = event_ms if self.alive_ms is None else max(self.alive_ms, event_ms)

    def on_gap(self, start_ms: int, end_ms: int) -> None:
        """Record a gap."""
        self.gaps.append((start_ms, end_ms))

    def first_whole_minute(self, symbol: str) -> int:
        """Return the first minute whose trades all arrived (the one after the first trade)."""
        first = self.trades[symbol][0].time_ms
        return first - first % MINUTE_MS + MINUTE_MS

    def alive_past(self, minute_ms: int) -> bool:
        """Tell whether the feed is proven alive past the end of `minute_ms`'s minute."""
        return self.alive_ms is not None and self.alive_ms >= minute_ms + MINUTE_MS


def _ohlcv(candle: Candle, full: bool) -> object:
    if full:
        return msgspec.structs.astuple(candle)
    c = candle
    return (c.open_time_ms, c.open, c.high, c.low, c.close, c.volume, c.quote_volume)


async def assert_minutes_match(
    sim: Sim,
    venue: Venue,
    symbol: str,
    precision: Precision,
    trades: list[Trade],
    minutes: list[int],
) -> None:
    """Fold `trades` into each minute of `minutes` and compare with the REST klines."""
    assert minutes, "no minute to compare"
    reply = await client(sim, venue).klines(symbol, minutes[0] - MINUTE_MS, minutes[-1], precision)
    rest = {c.open_time_ms: c for c in reply.closed.candles()}
    full = venue.exchange == "binance"  # Bybit klines carry no count nor taker volumes
    for minute in minutes:
        mine = [t for t in trades if minute <= t.time_ms < minute + MINUTE_MS]
        prev = rest.get(minute - MINUTE_MS)
        folded = fold_trades(
            mine,
            open_time_ms=minute,
            precision=precision,
            prev_close=prev.close if prev else None,
        )
        assert folded is not None, f"{symbol} {minute}: no trades and no previous close"
        assert _ohlcv(folded, full) == _ohlcv(rest[minute], full), f"{symbol} minute {minute}"
