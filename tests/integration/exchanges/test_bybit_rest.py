"""The Bybit client against the simulator over real sockets, spot and linear.

What the client returns must equal the world's market model exactly (with Bybit's absent
fields absent), whatever the window; symbols carry the decimals the klines are written
with; inception is found in a few requests, counted in the simulator's ledger; and every
bad reply is refused or retried, with the recovery checked.

The world is paused at `START`, a few days after the spot listings (so a monthly probe
aggregates days, not years). Rate-limit windows and the lock-out run on one fake wall
clock shared by the simulator and the client's limiter: the limiter's sleeps move it,
so waiting out a 10-minute lock-out takes no time.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import msgspec
import orjson
import pytest

from candlevault.domain.candles import Candle
from candlevault.domain.decimals import Precision
from candlevault.domain.errors import Banned, ExchangeRejected
from candlevault.domain.times import parse_time_ms
from candlevault.domain.venues import Venue
from candlevault.exchanges.bybit.rest import BybitRest, bybit_client
from candlevault.exchanges.clock import sim_clock
from candlevault.exchanges.http import Retry, VenueHttp
from candlevault.exchanges.ratelimit import RollingLimiter
from candlevault.exchanges.validate import MalformedReply
from candlevault.simulator.instruments import listing
from candlevault.simulator.market import VenueMarket
from candlevault.simulator.server import SimServer
from candlevault.simulator.world import SimConfig, SimWorld
from tests.support.fake_wall import FakeWall

START = parse_time_ms("2021-07-06T10:17:23.456Z")  # mid-minute: a candle is forming
MINUTE = 60_000
DAY = 86_400_000
FORMING = START - START % MINUTE
SOL_FIRST = parse_time_ms("2021-06-17T17:43Z")  # SOLUSDT's first trade, overridden here
VENUES = [Venue.BYBIT_SPOT, Venue.BYBIT_LINEAR]
KLINE = "/v5/market/kline"
INSTRUMENTS = "/v5/market/instruments-info"


@dataclass
class Sim:
    """A running simulator world, a session on it, and the clients' shared parts."""

    world: SimWorld
    url: str
    session: aiohttp.ClientSession
    wall: FakeWall
    limiter: RollingLimiter  # one per IP: spot and linear share Bybit's budget

    async def client(self, venue: Venue, retry: Retry | None = None) -> BybitRest:
        """The real client stack on the simulator: limiter, HTTP, the sim's clock."""
        http = VenueHttp(
            self.session,
            self.url,
            self.limiter,
            venue.value,
            retry=retry or Retry(attempts=3, sleep=self.wall.sleep, jitter=lambda: 0.5),
            wall_ms=lambda: int(self.wall.ms()),
        )
        return BybitRest(venue, http, await sim_clock(self.session, f"{self.url}/_sim/clock"))

    async def control(self, path: str, body: dict[str, Any]) -> Any:
        async with self.session.post(self.url + path, data=orjson.dumps(body)) as reply:
            assert reply.status == 200, await reply.text()
            return orjson.loads(await reply.read())

    async def ledger(self, venue: Venue) -> dict[str, Any]:
        """Return the simulator's counts for `venue` (`/_sim/stats`)."""
        async with self.session.get(self.url + "/_sim/stats") as reply:
            found: dict[str, Any] = orjson.loads(await reply.read())["venues"][venue.value]
            return found

    def market(self, venue: Venue, symbol: str) -> VenueMarket:
        market = self.world.market(venue, symbol)
        assert market is not None
        return market


StartSim = Callable[..., Awaitable[Sim]]


@pytest.fixture
async def start_sim() -> AsyncIterator[StartSim]:
    """Start simulator worlds paused at START (SimConfig fields as keywords) on port 0."""
    async with contextlib.AsyncExitStack() as stack:

        async def start(**config: Any) -> Sim:
            wall = FakeWall()
            config.setdefault("listed", (("SOLUSDT", SOL_FIRST),))
            world = SimWorld(SimConfig(start_ms=START, **config), wall=wall)
            world.clock.pause()
            server = await stack.enter_async_context(SimServer(world))
            session = await stack.enter_async_context(aiohttp.ClientSession())
            limiter = RollingLimiter(wall_ms=wall.ms, sleep=wall.sleep)
            return Sim(world, server.url, session, wall, limiter)

        yield start


@pytest.fixture
async def sim(start_sim: StartSim) -> Sim:
    return await start_sim()


