"""The Binance client against the simulator over real sockets: exact candles, the forming
one apart, exchange info and limits, inception, and every kind of bad reply refused."""

from __future__ import annotations

import pytest

from candlevault.domain.candles import Candle
from candlevault.domain.decimals import BINANCE_SPOT, Precision
from candlevault.domain.errors import ExchangeRejected, ExchangeUnavailable
from candlevault.domain.venues import Venue
from candlevault.exchanges.http import Retry
from candlevault.exchanges.validate import MalformedReply
from tests.integration.exchanges.venues import START_MS, binance_client, running_sim

MINUTE = 60_000


def _truth(sim_world: object, venue: Venue, symbol: str, start: int, end: int) -> list[Candle]:
    market = sim_world.market(venue, symbol)  # type: ignore[attr-defined]
    return [c for c in market.candles(start, end) if c.close_time_ms < START_MS]


@pytest.mark.parametrize("venue", [Venue.BINANCE, Venue.BINANCE_USDM])
async def test_klines_equal_the_market_exactly_and_the_forming_candle_stays_apart(
    venue: Venue,
) -> None:
    async with running_sim() as sim:
        client = binance_client(sim, venue)
        symbols = await client.symbols()
        precision = symbols["BTCUSDT"].precision
        end = START_MS - START_MS % MINUTE  # the forming minute's open
        start = end - (client.max_klines - 1) * MINUTE
        reply = await client.klines("BTCUSDT", start, end, precision)
    closed = list(reply.closed.candles())
    assert closed == _truth(sim.world, venue, "BTCUSDT", start, end - 1)
    assert len(closed) == client.max_klines - 1
    assert reply.forming is not None
    assert reply.forming.open_time_ms == end
    assert all(c.closed for c in closed)


async def test_exchange_info_gives_precisions_listing_times_and_the_weight_limit() -> None:
    async with running_sim(binance_weight_per_minute=1234) as sim:
        spot = binance_client(sim)
        usdm = binance_client(sim, Venue.BINANCE_USDM)
        spot_symbols = await spot.symbols()
        usdm_symbols = await usdm.symbols()
        spot_limit = spot._http.limiter.stats().limit
        listing = sim.world.market(Venue.BINANCE_USDM, "BTCUSDT").listing  # type: ignore[union-attr]
    assert spot_symbols["BTCUSDT"].precision == BINANCE_SPOT
    assert spot_symbols["BTCUSDT"].trading
    assert spot_limit == 1234
    btc = usdm_symbols["BTCUSDT"]
    assert btc.precision == Precision(
        listing.precision.price, listing.precision.base, listing.precision.quote
    )
    assert btc.listed_ms == listing.listed_ms


@pytest.mark.parametrize("venue", [Venue.BINANCE, Venue.BINANCE_USDM])
async def test_inception_is_the_first_minute_of_the_listing(venue: Venue) -> None:
    async with running_sim() as sim:
        client = binance_client(sim, venue)
        info = (await client.symbols())["ETHUSDT"]
        found = await client.inception_ms(info)
        market = sim.world.market(venue, "ETHUSDT")
    assert market is not None
    assert found == market.listing.listed_ms


async def test_an_unknown_symbol_is_rejected_not_retried() -> None:
    async with running_sim() as sim:
        client = binance_client(sim)
        with pytest.raises(ExchangeRejected, match="Invalid symbol"):
            await client.klines("NOPEUSDT", START_MS - 10 * MINUTE, START_MS, BINANCE_SPOT)
        stats = await sim.stats()
    assert stats["venues"]["binance"]["requests"] == {"/api/v3/klines": 1}


@pytest.mark.parametrize("kind", ["field_count", "non_numeric", "off_grid"])
async def test_a_malformed_reply_is_refused_whole(kind: str) -> None:
    async with running_sim() as sim:
        client = binance_client(sim)
        await sim.control("/_sim/faults", {"malformed": 1.0, "malformed_kinds": [kind]})
        with pytest.raises(MalformedReply):
            await client.klines("BTCUSDT", START_MS - 100 * MINUTE, START_MS, BINANCE_SPOT)


async def test_5xx_replies_are_retried_with_backoff_until_a_good_one() -> None:
    waits: list[float] = []

    async def wait(seconds: float) -> None:
        waits.append(seconds)

    async with running_sim() as sim:
        client = binance_client(sim, retry=Retry(attempts=8, base_s=0.001, cap_s=0.01, sleep=wait))
        await sim.control("/_sim/faults", {"error_5xx": 0.5})
        start = START_MS - START_MS % MINUTE - 50 * MINUTE
        replies = [
            await client.klines("BTCUSDT", start, start + 9 * MINUTE, BINANCE_SPOT)
            for _ in range(20)
        ]
    assert all(len(r.closed) == 10 for r in replies)
    assert waits  # some replies were 5xx, and were asked again after a backoff
    assert all(0 <= w <= 0.01 for w in waits)


async def test_a_venue_that_stays_down_gives_exchange_unavailable() -> None:
    async with running_sim() as sim:
        client = binance_client(sim)
        await sim.control("/_sim/faults", {"error_5xx": 1.0})
        with pytest.raises(ExchangeUnavailable, match="gave up after 3 attempts"):
            await client.klines("BTCUSDT", START_MS - 10 * MINUTE, START_MS, BINANCE_SPOT)
