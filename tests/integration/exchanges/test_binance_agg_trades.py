"""The Binance client's aggTrades against the simulator over real sockets: a minute read by
time or paged by id gives the same trades, which fold into the venue's own kline for the
minute; `agg_trades_between` stops at its bounds; weights are charged as documented; and
parameters Binance refuses are refused here before anything is sent."""

from __future__ import annotations

from typing import Any

import pytest

from candlevault.aggregation.trades import fold_trades
from candlevault.domain.decimals import Precision
from candlevault.domain.errors import BadRequest
from candlevault.domain.trades import Trade
from candlevault.domain.venues import Venue
from candlevault.exchanges.binance.rest import BinanceRest
from tests.integration.exchanges.venues import START_MS, Sim, binance_client, running_sim

MINUTE = 60_000
HOUR = 3_600_000
FORMING = START_MS - START_MS % MINUTE  # the open of the minute forming at START_MS
MINUTE_OPEN = FORMING - 3 * MINUTE  # a closed minute
VENUES = [Venue.BINANCE, Venue.BINANCE_USDM]
AGG_PATH = {Venue.BINANCE: "/api/v3/aggTrades", Venue.BINANCE_USDM: "/fapi/v1/aggTrades"}
AGG_WEIGHT = {Venue.BINANCE: 4, Venue.BINANCE_USDM: 20}


async def _client(sim: Sim, venue: Venue, symbol: str = "BTCUSDT") -> tuple[BinanceRest, Precision]:
    client = binance_client(sim, venue)
    return client, (await client.symbols())[symbol].precision


async def _by_id(
    client: BinanceRest, symbol: str, precision: Precision, open_ms: int, page: int
) -> list[Trade]:
    """Read a minute by hand: its first page by time, then by `fromId` past its end."""
    end = open_ms + MINUTE - 1
    trades = got = await client.agg_trades(
        symbol, precision, start_ms=open_ms, end_ms=end, limit=page
    )
    while len(got) == page and got[-1].time_ms <= end:
        got = await client.agg_trades(
            symbol, precision, from_id=int(got[-1].trade_id) + 1, limit=page
        )
        trades = trades + got
    return [t for t in trades if t.time_ms <= end]


def _ids(trades: list[Trade]) -> list[int]:
    return [int(t.trade_id) for t in trades]


@pytest.mark.parametrize("venue", VENUES)
async def test_a_minute_by_time_or_by_id_is_the_same_trades_and_folds_into_its_kline(
    venue: Venue,
) -> None:
    async with running_sim() as sim:
        client, precision = await _client(sim, venue)
        end = MINUTE_OPEN + MINUTE - 1
        by_time = await client.agg_trades("BTCUSDT", precision, start_ms=MINUTE_OPEN, end_ms=end)
        by_id = await _by_id(client, "BTCUSDT", precision, MINUTE_OPEN, page=37)
        between = await client.agg_trades_between(
            "BTCUSDT", precision, start_ms=MINUTE_OPEN, until_id=None, until_ms=end, page=37
        )
        reply = await client.klines("BTCUSDT", MINUTE_OPEN - MINUTE, MINUTE_OPEN, precision)
    previous, kline = reply.closed.candles()
    assert 37 < len(by_time) < 1000  # one page by time; several by id
    assert by_id == by_time
    assert between == by_time
    assert _ids(by_time) == sorted(set(_ids(by_time)))
    assert all(MINUTE_OPEN <= t.time_ms <= end for t in by_time)
    folded = fold_trades(
        by_time, open_time_ms=MINUTE_OPEN, precision=precision, prev_close=previous.close
    )
    assert folded == kline  # every field: OHLC, volumes, taker-buy volumes, trade count