def as_bybit(candle: Candle, closed: bool = True) -> Candle:
    """The world's candle as Bybit publishes it: no trade count, no taker volumes."""
    return msgspec.structs.replace(
        candle, trades=None, taker_buy_base=None, taker_buy_quote=None, closed=closed
    )


def truth(market: VenueMarket, start: int, end: int) -> list[Candle]:
    """The closed 1m candles opening in [start, end], as Bybit publishes them."""
    return [as_bybit(c) for c in market.candles(start, end) if c.close_time_ms < START]


def precision_of(venue: Venue, symbol: str) -> Precision:
    found = listing(venue, symbol)
    assert found is not None
    return found.precision


# -- klines ------------------------------------------------------------------------------


@pytest.mark.parametrize("venue", VENUES)
@pytest.mark.parametrize(
    ("symbol", "start", "end"),
    [
        ("BTCUSDT", FORMING - 1000 * MINUTE, FORMING - MINUTE),  # a full page of the past
        ("ETHUSDT", FORMING - 10 * MINUTE, START + 10 * MINUTE),  # up to the forming candle
        ("SOLUSDT", SOL_FIRST - 30 * MINUTE, SOL_FIRST + 20 * MINUTE),  # over the listing
        ("BTCUSDT", FORMING - 7 * MINUTE - 1, FORMING - MINUTE + 1),  # unaligned edges
    ],
)
async def test_klines_equal_the_market_exactly_with_bybits_absent_fields_absent(
    sim: Sim, venue: Venue, symbol: str, start: int, end: int
) -> None:
    client = await sim.client(venue)
    reply = await client.klines(symbol, start, end, precision_of(venue, symbol))
    market = sim.market(venue, symbol)
    expected = truth(market, start, end)
    assert expected  # the window is not vacuous
    assert list(reply.closed.candles()) == expected
    assert (reply.start_ms, reply.end_ms) == (start, end)
    assert reply.closed.trades is None
    assert reply.closed.taker_buy_base is None
    assert reply.closed.taker_buy_quote is None
    if end >= FORMING:  # the forming candle, apart and not closed
        forming = market.forming(FORMING, START)
        assert forming is not None
        assert reply.forming == as_bybit(forming, closed=False)
        assert reply.closed.open_time_ms[-1] == FORMING - MINUTE
    else:
        assert reply.forming is None


@pytest.mark.parametrize("venue", VENUES)
async def test_rows_bybit_sends_outside_the_window_are_dropped(sim: Sim, venue: Venue) -> None:
    client = await sim.client(venue)
    first = FORMING - 20 * MINUTE
    start = first - 30_000  # Bybit also sends the candle that contains an unaligned start
    reply = await client.klines(
        "ETHUSDT", start, first + 4 * MINUTE, precision_of(venue, "ETHUSDT")
    )
    assert reply.closed.open_time_ms == [first + i * MINUTE for i in range(5)]
    assert list(reply.closed.candles()) == truth(
        sim.market(venue, "ETHUSDT"), first, first + 4 * MINUTE
    )
    ledger = await sim.ledger(venue)
    assert (ledger["requests"], ledger["candles"]) == ({KLINE: 1}, 6)  # 6 served, 5 kept


@pytest.mark.parametrize("venue", VENUES)
async def test_a_window_longer_than_max_klines_is_cut_to_its_first_page(
    sim: Sim, venue: Venue
) -> None:
    client = await sim.client(venue)
    start = FORMING - 1500 * MINUTE
    reply = await client.klines("BTCUSDT", start, FORMING - MINUTE, precision_of(venue, "BTCUSDT"))
    cut = start + (client.max_klines - 1) * MINUTE
    assert (reply.start_ms, reply.end_ms) == (start, cut)
    assert list(reply.closed.candles()) == truth(sim.market(venue, "BTCUSDT"), start, cut)
    assert len(reply.closed) == client.max_klines == 1000
    assert client.request_weight == 1


async def test_a_window_before_the_listing_is_empty_and_says_what_is_absent(sim: Sim) -> None:
    client = await sim.client(Venue.BYBIT_SPOT)
    precision = precision_of(Venue.BYBIT_SPOT, "SOLUSDT")
    reply = await client.klines("SOLUSDT", SOL_FIRST - 50 * MINUTE, SOL_FIRST - MINUTE, precision)
    assert len(reply.closed) == 0
    assert reply.forming is None
    assert reply.closed.trades is None  # absent for Bybit, even with no rows


