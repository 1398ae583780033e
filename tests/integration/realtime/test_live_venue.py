"""LiveCandles with what the venue says besides trades: its own closed klines reconcile
and settle minutes, Binance's aggTrades make a (re)started minute whole, Bybit's forming
kline is the provisional open candle, and a feed that loses trades while connected is
found out from REST. Real SQLite, an exchange clock moved by the test; `repair` and
`backfill` are the ports the service fills from REST, here answered from known trades."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import pytest

from candlevault.aggregation.trades import fold_trades
from candlevault.domain.candles import Candle
from candlevault.domain.columns import columns_from
from candlevault.domain.decimals import BINANCE_SPOT
from candlevault.domain.errors import ExchangeUnavailable
from candlevault.domain.spans import Span
from candlevault.domain.timeframes import M1, MINUTE_MS
from candlevault.domain.trades import Trade
from candlevault.domain.venues import Venue
from candlevault.exchanges.ports import SymbolInfo
from candlevault.ingest.writer import Ingestor
from candlevault.realtime.live import LiveCandles
from candlevault.storage.sqlite import SqliteStore
from tests.integration.realtime.test_live_candles import ExchangeClock, trades_of

T0 = 1_700_006_400_000  # an hour's open
INFO = SymbolInfo("BTCUSDT", BINANCE_SPOT, True)
B, Y = Venue.BINANCE, Venue.BYBIT_LINEAR


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    opened = await SqliteStore.open(tmp_path / "candles.sqlite3")
    yield opened
    await opened.aclose()


@dataclass
class Exchange:
    """The exchange as the ports see it: its trades; REST (repair, backfill) answers
    from them."""

    store: SqliteStore
    trades: list[Trade] = field(default_factory=list)
    repairs: list[tuple[Span, bool]] = field(default_factory=list)
    backfills: list[tuple[int, int | None]] = field(default_factory=list)
    fail_backfill: bool = False
    silent: list[object] = field(default_factory=list)

    def kline(self, minute: int) -> Candle:
        """The minute's kline: its trades folded, flat at the last price if none."""
        candle = self.maybe_kline(minute)
        assert candle is not None
        return candle

    def maybe_kline(self, minute: int) -> Candle | None:
        """The minute's kline, None before the first trade."""
        mine = [t for t in self.trades if minute <= t.time_ms < minute + MINUTE_MS]
        before = [t for t in self.trades if t.time_ms < minute]
        prev = before[-1].price if before else None
        return fold_trades(mine, open_time_ms=minute, precision=BINANCE_SPOT, prev_close=prev)

    async def repair(self, venue: Venue, symbol: str, span: Span, fresh: bool) -> None:
        self.repairs.append((span, fresh))
        minutes = range(span[0], span[1], MINUTE_MS)
        candles = [c for c in map(self.maybe_kline, minutes) if c is not None]
        if venue is Y:
            candles = [
                msgspec.structs.replace(c, trades=None, taker_buy_base=None, taker_buy_quote=None)
                for c in candles
            ]
        await Ingestor(self.store).ingest(venue, symbol, columns_from(candles), inception_ms=T0)

    async def backfill(
        self, venue: Venue, info: SymbolInfo, from_ms: int, until_id: int | None
    ) -> list[Trade]:
        self.backfills.append((from_ms, until_id))
        if self.fail_backfill:
            raise ExchangeUnavailable("aggTrades: 503")
        return [
            t for t in self.trades
            if t.time_ms >= from_ms and (until_id is None or int(t.trade_id) < until_id)
        ]  # fmt: skip


def make_live(
    store: SqliteStore, venue: Exchange, clock: ExchangeClock, batch_ms: int = 15 * MINUTE_MS
) -> LiveCandles:
    return LiveCandles(
        Ingestor(store),
        lambda v: clock,
        venue.repair,
        backfill=venue.backfill,
        on_silent=venue.silent.append,
        grace_ms=2000,
        tick_s=0.01,
        repair_batch_ms=batch_ms,
    )