@pytest.mark.parametrize("venue", VENUES)
async def test_between_stops_below_until_id_and_at_until_ms(venue: Venue) -> None:
    async with running_sim() as sim:
        client, precision = await _client(sim, venue)
        end = MINUTE_OPEN + MINUTE - 1
        minute = await client.agg_trades("BTCUSDT", precision, start_ms=MINUTE_OPEN, end_ms=end)
        cut = minute[len(minute) // 2]
        below_id = await client.agg_trades_between(
            "BTCUSDT",
            precision,
            start_ms=MINUTE_OPEN,
            until_id=int(cut.trade_id),
            until_ms=end,
            page=25,
        )
        until_time = await client.agg_trades_between(
            "BTCUSDT",
            precision,
            start_ms=MINUTE_OPEN + 10_000,
            until_id=None,
            until_ms=MINUTE_OPEN + 40_000,
            page=25,
        )
    assert below_id == minute[: len(minute) // 2]
    assert until_time == [t for t in minute if 10_000 <= t.time_ms - MINUTE_OPEN <= 40_000]


async def test_between_walks_hour_windows_until_a_page_fills() -> None:
    """A quiet symbol (about one aggTrade a minute): short pages by time, hour after hour."""
    async with running_sim() as sim:
        client, precision = await _client(sim, Venue.BINANCE, "NEOETH")
        start, until = FORMING - 150 * MINUTE, FORMING - 1
        trades = await client.agg_trades_between(
            "NEOETH", precision, start_ms=start, until_id=None, until_ms=until
        )
        hourly = [
            t
            for s in range(start, until + 1, HOUR)
            for t in await client.agg_trades(
                "NEOETH", precision, start_ms=s, end_ms=min(s + HOUR - 1, until)
            )
        ]
        paged = await client.agg_trades_between(
            "NEOETH", precision, start_ms=start, until_id=None, until_ms=until, page=20
        )
    assert len(trades) > 60  # more than one hour's window holds
    assert trades == hourly == paged
    assert _ids(trades) == sorted(set(_ids(trades)))


@pytest.mark.parametrize("venue", VENUES)
async def test_the_open_minute_is_read_up_to_now(venue: Venue) -> None:
    async with running_sim() as sim:
        client, precision = await _client(sim, venue)
        now = sim.clock.now_ms()
        trades = await client.agg_trades_between(
            "BTCUSDT", precision, start_ms=FORMING, until_id=None, until_ms=now, page=10
        )
        newest = await client.agg_trades("BTCUSDT", precision, limit=5)
    assert trades
    assert all(FORMING <= t.time_ms <= now for t in trades)
    assert trades[-len(newest) :] == newest  # nothing after what it read has printed


@pytest.mark.parametrize("venue", VENUES)
async def test_every_request_is_charged_its_documented_weight(venue: Venue) -> None:
    async with running_sim() as sim:
        client, precision = await _client(sim, venue)
        await _by_id(client, "BTCUSDT", precision, MINUTE_OPEN, page=50)
        stats: Any = (await sim.stats())["venues"][venue.value]
    path = AGG_PATH[venue]
    sent = client.http.counts.requests[path]
    assert sent > 1
    assert client.http.counts.weight[path] == sent * AGG_WEIGHT[venue]
    assert stats["requests"][path] == sent
    assert stats["weight"] == sum(client.http.counts.weight.values())


REFUSED: list[dict[str, int]] = [
    {"from_id": 1, "start_ms": MINUTE_OPEN},
    {"from_id": 1, "end_ms": MINUTE_OPEN},
    {"start_ms": MINUTE_OPEN, "end_ms": MINUTE_OPEN + HOUR},
    {"start_ms": MINUTE_OPEN, "end_ms": MINUTE_OPEN - 1},
    {"limit": 1001},
    {"limit": 0},
    {"from_id": -1},
]


@pytest.mark.parametrize("venue", VENUES)
@pytest.mark.parametrize("params", REFUSED)
async def test_refused_parameters_raise_bad_request_without_a_request(
    venue: Venue, params: dict[str, int]
) -> None:
    async with running_sim() as sim:
        client, precision = await _client(sim, venue)
        with pytest.raises(BadRequest, match="aggTrades"):
            await client.agg_trades("BTCUSDT", precision, **params)
        stats: Any = (await sim.stats())["venues"][venue.value]
    assert AGG_PATH[venue] not in client.http.counts.requests
    assert AGG_PATH[venue] not in stats["requests"]


async def test_a_window_of_just_under_an_hour_is_sent() -> None:
    async with running_sim() as sim:
        client, precision = await _client(sim, Venue.BINANCE)
        end = FORMING - 1
        trades = await client.agg_trades("BTCUSDT", precision, start_ms=end - HOUR + 1, end_ms=end)
    assert len(trades) == 1000  # a busy hour: the oldest full page