# -- symbols and time ---------------------------------------------------------------------


@pytest.mark.parametrize("venue", VENUES)
async def test_symbols_give_the_klines_decimals_and_linear_launch_times(
    start_sim: StartSim, venue: Venue
) -> None:
    many = tuple(f"Q{i:04d}USDT" for i in range(1000))  # past one page of 1000 on linear
    sim = await start_sim(symbols=("BTCUSDT", "ETHUSDT", "SOLUSDT", "NEOETH", *many))
    client = await sim.client(venue)
    found = await client.symbols()
    assert set(found) == {"BTCUSDT", "ETHUSDT", "SOLUSDT", *many}  # NEOETH: Binance only
    for name, info in found.items():
        listed = listing(venue, name)
        assert listed is not None
        assert info.precision == listed.precision  # e.g. spot BTCUSDT (2, 6, 8), not padded
        assert info.trading
        assert info.listed_ms == (listed.listed_ms if venue is Venue.BYBIT_LINEAR else None)
    assert found["SOLUSDT"].precision == (
        Precision(3, 1, 4, fixed=False)
        if venue is Venue.BYBIT_LINEAR
        else Precision(2, 3, 5, fixed=False)
    )
    pages = 2 if venue is Venue.BYBIT_LINEAR else 1  # linear follows nextPageCursor
    assert (await sim.ledger(venue))["requests"] == {INSTRUMENTS: pages}


async def test_server_time_is_the_simulators(sim: Sim) -> None:
    clock = await sim_clock(sim.session, f"{sim.url}/_sim/clock")
    client = bybit_client(sim.url, Venue.BYBIT_LINEAR, sim.session, clock, sim.limiter)
    assert await client.server_time_ms() == START
    sim.world.clock.step(1234)
    assert await client.server_time_ms() == START + 1234


# -- inception -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("venue", "symbol", "requests"),
    [
        (Venue.BYBIT_SPOT, "BTCUSDT", 3),  # listed on the last day of the month before
        (Venue.BYBIT_SPOT, "ETHUSDT", 3),  # listed the day before, at noon
        (Venue.BYBIT_SPOT, "SOLUSDT", 3),  # first trade at 17:43
        (Venue.BYBIT_LINEAR, "BTCUSDT", 1),  # launchTime, checked with one 1m request
        (Venue.BYBIT_LINEAR, "ETHUSDT", 1),
        (Venue.BYBIT_LINEAR, "SOLUSDT", 4),  # launched days before its first trade: probed
    ],
)
async def test_inception_is_the_first_1m_candle_in_few_requests(
    sim: Sim, venue: Venue, symbol: str, requests: int
) -> None:
    client = await sim.client(venue)
    info = (await client.symbols())[symbol]
    await sim.control("/_sim/stats/reset", {})
    found = await client.inception_ms(info)
    market = sim.market(venue, symbol)
    assert found is not None
    first = market.candles(found - DAY, found + DAY)[0]  # nothing before it, it opens then
    assert found == first.open_time_ms == market.listing.listed_ms
    assert (await sim.ledger(venue))["requests"] == {KLINE: requests}


@pytest.mark.parametrize(("venue", "requests"), [(Venue.BYBIT_SPOT, 1), (Venue.BYBIT_LINEAR, 2)])
async def test_a_symbol_that_never_traded_has_no_inception(
    start_sim: StartSim, venue: Venue, requests: int
) -> None:
    sim = await start_sim(listed=(("SOLUSDT", START + DAY),))  # trades from tomorrow
    client = await sim.client(venue)
    info = (await client.symbols())["SOLUSDT"]
    await sim.control("/_sim/stats/reset", {})
    assert await client.inception_ms(info) is None
    assert (await sim.ledger(venue))["requests"] == {KLINE: requests}


# -- refusals, bans and faults --------------------------------------------------------------


@pytest.mark.parametrize("venue", VENUES)
async def test_an_unknown_symbol_is_rejected_and_not_retried(sim: Sim, venue: Venue) -> None:
    client = await sim.client(venue)
    with pytest.raises(ExchangeRejected, match=r"Not supported symbols \(retCode 10001\)"):
        await client.klines("NOPEUSDT", FORMING - 10 * MINUTE, FORMING, Precision(2, 2, 4, False))
    assert (await sim.ledger(venue))["requests"] == {KLINE: 1}


