"""LiveCandles: streamed trades become stored 1m candles through the one write path; a
broken feed never writes a guessed minute and asks REST for exactly what it missed."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from candlevault.aggregation.trades import fold_trades
from candlevault.domain.decimals import BINANCE_SPOT
from candlevault.domain.spans import Span
from candlevault.domain.timeframes import H1, M1, MINUTE_MS
from candlevault.domain.trades import Trade
from candlevault.domain.venues import Venue
from candlevault.exchanges.ports import SymbolInfo
from candlevault.ingest.writer import Ingestor
from candlevault.realtime.live import LiveCandles
from candlevault.storage.sqlite import SqliteStore

V = Venue.BINANCE
T0 = 1_700_006_400_000  # 2023-11-15 00:00 UTC, an hour's open
INFO = SymbolInfo("BTCUSDT", BINANCE_SPOT, True)


class ExchangeClock:
    """The exchange's time, moved by the test."""

    def __init__(self, now_ms: int) -> None:
        self.now = now_ms

    def now_ms(self) -> int:
        return self.now


def trades_of(minute: int, n: int, first_id: int, rng: random.Random) -> list[Trade]:
    price = 3_000_000_000_000
    return [
        Trade(first_id + i, price + rng.randint(-10**8, 10**8), rng.randint(1, 10**6),
              minute + i * (MINUTE_MS // n), rng.random() < 0.5)
        for i in range(n)
    ]  # fmt: skip


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    opened = await SqliteStore.open(tmp_path / "candles.sqlite3")
    yield opened
    await opened.aclose()


async def test_streamed_minutes_are_stored_and_the_open_one_served(store: SqliteStore) -> None:
    clock = ExchangeClock(T0)
    repairs: list[tuple[Span, bool]] = []

    async def repair(venue: Venue, symbol: str, span: Span, fresh: bool) -> None:
        repairs.append((span, fresh))

    ingestor = Ingestor(store)
    await ingestor.update_coverage(V, "BTCUSDT", lambda c: c.with_inception(T0 - 86_400_000))
    live = LiveCandles(ingestor, lambda v: clock, repair, grace_ms=2000)
    live.track(V, INFO, T0 - 86_400_000)
    assert live.minute(V, "BTCUSDT", T0) is None  # no feed yet: the exchange is asked
    live.connected(V, T0)  # at the minute's open: the first minute is whole
    rng = random.Random(7)
    minutes = [trades_of(T0 + k * MINUTE_MS, 50, 1 + 50 * k, rng) for k in range(3)]
    for k, batch in enumerate(minutes):
        live.on_trades(V, "BTCUSDT", batch)
        live.on_alive(V, batch[-1].time_ms)
        clock.now = T0 + k * MINUTE_MS + 59_000
        (open_minute,) = live.minute(V, "BTCUSDT", clock.now) or (None,)
        assert open_minute is not None
        assert open_minute.open_time_ms == T0 + k * MINUTE_MS
        assert not open_minute.closed
    live.on_alive(V, T0 + 3 * MINUTE_MS + 500)  # a later message: the third minute is over
    clock.now = T0 + 3 * MINUTE_MS + 2500
    await live.tick()
    stored = list((await store.read(V, "BTCUSDT", M1)).candles())
    expected, prev = [], None
    for k, batch in enumerate(minutes):
        candle = fold_trades(batch, open_time_ms=T0 + k * MINUTE_MS, precision=BINANCE_SPOT,
                             prev_close=prev)  # fmt: skip
        assert candle is not None
        expected.append(candle)
        prev = candle.close
    assert stored == expected
    assert len(await store.read(V, "BTCUSDT", H1)) == 1  # derived by the write path
    await live.repairs_done()
    # Only the look-back of the first connection: the hour before the stream came up,
    # of which the planner fetches just the minutes not held.
    assert repairs == [((T0 - 60 * MINUTE_MS, T0), False)]
    assert live.closed_minutes == 3


async def test_a_broken_feed_repairs_what_it_missed_and_writes_no_flat_minute(
    store: SqliteStore,
) -> None:
    clock = ExchangeClock(T0)
    repairs: list[tuple[Span, bool]] = []

    async def repair(venue: Venue, symbol: str, span: Span, fresh: bool) -> None:
        repairs.append((span, fresh))

    live = LiveCandles(Ingestor(store), lambda v: clock, repair, grace_ms=2000, tick_s=0.01)
    live.track(V, INFO, T0)
    live.connected(V, T0)
    rng = random.Random(3)
    first = trades_of(T0, 20, 1, rng)
    live.on_trades(V, "BTCUSDT", first)
    live.on_alive(V, T0 + 30_000)
    live.broken(V)  # mid-minute: the feed is proven alive to :30 only
    assert live.minute(V, "BTCUSDT", T0 + 31_000) is None
    clock.now = T0 + 5 * MINUTE_MS + 10_000  # back five minutes later, mid-minute
    live.connected(V, clock.now)
    live.on_alive(V, clock.now)
    clock.now = T0 + 7 * MINUTE_MS + 3000
    live.on_alive(V, clock.now)
    await live.tick()
    await live.repairs_done()
    # Nothing was guessed: the minute it broke in was not seen whole, the one it came back
    # in neither, and the quiet one after has no known previous close to be flat at.
    assert len(await store.read(V, "BTCUSDT", M1)) == 0
    spans = sorted(span for span, _ in repairs)
    assert spans[0] == (T0 - 60 * MINUTE_MS, T0)  # the first connection's look-back
    assert spans[1] == (T0, T0 + 5 * MINUTE_MS)  # from the minute it broke in to its return
    assert spans[2:] == [(T0 + 5 * MINUTE_MS, T0 + 7 * MINUTE_MS)]  # reported by the builder
    assert all(not fresh for _, fresh in repairs)