async def stored(store: SqliteStore, venue: Venue = B) -> list[Candle]:
    return list((await store.read(venue, "BTCUSDT", M1)).candles())


async def test_a_minute_the_venue_closed_differently_is_written_as_the_venue_has_it(
    store: SqliteStore,
) -> None:
    clock, venue = ExchangeClock(T0), Exchange(store)
    live = make_live(store, venue, clock)
    live.track(B, INFO, T0)
    live.connected(B, T0)
    rng = random.Random(5)
    first, second = trades_of(T0, 30, 1, rng), trades_of(T0 + MINUTE_MS, 30, 31, rng)
    venue.trades = first + second
    live.on_trades(B, "BTCUSDT", first[:-1])  # the stream lost the minute's last trade
    live.on_alive(B, T0 + MINUTE_MS + 100)
    # Quiet after: the second minute has no trade on the stream, so it would be flat at
    # the (wrong) close of the first.
    theirs = venue.kline(T0)
    live.on_klines(B, "BTCUSDT", [theirs])
    clock.now = T0 + 2 * MINUTE_MS + 2500
    live.on_alive(B, clock.now)
    await live.tick()
    await live.repairs_done()
    rows = await stored(store)
    assert rows[0] == theirs
    assert (rows[1].volume, rows[1].close, rows[1].open) == (0, theirs.close, theirs.close)
    assert live.corrections == 1


async def test_a_late_closed_kline_corrects_the_stored_minute(store: SqliteStore) -> None:
    clock, venue = ExchangeClock(T0), Exchange(store)
    live = make_live(store, venue, clock)
    live.track(B, INFO, T0)
    live.connected(B, T0)
    venue.trades = trades_of(T0, 20, 1, random.Random(9))
    live.on_trades(B, "BTCUSDT", venue.trades[:-2])
    clock.now = T0 + MINUTE_MS + 2500
    live.on_alive(B, clock.now)
    await live.tick()
    await live.repairs_done()
    assert (await stored(store))[0] != venue.kline(T0)
    live.on_klines(B, "BTCUSDT", [venue.kline(T0)])  # late: the minute is written already
    await live.repairs_done()
    assert (await stored(store))[0] == venue.kline(T0)
    assert live.corrections == 1


async def test_the_venue_kline_settles_the_minute_the_feed_started_in(store: SqliteStore) -> None:
    """Bybit has no trades by id: the minute the feed came up in is served from the
    venue's own forming kline (provisional) and stored from its closed one, no REST."""
    clock, venue = ExchangeClock(T0 + 20_000), Exchange(store)
    live = make_live(store, venue, clock)
    info = SymbolInfo("BTCUSDT", BINANCE_SPOT, True)
    live.track(Y, info, T0)
    venue.trades = trades_of(T0, 30, 1, random.Random(2))
    live.connected(Y, clock.now)
    assert live.minute(Y, "BTCUSDT", clock.now) is None  # nothing of the venue's yet
    forming = msgspec.structs.replace(venue.kline(T0), closed=False)
    live.on_klines(Y, "BTCUSDT", [forming])
    assert live.minute(Y, "BTCUSDT", clock.now) == (forming,)  # provisional
    live.on_trades(Y, "BTCUSDT", [t for t in venue.trades if t.time_ms >= clock.now])
    bybit = msgspec.structs.replace(
        venue.kline(T0), trades=None, taker_buy_base=None, taker_buy_quote=None
    )
    live.on_klines(Y, "BTCUSDT", [bybit])  # confirm: true
    clock.now = T0 + MINUTE_MS + 2500
    live.on_alive(Y, clock.now)
    await live.tick()
    await live.repairs_done()
    assert await stored(store, Y) == [bybit]
    assert all(span[1] <= T0 for span, _ in venue.repairs)  # only the look-back before it
    assert live.settled_minutes == 1