async def test_a_lock_out_is_banned_then_waited_out_before_the_next_request(
    start_sim: StartSim,
) -> None:
    sim = await start_sim(bybit_requests_per_5s=3)  # another client on the IP used the rest
    spot = await sim.client(Venue.BYBIT_SPOT)
    linear = await sim.client(Venue.BYBIT_LINEAR)
    window = (FORMING - 5 * MINUTE, FORMING - MINUTE, precision_of(Venue.BYBIT_SPOT, "BTCUSDT"))
    for _ in range(3):
        await spot.klines("BTCUSDT", *window)
    with pytest.raises(Banned) as banned:
        await spot.klines("BTCUSDT", *window)
    assert banned.value.retry_after == 600
    before = sim.wall.t
    lin = precision_of(Venue.BYBIT_LINEAR, "BTCUSDT")
    reply = await linear.klines("BTCUSDT", window[0], window[1], lin)  # the same IP: it waits
    assert sim.wall.t - before >= 600  # the limiter held every request back for the lock-out
    assert list(reply.closed.candles()) == truth(
        sim.market(Venue.BYBIT_LINEAR, "BTCUSDT"), window[0], window[1]
    )
    spot_ledger = await sim.ledger(Venue.BYBIT_SPOT)
    assert spot_ledger["status"]["403"] == 1  # refused once, never hammered while locked out
    assert (await sim.ledger(Venue.BYBIT_LINEAR))["status"]["200"] == 1


@pytest.mark.parametrize("venue", VENUES)
@pytest.mark.parametrize("kind", ["field_count", "non_numeric", "off_grid"])
async def test_a_malformed_row_is_refused_whole_and_a_good_reply_then_accepted(
    sim: Sim, venue: Venue, kind: str
) -> None:
    client = await sim.client(venue)
    window = (FORMING - 30 * MINUTE, FORMING - MINUTE, precision_of(venue, "SOLUSDT"))
    await sim.control("/_sim/faults", {"malformed": 1.0, "malformed_kinds": [kind]})
    with pytest.raises(MalformedReply):
        await client.klines("SOLUSDT", *window)
    await sim.control("/_sim/faults", {"malformed": 0.0})
    reply = await client.klines("SOLUSDT", *window)
    assert list(reply.closed.candles()) == truth(sim.market(venue, "SOLUSDT"), *window[:2])


async def test_an_off_grid_row_at_the_windows_edge_is_refused_not_dropped(sim: Sim) -> None:
    client = await sim.client(Venue.BYBIT_SPOT)
    precision = precision_of(Venue.BYBIT_SPOT, "BTCUSDT")
    # One row: corrupted, it opens 30 s after the window's end, where it would be dropped.
    await sim.control("/_sim/faults", {"malformed": 1.0, "malformed_kinds": ["off_grid"]})
    with pytest.raises(MalformedReply, match="off the 1m grid"):
        await client.klines("BTCUSDT", FORMING - MINUTE, FORMING - MINUTE, precision)


@pytest.mark.parametrize("venue", VENUES)
async def test_a_5xx_is_retried_and_the_retry_answers(sim: Sim, venue: Venue) -> None:
    waits: list[float] = []

    async def heal(seconds: float) -> None:  # the venue recovers while the client backs off
        waits.append(seconds)
        await sim.control("/_sim/faults", {"error_5xx": 0.0})

    client = await sim.client(venue, Retry(attempts=3, sleep=heal, jitter=lambda: 0.5))
    await sim.control("/_sim/faults", {"error_5xx": 1.0})
    window = (FORMING - 12 * MINUTE, FORMING - MINUTE)
    reply = await client.klines("ETHUSDT", *window, precision_of(venue, "ETHUSDT"))
    assert list(reply.closed.candles()) == truth(sim.market(venue, "ETHUSDT"), *window)
    assert waits == [0.125]  # one backoff: half of the first step's 0.25 s
    status = (await sim.ledger(venue))["status"]
    assert status["200"] == 1
    assert sum(n for code, n in status.items() if code.startswith("5")) == 1


async def test_a_truncated_reply_is_malformed(sim: Sim) -> None:
    client = await sim.client(Venue.BYBIT_LINEAR)
    precision = precision_of(Venue.BYBIT_LINEAR, "BTCUSDT")
    await sim.control("/_sim/faults", {"truncated": 1.0})
    with pytest.raises(MalformedReply):
        await client.klines("BTCUSDT", FORMING - 9 * MINUTE, FORMING - MINUTE, precision)
