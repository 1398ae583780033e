"""The streamed symbols of a service: one `CandleBuilder` each, fed by the venue streams
and ticked by the exchange clock; what closes goes through the one write path.

Every `tick_s` each builder is advanced to the exchange's now with the time its feed is
proven alive to (the event time of the newest message on its unbroken connection):
- closed 1m candles are ingested (higher timeframes derived there) and so reach the
  warm store and, through the ingest listener, the hot cache;
- minutes the builder could not vouch for (`unknown`: a silent or broken feed, the
  minute the feed started in) and minutes a late trade says are wrong are repaired from
  REST in the background, through the same planner as every fetch (`repair`), so the
  exchange is asked exactly for them, once.

A disconnect ends a builder's unbroken stretch: `broken()` retires the venue's builders
(what they saw of the open minutes is unknown) and starts new ones when the feed is back,
so a minute of the outage is never written as a flat candle. While a symbol's feed is up
its forming minute (`minute`, the `LiveMinutes` of `service.forming`) comes from its
builder and the read path asks the exchange nothing for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from candlevault.aggregation.builder import CandleBuilder, Closing
from candlevault.domain.candles import Candle
from candlevault.domain.clock import Clock
from candlevault.domain.columns import columns_from
from candlevault.domain.errors import CandlevaultError
from candlevault.domain.spans import Span
from candlevault.domain.timeframes import M1, MINUTE_MS
from candlevault.domain.trades import Trade
from candlevault.domain.venues import Venue
from candlevault.exchanges.ports import SymbolInfo
from candlevault.ingest.writer import Ingestor

log = logging.getLogger(__name__)
Repair = Callable[[Venue, str, Span, bool], Awaitable[None]]  # (venue, symbol, span, fresh)
BYBIT = (Venue.BYBIT_SPOT, Venue.BYBIT_LINEAR)
FIRST_LOOK_BACK_MS = 60 * MINUTE_MS


class _Live:
    """One streamed symbol: its info, its builder (None while its feed is down)."""

    __slots__ = ("builder", "inception_ms", "info", "repaired_minutes")

    def __init__(self, info: SymbolInfo, inception_ms: int | None) -> None:
        self.info = info
        self.inception_ms = inception_ms
        self.builder: CandleBuilder | None = None
        self.repaired_minutes = 0


class LiveCandles:
    """Builders of the streamed symbols, per venue (see the module docstring)."""

    def __init__(
        self,
        ingestor: Ingestor,
        clock_of: Callable[[Venue], Clock],
        repair: Repair,
        *,
        grace_ms: int = 2000,
        tick_s: float = 0.25,
        stale_ms: int = 15_000,
    ) -> None:
        self.ingestor = ingestor
        self.stale_ms = stale_ms
        self.clock_of = clock_of
        self.repair = repair
        self.grace_ms = grace_ms
        self.tick_s = tick_s
        self._symbols: dict[tuple[Venue, str], _Live] = {}
        self._alive: dict[Venue, int] = {}  # event time the venue's feed is proven up to
        self._up: set[Venue] = set()
        self._down_from: dict[Venue, int] = {}
        self._repairs: set[asyncio.Task[None]] = set()
        self.closed_minutes = 0
        self.unknown_minutes = 0
        self.late_trades = 0

    # --- what the streams report -----------------------------------------------------

    def track(self, venue: Venue, info: SymbolInfo, inception_ms: int | None) -> None:
        """Stream `info.symbol` from now on (a builder starts with the next message)."""
        live = self._symbols.setdefault((venue, info.symbol), _Live(info, inception_ms))
        if venue in self._up and live.builder is None:
            live.builder = self._builder(venue, live)

    def untrack(self, venue: Venue, symbol: str) -> None:
        """Stop building `symbol` (its history stays)."""
        self._symbols.pop((venue, symbol), None)

    def symbols(self, venue: Venue) -> list[str]:
        """Return the venue's streamed symbols."""
        return [s for v, s in self._symbols if v is venue]

    def connected(self, venue: Venue, now_ms: int) -> None:
        """The venue's feed is (back) up: each symbol gets a builder from `now_ms`, and
        the minutes since the feed was last proven alive are repaired from REST."""
        self._up.add(venue)
        # After a drop: from where the feed was last proven alive. On the first connection:
        # the hour before it (only the minutes not held are fetched: usually the few
        # between the bootstrap and the stream's first message, often none).
        down_from = self._down_from.pop(venue, now_ms - FIRST_LOOK_BACK_MS)
        self._alive[venue] = now_ms
        for (v, symbol), live in self._symbols.items():
            if v is not venue:
                continue
            live.builder = self._builder(venue, live, start_ms=now_ms)
            first = down_from - down_from % MINUTE_MS  # to the minute it is (back) up in
            self._repair(venue, symbol, (first, now_ms - now_ms % MINUTE_MS), False)

    def broken(self, venue: Venue) -> None:
        """The venue's feed dropped: its builders' unbroken stretch ends here; what they
        had not closed is repaired from REST once it has closed."""
        self._up.discard(venue)
        alive = self._alive.get(venue, 0)
        for (v, symbol), live in self._symbols.items():
            if v is not venue or live.builder is None:
                continue
            builder, live.builder = live.builder, None
            self._settle(venue, symbol, live, builder.advance(alive + self.grace_ms, alive))
        self._down_from[venue] = alive  # `connected` repairs from here

    def gap(self, venue: Venue, start_ms: int, end_ms: int) -> None:
        """The venue's feed lost what happened between its events at `start_ms` and
        `end_ms` (a reconnect): end the builders' stretch at `start_ms`, start new ones at
        `end_ms`, and repair the minutes between from REST."""
        self._alive[venue] = start_ms
        self.broken(venue)
        self.connected(venue, end_ms)

    def is_up(self, venue: Venue) -> bool:
        """Whether the venue's feed is up (its builders running)."""
        return venue in self._up

    def on_trades(self, venue: Venue, symbol: str, trades: Sequence[Trade]) -> None:
        """Fold trades of `symbol` (arrival order)."""
        live = self._symbols.get((venue, symbol))
        if live is None or live.builder is None:
            return
        add = live.builder.add
        for trade in trades:
            add(trade)

    def on_alive(self, venue: Venue, event_ms: int) -> None:
        """A message with exchange time `event_ms` arrived on the venue's feed."""
        if event_ms > self._alive.get(venue, 0):
            self._alive[venue] = event_ms

    # --- what the read path asks -------------------------------------------------------

    def minute(self, venue: Venue, symbol: str, now_ms: int) -> tuple[Candle | None] | None:
        """The open 1m candle while `symbol` is streamed and its feed is up."""
        live = self._symbols.get((venue, symbol))
        if live is None or live.builder is None:
            return None
        if now_ms - self._alive.get(venue, 0) > self.stale_ms:
            return None  # nothing heard for a while: the feed may be down, ask the exchange
        candle = live.builder.open_candle(M1)
        if candle is not None and candle.open_time_ms != now_ms - now_ms % MINUTE_MS:
            candle = None  # the minute has closed and nothing traded in the new one yet
        return (candle,)

    def pending(self, venue: Venue, symbol: str, now_ms: int) -> list[Candle]:
        """Minutes over that the symbol's stream has not closed yet (see the builder)."""
        live = self._symbols.get((venue, symbol))
        if live is None or live.builder is None:
            return []
        return live.builder.pending(now_ms)

    def health(self) -> dict[str, object]:
        """Per venue: up or not, and how far its feed is proven alive."""
        return {
            "venues": {
                v.value: {"up": v in self._up, "alive_until_ms": self._alive.get(v)}
                for v in {v for v, _ in self._symbols}
            },
            "closed_minutes": self.closed_minutes,
            "unknown_minutes": self.unknown_minutes,
            "late_trades": self.late_trades,
        }

    async def repairs_done(self) -> None:
        """Wait until every repair started so far has ended."""
        while self._repairs:
            await asyncio.gather(*self._repairs, return_exceptions=True)

    # --- the clock ------------------------------------------------------------------------

    async def run(self) -> None:
        """Advance every builder every `tick_s` until cancelled."""
        try:
            while True:
                await self.tick()
                await asyncio.sleep(self.tick_s)
        finally:
            for task in list(self._repairs):
                task.cancel()
            await asyncio.gather(*self._repairs, return_exceptions=True)

    async def tick(self) -> None:
        """Advance every live builder to its venue's exchange time; write what closed."""
        for venue, symbol in list(self._symbols):
            await self.settle(venue, symbol)

    async def settle(self, venue: Venue, symbol: str) -> None:
        """Advance one symbol's builder now and write what closed: the read path calls
        it first, so a minute the stream has finished is stored, not fetched."""
        live = self._symbols.get((venue, symbol))
        if live is None or live.builder is None:
            return
        now = self.clock_of(venue).now_ms()
        closing = live.builder.advance(now, self._alive.get(venue, 0))
        if closing.candles:
            await self._write(venue, symbol, closing.candles, now)
        self._settle(venue, symbol, live, closing)

    async def _write(self, venue: Venue, symbol: str, candles: list[Candle], now: int) -> None:
        try:
            await self.ingestor.ingest(
                venue, symbol, columns_from(candles), inception_ms=None, now_ms=now
            )
        except CandlevaultError as e:  # the store refused: the minutes stay missing
            log.warning("writing %s %s streamed minutes failed: %s", venue.value, symbol, e)
            return
        self.closed_minutes += len(candles)

    def _settle(self, venue: Venue, symbol: str, live: _Live, closing: Closing) -> None:
        for span in closing.unknown:
            self.unknown_minutes += (span[1] - span[0]) // MINUTE_MS
            self._repair(venue, symbol, span, False)
        if closing.late:
            self.late_trades += len(closing.late)
            for minute in closing.late_minutes():
                self._repair(venue, symbol, (minute, minute + MINUTE_MS), True)

    def _repair(self, venue: Venue, symbol: str, span: Span, fresh: bool) -> None:
        if span[1] <= span[0]:
            return
        live = self._symbols.get((venue, symbol))
        if live is not None:
            live.repaired_minutes += (span[1] - span[0]) // MINUTE_MS
        task = asyncio.create_task(self._repair_now(venue, symbol, span, fresh))
        self._repairs.add(task)
        task.add_done_callback(self._repairs.discard)

    async def _repair_now(self, venue: Venue, symbol: str, span: Span, fresh: bool) -> None:
        """Fetch the span from REST once it has closed (after the grace)."""
        clock = self.clock_of(venue)
        wait_ms = span[1] + self.grace_ms - clock.now_ms()
        while wait_ms > 0:  # exchange time may run faster than the wall: check again
            await asyncio.sleep(min(wait_ms / 1000, self.tick_s))
            wait_ms = span[1] + self.grace_ms - clock.now_ms()
        try:
            await self.repair(venue, symbol, span, fresh)
        except CandlevaultError as e:
            log.warning("repairing %s %s %s failed: %s", venue.value, symbol, span, e)

    def _builder(self, venue: Venue, live: _Live, start_ms: int | None = None) -> CandleBuilder:
        return CandleBuilder(
            live.info.precision,
            inception_ms=live.inception_ms,
            timeframes=(M1,),  # higher open candles: the stored part + this minute
            trade_details=venue not in BYBIT,
            grace_ms=self.grace_ms,
            start_ms=start_ms,
        )
