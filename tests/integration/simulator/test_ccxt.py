"""ccxt, an independent client, against the simulator: issue 4's "Done when".

ccxt's `binance` (spot markets only), `binanceusdm` and `bybit` (spot and linear) load
markets, fetch OHLCV across pages (a manual `since = last open + 1 interval` loop, and
ccxt's own `paginate`) and fetch trades from a `SimServer` on 127.0.0.1:0, and what they
get equals the world's ground truth, read in-process: every open time, and every OHLCV
value as the float ccxt parses from the venue's string.

The world starts at the real wall-clock now and runs at speed 1, because ccxt's
deterministic pagination plans its pages from its own clock. Tests that compare up to
the newest candle or trade pause the sim clock first, so the forming candle and the
newest trades they compare with cannot move under them; ccxt's clock runs on, a few
seconds ahead of sim time at most, which its pagination tolerates.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from ccxt.async_support import Exchange

from candlevault.domain.decimals import format_units
from candlevault.domain.timeframes import H1, M1
from candlevault.domain.times import parse_time_ms
from candlevault.domain.venues import Venue
from candlevault.simulator.bybit_rest import exec_id
from candlevault.simulator.server import SimServer
from candlevault.simulator.world import BINANCE_OUTAGE_2018, SimConfig, SimWorld
from tests.integration.simulator.ccxt_support import (
    MINUTE_MS,
    MakeExchange,
    Ohlcv,
    assert_aggregates,
    assert_series,
    binance_spot,
    binance_usdm,
    bybit,
    connected,
    decimal_sum,
    gaps,
    minute_tape,
    newest_printed,
    number,
    side,
    truth_ohlcv,
)

SYMBOLS = ("BTCUSDT", "ETHUSDT")
DAY_MS = 86_400_000


@dataclass(frozen=True)
class Sim:
    """A running simulator: its world (the ground truth) and its base URL."""

    world: SimWorld
    url: str


@pytest.fixture
async def sim() -> AsyncIterator[Sim]:
    """A world at the wall clock's now, speed 1, served on 127.0.0.1:0."""
    world = SimWorld(SimConfig(symbols=SYMBOLS))
    async with SimServer(world) as server:
        yield Sim(world, server.url)


@dataclass(frozen=True)
class Case:
    """One venue as ccxt sees it: the exchange class and the unified BTCUSDT symbol."""

    make: MakeExchange
    venue: Venue
    symbol: str


CASES = {
    "binance": Case(binance_spot, Venue.BINANCE, "BTC/USDT"),
    "binanceusdm": Case(binance_usdm, Venue.BINANCE_USDM, "BTC/USDT:USDT"),
    "bybit-spot": Case(bybit, Venue.BYBIT_SPOT, "BTC/USDT"),
    "bybit-linear": Case(bybit, Venue.BYBIT_LINEAR, "BTC/USDT:USDT"),
}
every_case = pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
BINANCES = ["binance", "binanceusdm"]
binance_cases = pytest.mark.parametrize("case", [CASES[k] for k in BINANCES], ids=BINANCES)
BYBITS = ["bybit-spot", "bybit-linear"]
bybit_cases = pytest.mark.parametrize("case", [CASES[k] for k in BYBITS], ids=BYBITS)


def unified(venue: Venue, base: str, quote: str) -> str:
    """Return ccxt's unified symbol: "BTC/USDT" on spot, "BTC/USDT:USDT" on a USDT perpetual."""
    linear = venue in (Venue.BINANCE_USDM, Venue.BYBIT_LINEAR)
    return f"{base}/{quote}:{quote}" if linear else f"{base}/{quote}"


async def fetch_pages(exchange: Exchange, symbol: str, since: int, count: int) -> list[Ohlcv]:
    """Page 1m klines by hand, 1000 at a time, each page from the last open + 1 minute,
    until there are at least `count`."""
    rows: list[Ohlcv] = []
    while len(rows) < count:
        page = await exchange.fetch_ohlcv(symbol, "1m", since, 1000)
        assert page, f"nothing from {since}"
        rows += page
        since = page[-1][0] + M1.duration_ms
    return rows