async def test_binance_backfills_the_minute_it_came_up_in_by_trade_id(store: SqliteStore) -> None:
    clock, venue = ExchangeClock(T0 + 25_000), Exchange(store)
    live = make_live(store, venue, clock)
    live.track(B, INFO, T0)
    venue.trades = trades_of(T0, 40, 1, random.Random(4))
    live.connected(B, clock.now)  # mid-minute: its first 25 s were not streamed
    streamed = [t for t in venue.trades if t.time_ms >= clock.now - 1000]  # some overlap
    live.on_trades(B, "BTCUSDT", streamed)
    assert live.minute(B, "BTCUSDT", clock.now) is None  # held until the backfill lands
    await live.repairs_done()
    assert venue.backfills == [(T0, int(streamed[0].trade_id))]  # up to the stream's first
    (open_candle,) = live.minute(B, "BTCUSDT", clock.now) or (None,)
    assert open_candle == msgspec.structs.replace(venue.kline(T0), closed=False)
    clock.now = T0 + MINUTE_MS + 2500
    live.on_alive(B, clock.now)
    await live.tick()
    await live.repairs_done()
    assert await stored(store) == [venue.kline(T0)]
    assert all(span[1] <= T0 for span, _ in venue.repairs)  # the minute cost no kline request
    assert live.backfilled_trades > 0


async def test_a_failed_backfill_leaves_the_minute_to_rest(store: SqliteStore) -> None:
    clock, venue = ExchangeClock(T0 + 25_000), Exchange(store, fail_backfill=True)
    live = make_live(store, venue, clock)
    live.track(B, INFO, T0)
    venue.trades = trades_of(T0, 40, 1, random.Random(4))
    live.connected(B, clock.now)
    live.on_trades(B, "BTCUSDT", [t for t in venue.trades if t.time_ms >= clock.now])
    await live.repairs_done()
    # The next minute trades and closes: the unknown one before it goes to REST.
    venue.trades += trades_of(T0 + MINUTE_MS, 10, 100, random.Random(6))
    live.on_trades(B, "BTCUSDT", venue.trades[40:])
    clock.now = T0 + 2 * MINUTE_MS + 2500
    live.on_alive(B, clock.now)
    await live.tick()
    await live.repairs_done()
    assert ((T0, T0 + MINUTE_MS), False) in venue.repairs
    assert await stored(store) == [venue.kline(T0), venue.kline(T0 + MINUTE_MS)]


async def test_lost_trades_on_a_connected_feed_call_it_silent_and_quiet_minutes_do_not(
    store: SqliteStore,
) -> None:
    clock, venue = ExchangeClock(T0), Exchange(store)
    live = make_live(store, venue, clock, batch_ms=2 * MINUTE_MS)
    live.track(B, INFO, T0)
    live.connected(B, T0)
    first = trades_of(T0, 10, 1, random.Random(1))
    venue.trades = list(first)
    live.on_trades(B, "BTCUSDT", first)
    live.on_alive(B, first[-1].time_ms)
    # Quiet: nothing more on the feed, nothing more at the venue.
    clock.now = T0 + 2 * MINUTE_MS + 2500
    await live.tick()
    await live.repairs_done()
    assert ((T0, T0 + 2 * MINUTE_MS), False) in venue.repairs  # unproven: one request
    assert venue.silent == []
    # Now the venue trades but the connected feed delivers nothing.
    venue.trades += trades_of(T0 + 3 * MINUTE_MS, 10, 100, random.Random(2))
    clock.now = T0 + 5 * MINUTE_MS + 2500
    await live.tick()
    await live.repairs_done()
    assert ((T0 + 2 * MINUTE_MS, T0 + 5 * MINUTE_MS), False) in venue.repairs
    assert venue.silent == [B]
    assert live.silent_feeds == 1
