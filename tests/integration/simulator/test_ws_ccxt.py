"""ccxt.pro, an independent client, reads the simulator's streams: issue 4's "Done when".

ccxt.pro's `binance` subscribes with its own `SUBSCRIBE` on `/ws/<n>` and parses the
aggTrade payloads; the trades it reports for whole minutes must equal what REST
`/api/v3/aggTrades` serves for the same minutes, read by ccxt itself.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import ccxt.pro

from tests.integration.simulator.ccxt_support import point_at
from tests.integration.simulator.ws_support import WsSim, running
from tests.support.waiting import eventually

MINUTE_MS = 60_000


@contextlib.asynccontextmanager
async def pro_binance(sim: WsSim) -> AsyncIterator[Any]:
    """Return ccxt.pro's binance (spot, public) with REST and streams on the simulator."""
    options = {
        "fetchMarkets": {"types": ["spot"]},
        "fetchCurrencies": False,
        "fetchMargins": False,
        "tradesLimit": 100_000,  # keep every streamed trade between two awaits
    }
    exchange = ccxt.pro.binance({"options": options})
    try:
        point_at(exchange, sim.http)
        exchange.urls["api"]["ws"] = {"spot": f"{sim.ws}/ws"}
        yield exchange
    finally:
        await exchange.close()


def key(trade: dict[str, Any]) -> tuple[Any, ...]:
    """Return what must agree between a streamed and a fetched trade."""
    return (trade["id"], trade["timestamp"], trade["price"], trade["amount"], trade["side"])


async def test_ccxt_pro_watch_trades_equal_the_rest_agg_trades() -> None:
    async with running() as sim, pro_binance(sim) as exchange:
        await exchange.load_markets()
        seen: dict[str, dict[str, Any]] = {}
        first = await exchange.watch_trades("BTC/USDT", params={"name": "aggTrade"})
        seen |= {t["id"]: t for t in first}  # the first batch may already cross `start`
        start = first[0]["timestamp"] - first[0]["timestamp"] % MINUTE_MS + MINUTE_MS
        end = start + 2 * MINUTE_MS

        async def watched_past_end() -> bool:
            for trade in await exchange.watch_trades("BTC/USDT", params={"name": "aggTrade"}):
                seen[trade["id"]] = trade
            return max(t["timestamp"] for t in seen.values()) >= end

        await eventually(watched_past_end, timeout=10)
        streamed = sorted(
            (t for t in seen.values() if start <= t["timestamp"] < end), key=lambda t: int(t["id"])
        )
        fetched: dict[str, dict[str, Any]] = {}
        since = start
        while since < end:  # page by time; overlap on the last millisecond
            page = await exchange.fetch_trades("BTC/USDT", since, 1000, {"until": end - 1})
            fetched |= {t["id"]: t for t in page}
            if len(page) < 1000:
                break
            since = page[-1]["timestamp"]
    rest = sorted(fetched.values(), key=lambda t: int(t["id"]))
    assert len(streamed) > 100
    assert [key(t) for t in streamed] == [key(t) for t in rest]


async def test_ccxt_pro_watch_ohlcv_equals_the_rest_klines() -> None:
    """ccxt.pro's `watch_ohlcv` (the `<symbol>@kline_1m` stream) reports, for minutes
    that closed while it watched, the candles ccxt's REST `fetch_ohlcv` reads."""
    async with running() as sim, pro_binance(sim) as exchange:
        await exchange.load_markets()
        candles: dict[int, list[Any]] = {}
        for row in await exchange.watch_ohlcv("BTC/USDT", "1m"):
            candles[row[0]] = row
        first_seen = min(candles)

        async def two_minutes_closed() -> bool:
            for row in await exchange.watch_ohlcv("BTC/USDT", "1m"):
                candles[row[0]] = row
            return max(candles) >= first_seen + 3 * MINUTE_MS

        await eventually(two_minutes_closed, timeout=10)
        closed = [t for t in sorted(candles) if first_seen < t < max(candles)]
        rest = await exchange.fetch_ohlcv("BTC/USDT", "1m", closed[0], len(closed))
    assert len(closed) >= 2
    assert [candles[t] for t in closed] == rest