# -- markets ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "venues", "paths"),
    [
        (binance_spot, [Venue.BINANCE], {"/api/v3/exchangeInfo"}),
        (binance_usdm, [Venue.BINANCE_USDM], {"/fapi/v1/exchangeInfo"}),
        (bybit, [Venue.BYBIT_SPOT, Venue.BYBIT_LINEAR], {"/v5/market/instruments-info"}),
    ],
    ids=["binance", "binanceusdm", "bybit"],
)
async def test_load_markets_lists_the_simulators_symbols_with_their_filters(
    sim: Sim, make: MakeExchange, venues: list[Venue], paths: set[str]
) -> None:
    async with connected(make, sim.url) as client:
        markets = await client.exchange.load_markets()
    assert set(client.paths) == paths  # public market data only: no sapi, no keys
    listings = [item for venue in venues for item in sim.world.listings(venue)]
    assert sorted(markets) == sorted(unified(i.venue, i.base, i.quote) for i in listings)
    for item in listings:
        market = markets[unified(item.venue, item.base, item.quote)]
        p = item.precision
        tick, step = number(item.tick, p.price), number(item.step, p.base)
        linear = item.venue in (Venue.BINANCE_USDM, Venue.BYBIT_LINEAR)
        assert (market["id"], market["base"], market["quote"]) == (item.symbol, item.base, "USDT")
        assert market["type"] == ("swap" if linear else "spot"), item.symbol
        assert bool(market["linear"]) is linear, item.symbol
        assert market["settle"] == ("USDT" if linear else None), item.symbol
        assert market["active"] is True, item.symbol
        assert market["precision"]["price"] == tick, item.symbol
        assert market["precision"]["amount"] == step, item.symbol
        assert market["limits"]["amount"]["min"] == step, item.symbol
        if item.venue is not Venue.BYBIT_SPOT:  # Bybit spot has no price filter but tickSize
            assert market["limits"]["price"]["min"] == tick, item.symbol
        if linear:  # onboardDate, launchTime
            assert market["created"] == item.listed_ms, item.symbol


# -- OHLCV -----------------------------------------------------------------------------


@every_case
async def test_fetch_ohlcv_paged_by_hand_equals_ground_truth(sim: Sim, case: Case) -> None:
    now = sim.world.now_ms()
    since = now - now % DAY_MS - 3 * DAY_MS
    async with connected(case.make, sim.url) as client:
        rows = await fetch_pages(client.exchange, case.symbol, since, 2500)
    assert len(rows) == 3000  # three full pages, all closed candles
    assert_series(rows, M1)
    assert gaps(rows, M1) == []
    assert rows[0][0] == since
    truth = truth_ohlcv(sim.world, case.venue, "BTCUSDT", M1, start_ms=since, end_ms=rows[-1][0])
    assert rows == truth


@every_case
async def test_fetch_ohlcv_with_ccxt_paginate_equals_ground_truth(sim: Sim, case: Case) -> None:
    sim.world.clock.pause()
    now = sim.world.now_ms()
    since = now - now % MINUTE_MS - 4500 * MINUTE_MS  # 4,501 candles: five pages
    async with connected(case.make, sim.url) as client:
        # No `until`: on Bybit ccxt would send start and end on every page, and Bybit
        # answers those with the newest `limit` of the window each time.
        params = {"paginate": True, "paginationCalls": 5}
        rows = await client.exchange.fetch_ohlcv(case.symbol, "1m", since, params=params)
    assert len([path for path in client.paths if "kline" in path]) == 5
    assert_series(rows, M1)
    assert gaps(rows, M1) == []
    assert (rows[0][0], rows[-1][0]) == (since, now - now % MINUTE_MS)  # the forming one last
    assert rows == truth_ohlcv(sim.world, case.venue, "BTCUSDT", M1, start_ms=since)


@every_case
async def test_hourly_ohlcv_is_the_aggregation_of_the_minutes(sim: Sim, case: Case) -> None:
    now = sim.world.now_ms()
    since = now - now % DAY_MS - 2 * DAY_MS
    async with connected(case.make, sim.url) as client:
        hours = await client.exchange.fetch_ohlcv(case.symbol, "1h", since, 48)
        minutes = await fetch_pages(client.exchange, case.symbol, since, 48 * 60)
    assert [row[0] for row in hours] == list(range(since, since + 2 * DAY_MS, H1.duration_ms))
    assert hours == truth_ohlcv(
        sim.world, case.venue, "BTCUSDT", H1, start_ms=since, end_ms=since + 2 * DAY_MS - 1
    )
    for hour in hours:
        inside = [m for m in minutes if hour[0] <= m[0] < hour[0] + H1.duration_ms]
        assert len(inside) == 60
        assert decimal_sum([hour[5]]) == decimal_sum([m[5] for m in inside])
        # Binance's rule: zero-volume minutes (flat at the previous close) take no part
        # in the hour's open, high, low and close.
        traded = [m for m in inside if m[5] > 0] or inside
        assert hour[1:5] == [
            traded[0][1],
            max(m[2] for m in traded),
            min(m[3] for m in traded),
            traded[-1][4],
        ]


async def test_binance_spot_ohlcv_skips_the_2018_02_08_outage(sim: Sim) -> None:
    down, up = BINANCE_OUTAGE_2018
    assert (down, up) == (parse_time_ms("2018-02-08T04:00Z"), parse_time_ms("2018-02-09T08:00Z"))
    since = down - 180 * MINUTE_MS
    until = up + 60 * MINUTE_MS - 1
    symbol = CASES["binance"].symbol
    async with connected(binance_spot, sim.url) as client:
        by_hand = await fetch_pages(client.exchange, symbol, since, 1500)
        paged = await client.exchange.fetch_ohlcv(
            symbol, "1m", since, params={"paginate": True, "until": until}
        )
        from_inside = await client.exchange.fetch_ohlcv(symbol, "1m", down + DAY_MS // 2, 5)
    for rows in (by_hand, paged):
        assert_series(rows, M1)
        assert [row for row in rows if down <= row[0] < up] == []
        assert gaps(rows, M1) == [(down - MINUTE_MS, up)]
        assert (rows[179][0], rows[180][0]) == (down - MINUTE_MS, up)  # the sides
        truth = truth_ohlcv(
            sim.world, Venue.BINANCE, "BTCUSDT", M1, start_ms=since, end_ms=rows[-1][0]
        )
        assert rows == truth
    assert (len(by_hand), len(paged)) == (2000, 240)
    assert paged[-1][0] == until + 1 - MINUTE_MS
    assert from_inside == by_hand[180:185]  # asked from inside the outage: it starts after


# -- trades ----------------------------------------------------------------------------


@binance_cases
async def test_binance_agg_trades_of_a_closed_minute_sum_to_its_kline(sim: Sim, case: Case) -> None:
    sim.world.clock.pause()
    now = sim.world.now_ms()
    minute = now - now % MINUTE_MS - MINUTE_MS
    market = sim.world.market(case.venue, "BTCUSDT")
    candle = market.minute(minute) if market is not None else None
    assert market is not None
    assert candle is not None
    found: dict[str, dict[str, Any]] = {}
    async with connected(case.make, sim.url) as client:
        since, until = minute, minute + MINUTE_MS - 1
        while True:  # page on by time; a page may end inside a millisecond, so overlap
            page = await client.exchange.fetch_trades(case.symbol, since, 1000, {"until": until})
            found |= {agg["id"]: agg for agg in page}
            if len(page) < 1000:
                break
            since = page[-1]["timestamp"]
    aggs = sorted(found.values(), key=lambda agg: int(agg["id"]))
    tape = market.trades(minute)
    assert_aggregates(aggs, tape, market.listing.precision)
    assert (aggs[0]["info"]["f"], aggs[-1]["info"]["l"]) == (tape[0].trade_id, tape[-1].trade_id)
    volume = Decimal(format_units(candle.volume, market.listing.precision.base))
    assert decimal_sum([agg["amount"] for agg in aggs]) == volume
    assert sum(agg["info"]["l"] - agg["info"]["f"] + 1 for agg in aggs) == candle.trades


@binance_cases
async def test_binance_newest_agg_trades_end_at_the_newest_trade(sim: Sim, case: Case) -> None:
    sim.world.clock.pause()
    now = sim.world.now_ms()
    market = sim.world.market(case.venue, "BTCUSDT")
    assert market is not None
    async with connected(case.make, sim.url) as client:
        aggs = await client.exchange.fetch_trades(case.symbol)
    assert len(aggs) == 500  # Binance's default limit
    assert [agg["symbol"] for agg in aggs] == [case.symbol] * 500
    tape = minute_tape(market, from_ms=aggs[0]["timestamp"], now_ms=now)
    assert_aggregates(aggs, tape, market.listing.precision)
    # What has printed since the newest aggTrade is one run still printing: the trades
    # of one price and taker side whose next trade (same price and side) is yet to come.
    last = next(i for i, t in enumerate(tape) if int(t.trade_id) == aggs[-1]["info"]["l"])
    rest = tape[last + 1 :]
    pending = [t for t in rest if t.time_ms <= now]
    if pending:
        after = rest[len(pending)]
        assert after.time_ms // MINUTE_MS == pending[0].time_ms // MINUTE_MS == now // MINUTE_MS
        assert {(t.price, t.buyer_is_maker) for t in [*pending, after]} == {
            (after.price, after.buyer_is_maker)
        }


async def test_binance_agg_trades_share_the_time_of_the_trades_they_aggregate(sim: Sim) -> None:
    """Binance aggregates 'trades that fill at the time, from the same order, with the
    same price' (binance-spot-api-docs rest-api.md): one aggTrade, one time."""
    sim.world.clock.pause()
    symbol = CASES["binance"].symbol
    async with connected(binance_spot, sim.url) as client:
        aggs = await client.exchange.fetch_trades(symbol)
        trades = await client.exchange.fetch_trades(
            symbol, limit=1000, params={"fetchTradesMethod": "publicGetTrades"}
        )
    assert client.paths[-2:] == ["/api/v3/aggTrades", "/api/v3/trades"]
    time_of = {int(trade["id"]): trade["timestamp"] for trade in trades}
    covered = [agg for agg in aggs if agg["info"]["f"] in time_of]
    assert len(covered) > 100
    spread = {
        agg["id"]: {time_of[i] for i in range(agg["info"]["f"], agg["info"]["l"] + 1)}
        for agg in covered
    }
    assert {key: times for key, times in spread.items() if len(times) > 1} == {}
    assert all(spread[agg["id"]] == {agg["timestamp"]} for agg in covered)


@bybit_cases
async def test_bybit_recent_trades_are_the_newest_trades(sim: Sim, case: Case) -> None:
    sim.world.clock.pause()
    now = sim.world.now_ms()
    market = sim.world.market(case.venue, "BTCUSDT")
    assert market is not None
    limit = 60 if case.venue is Venue.BYBIT_SPOT else 1000  # Bybit's maximum per category
    async with connected(case.make, sim.url) as client:
        trades = await client.exchange.fetch_trades(case.symbol, limit=limit)
    assert client.paths[-1] == "/v5/market/recent-trade"
    p = market.listing.precision
    expected = {  # keyed by execId, as the simulator names its trades on Bybit
        exec_id(case.venue, "BTCUSDT", int(t.trade_id)): (
            t.time_ms,
            number(t.price, p.price),
            number(t.qty, p.base),
            side(t),
        )
        for t in newest_printed(market, now, limit)
    }
    assert len(trades) == len(expected) == limit
    got = {t["id"]: (t["timestamp"], t["price"], t["amount"], t["side"]) for t in trades}
    assert got == expected
    assert [t["timestamp"] for t in trades] == sorted(t["timestamp"] for t in trades)
    assert {t["symbol"] for t in trades} == {case.symbol}


# -- time ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "path"),
    [
        (binance_spot, "/api/v3/time"),
        (binance_usdm, "/fapi/v1/time"),
        (bybit, "/v5/market/time"),
    ],
    ids=["binance", "binanceusdm", "bybit"],
)
async def test_fetch_time_is_sim_time(sim: Sim, make: MakeExchange, path: str) -> None:
    async with connected(make, sim.url) as client:
        wall_before = time.time() * 1000
        before = sim.world.now_ms()
        reported = await client.exchange.fetch_time()
        after = sim.world.now_ms()
        wall_after = time.time() * 1000
    assert client.paths == [path]
    assert before <= reported <= after
    assert after - before <= wall_after - wall_before + 5  # speed 1: sim time ran with wall
    assert abs(reported - wall_before) < 60_000  # started at the wall clock's now
