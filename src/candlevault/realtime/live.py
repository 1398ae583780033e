"""The streamed symbols of a service: one `CandleBuilder` each, fed by the venue streams
and ticked by the exchange clock; what closes goes through the one write path.

Every `tick_s` each builder is advanced to the exchange's now with the time its feed (one
connection: `Feed`) is proven alive to (the event time of the newest message on it):
- closed 1m candles are reconciled with the venue's own closed klines when the kline
  stream is followed (`reconcile`: the venue's version wins, counted as a correction),
  then ingested (higher timeframes derived there) and so reach the warm store and,
  through the ingest listener, the hot cache;
- minutes the builder could not vouch for (`unknown`: a silent or broken feed, the
  minute the feed started in) are settled by the venue's closed kline if one came, else
  repaired from REST in the background through the same planner as every fetch
  (`repair`), so the exchange is asked exactly for them, once; a minute a late trade
  says is wrong is fetched again (`fresh`);
- a minute the feed watched but never proved alive past (`unproven`) is repaired too,
  and if REST shows trades the feed never delivered, the feed is losing data while
  connected: `on_silent(feed)` (the owner reconnects it). A quiet symbol's minutes come
  back flat, which is no fault.

A disconnect ends a builder's unbroken stretch: `broken()` retires the feed's builders
(what they saw of the open minutes is unknown) and `connected()` starts new ones, so a
minute of the outage is never written as a flat candle. The minute the feed (re)starts
in is made whole where the venue allows: on Binance its earlier trades are fetched by id
(`backfill`: aggTrades) while the stream's are held, then both are folded in id order;
on Bybit, which has no such history, that minute's open candle is the venue's own
provisional kline until its closed kline (or REST) settles it. While a symbol's feed is
up, its forming minute (`minute`, the `LiveMinutes` of `service.forming`) comes from
here and the read path asks the exchange nothing for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Hashable, Sequence
from typing import Any

import msgspec

from candlevault.aggregation.builder import CandleBuilder, Closing
from candlevault.domain.candles import Candle
from candlevault.domain.clock import Clock
from candlevault.domain.columns import columns_from
from candlevault.domain.errors import CandlevaultError
from candlevault.domain.timeframes import M1, MINUTE_MS
from candlevault.domain.trades import Trade
from candlevault.domain.venues import Venue
from candlevault.exchanges.ports import SymbolInfo
from candlevault.ingest.writer import Ingestor
from candlevault.realtime.backfill import Backfill, missed_trades
from candlevault.realtime.reconcile import differences, is_flat, reconcile
from candlevault.realtime.repairs import Repair, Repairs
from candlevault.realtime.symbol import LiveSymbol

log = logging.getLogger(__name__)
Feed = Hashable  # one connection's identity: the venue itself when it has one
BACKFILLED = (Venue.BINANCE, Venue.BINANCE_USDM)  # venues whose trades can be had by id
BYBIT = (Venue.BYBIT_SPOT, Venue.BYBIT_LINEAR)
FIRST_LOOK_BACK_MS = 60 * MINUTE_MS


class LiveCandles:
    """Builders of the streamed symbols, per feed (see the module docstring)."""

    def __init__(
        self,
        ingestor: Ingestor,
        clock_of: Callable[[Venue], Clock],
        repair: Repair,
        *,
        backfill: Backfill | None = None,
        on_silent: Callable[[Feed], None] | None = None,
        grace_ms: int = 2000,
        tick_s: float = 0.25,
        stale_ms: int = 15_000,
        repair_batch_ms: int = 5 * MINUTE_MS,
    ) -> None:
        self.ingestor = ingestor
        self.clock_of = clock_of
        self.backfill = backfill
        self.on_silent = on_silent
        self.grace_ms = grace_ms
        self.tick_s = tick_s
        self.stale_ms = stale_ms
        self.repairs = Repairs(
            ingestor.store,
            clock_of,
            repair,
            self._spawn,
            self._lost_trades,
            grace_ms=grace_ms,
            tick_s=tick_s,
            batch_ms=repair_batch_ms,
        )
        self._symbols: dict[tuple[Venue, str], LiveSymbol] = {}
        self._alive: dict[Feed, int] = {}  # event time each feed is proven alive up to
        self._up: set[Feed] = set()
        self._down_from: dict[Feed, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.closed_minutes = 0
        self.unknown_minutes = 0
        self.late_trades = 0
        self.corrections = 0  # minutes the venue's closed kline corrected
        self.settled_minutes = 0  # unknown minutes the venue's closed kline settled
        self.backfilled_trades = 0
        self.silent_feeds = 0

    # --- what the streams report -----------------------------------------------------

    def track(
        self, venue: Venue, info: SymbolInfo, inception_ms: int | None, feed: Feed = None
    ) -> None:
        """Stream `info.symbol` on `feed` (default: the venue) from now on; a builder
        starts with its next message."""
        key = (venue, info.symbol)
        live = self._symbols.get(key)
        if live is None:
            live = self._symbols[key] = LiveSymbol(
                venue, info, inception_ms, venue if feed is None else feed
            )
        if live.feed in self._up and live.builder is None:
            live.builder = self._builder(live)

    def untrack(self, venue: Venue, symbol: str) -> None:
        """Stop building `symbol` (its history stays)."""
        live = self._symbols.pop((venue, symbol), None)
        if live is not None:
            live.retire()

    def symbols(self, venue: Venue) -> list[str]:
        """Return the venue's streamed symbols."""
        return [s for v, s in self._symbols if v is venue]

    def connected(self, feed: Feed, now_ms: int) -> None:
        """The feed is (back) up: each of its symbols gets a builder from `now_ms`, and
        the minutes since the feed was last proven alive are repaired from REST."""
        self._up.add(feed)
        # After a drop: from where the feed was last proven alive. On the first connection:
        # the hour before it (only the minutes not held are fetched: usually the few
        # between the bootstrap and the stream's first message, often none).
        down_from = self._down_from.pop(feed, now_ms - FIRST_LOOK_BACK_MS)
        self._alive[feed] = now_ms
        first = down_from - down_from % MINUTE_MS  # to the minute it is (back) up in
        for live in self._on(feed):
            self._start(live, now_ms)
            self.repairs.start(live, (first, now_ms - now_ms % MINUTE_MS), False)

    def broken(self, feed: Feed) -> None:
        """The feed dropped: its builders' unbroken stretch ends here; what they proved
        whole is written, the rest is repaired from REST once it has closed."""
        self._up.discard(feed)
        alive = self._alive.get(feed, 0)
        for live in self._on(feed):
            builder = live.builder
            backfilling = live.buffer is not None
            live.retire()
            if builder is not None and not backfilling:
                closing = builder.advance(alive + self.grace_ms, alive)
                now = self.clock_of(live.venue).now_ms()
                self._spawn(self._closing_now(live, closing, now, final=True))
        self._down_from[feed] = alive  # `connected` repairs from here

    def gap(self, feed: Feed, start_ms: int, end_ms: int) -> None:
        """The feed lost what happened between its events at `start_ms` and `end_ms` (a
        reconnect): end the builders' stretch at `start_ms`, start new ones at `end_ms`,
        and repair the minutes between from REST."""
        self._alive[feed] = start_ms
        self.broken(feed)
        self.connected(feed, end_ms)

    def is_up(self, feed: Feed) -> bool:
        """Whether the feed is up (its builders running)."""
        return feed in self._up

    def on_trades(self, venue: Venue, symbol: str, trades: Sequence[Trade]) -> None:
        """Fold trades of `symbol` (arrival order); held while its open minute is backfilled."""
        live = self._symbols.get((venue, symbol))
        if live is None or live.builder is None:
            return
        if live.buffer is not None:
            live.buffer.extend(trades)
            return
        add = live.builder.add
        for trade in trades:
            add(trade)

    def on_klines(self, venue: Venue, symbol: str, candles: Sequence[Candle]) -> None:
        """Take the venue's own 1m klines of `symbol`: the forming one is the provisional
        open candle, a closed one reconciles or settles its minute."""
        live = self._symbols.get((venue, symbol))
        if live is None:
            return
        for candle in candles:
            if not candle.closed:
                live.provisional = candle
                continue
            builder, minute = live.builder, candle.open_time_ms
            written = live.written.get(minute)
            if written is not None:  # closed and stored already: correct it if it differs
                if written != candle:
                    self._corrected(live, written, candle)
                    self._spawn(self._write(live, self._refit(live, candle)))
            elif builder is not None and minute >= (builder.closed_through_ms or minute):
                live.venue_closed[minute] = candle  # still open here: used when it closes
            else:  # a minute the stream could not vouch for: the venue settles it
                self.settled_minutes += 1
                self._spawn(self._write(live, [candle]))

    def on_alive(self, feed: Feed, event_ms: int) -> None:
        """A message with exchange time `event_ms` arrived on the feed."""
        if event_ms > self._alive.get(feed, 0):
            self._alive[feed] = event_ms

    # --- what the read path asks -------------------------------------------------------

    def minute(self, venue: Venue, symbol: str, now_ms: int) -> tuple[Candle | None] | None:
        """The open 1m candle while `symbol` is streamed and its feed is up: the builder's
        if it watched the whole minute, else the venue's provisional kline, else None."""
        live = self._symbols.get((venue, symbol))
        if live is None or live.builder is None:
            return None
        if now_ms - self._alive.get(live.feed, 0) > self.stale_ms:
            return None  # nothing heard for a while: the feed may be down, ask the exchange
        current = now_ms - now_ms % MINUTE_MS
        provisional = live.provisional
        if provisional is not None and provisional.open_time_ms != current:
            provisional = None
        watched = live.builder.watched_from_ms()
        if live.buffer is not None or watched is None or watched > current:
            return None if provisional is None else (provisional,)
        candle = live.builder.open_candle(M1)
        if candle is not None and candle.open_time_ms != current:
            candle = None  # the minute has closed and nothing traded in the new one yet
        return (candle if candle is not None else provisional,)

    def pending(self, venue: Venue, symbol: str, now_ms: int) -> list[Candle]:
        """Minutes over, proven whole, that the symbol's stream has not closed yet."""
        live = self._symbols.get((venue, symbol))
        if live is None or live.builder is None or live.buffer is not None:
            return []
        return live.builder.pending(now_ms, self._alive.get(live.feed, 0))

    def health(self) -> dict[str, int]:
        """The minute and trade counts."""
        return {
            "closed_minutes": self.closed_minutes,
            "unknown_minutes": self.unknown_minutes,
            "late_trades": self.late_trades,
            "corrections": self.corrections,
            "settled_minutes": self.settled_minutes,
            "backfilled_trades": self.backfilled_trades,
            "silent_feeds": self.silent_feeds,
            "repaired_minutes": sum(live.repaired_minutes for live in self._symbols.values()),
        }

    async def repairs_done(self) -> None:
        """Wait until every repair, write and backfill started so far has ended."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- the clock ------------------------------------------------------------------------

    async def run(self) -> None:
        """Advance every builder every `tick_s` until cancelled."""
        try:
            while True:
                await self.tick()
                await asyncio.sleep(self.tick_s)
        finally:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

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
        if live.buffer is not None:
            if now < live.backfill_deadline_ms:
                return  # the open minute's earlier trades are on their way
            self._give_up_backfill(live)  # too late: the closed kline or REST settles it
        builder = live.builder
        assert builder is not None
        closing = builder.advance(now, self._alive.get(live.feed, 0))
        # Every read of a streamed symbol calls this; most find nothing closed.
        if closing.candles or closing.unknown or closing.late:
            await self._closing_now(live, closing, now)

    # --- closing ----------------------------------------------------------------------

    async def _closing_now(
        self, live: LiveSymbol, closing: Closing, now: int, *, final: bool = False
    ) -> None:
        """Reconcile, write, and send what is unknown to REST (`final`: the builder's
        last closing, nothing more is coming to extend a queued repair)."""
        done = reconcile(closing.candles, closing.unknown, live.venue_closed)
        for mine, theirs in done.corrected:
            self._corrected(live, mine, theirs)
        self.settled_minutes += done.settled
        if done.candles and live.builder is not None:
            live.builder.resume_after(done.candles[-1])
        if done.candles:
            await self._write(live, done.candles, now)
        for span in done.unknown:
            self.unknown_minutes += (span[1] - span[0]) // MINUTE_MS
            self.repairs.queue(live, span, closing)
        if done.candles or final:  # the unknown stretch, if any, has ended
            self.repairs.flush(live)
        if closing.late:
            self.late_trades += len(closing.late)
            for minute in closing.late_minutes():
                self.repairs.start(live, (minute, minute + MINUTE_MS), True)

    def _refit(self, live: LiveSymbol, theirs: Candle) -> list[Candle]:
        """The venue's late version of a written minute, and the written flat minutes
        after it made flat at its close (they were flat at the stream's)."""
        out = [theirs]
        minute = theirs.open_time_ms + MINUTE_MS
        while (flat := live.written.get(minute)) is not None and is_flat(flat):
            if flat.close == theirs.close:
                break
            c = theirs.close
            out.append(msgspec.structs.replace(flat, open=c, high=c, low=c, close=c))
            minute += MINUTE_MS
        if live.builder is not None:
            live.builder.resume_after(out[-1])
        return out

    def _lost_trades(self, live: LiveSymbol) -> None:
        self.silent_feeds += 1
        log.warning("%s feed of %s lost trades while connected", live.venue.value, live.info.symbol)
        if self.on_silent is not None:
            self.on_silent(live.feed)

    def _corrected(self, live: LiveSymbol, mine: Candle, theirs: Candle) -> None:
        self.corrections += 1
        log.warning(
            "%s %s minute %d: the venue's closed kline differs from the stream's: %s",
            live.venue.value, live.info.symbol, theirs.open_time_ms, differences(mine, theirs),
        )  # fmt: skip

    async def _write(self, live: LiveSymbol, candles: list[Candle], now: int | None = None) -> None:
        venue, symbol = live.venue, live.info.symbol
        now = self.clock_of(venue).now_ms() if now is None else now
        try:
            await self.ingestor.ingest(
                venue, symbol, columns_from(candles), inception_ms=None, now_ms=now
            )
        except CandlevaultError as e:  # the store refused: the minutes stay missing
            log.warning("writing %s %s streamed minutes failed: %s", venue.value, symbol, e)
            return
        self.closed_minutes += len(candles)
        live.remember(candles)

    # --- backfill ---------------------------------------------------------------------

    def _start(self, live: LiveSymbol, now_ms: int) -> None:
        """A new builder from `now_ms`; on Binance from its minute's open, with the
        minute's earlier trades fetched while the stream's are held."""
        live.retire()
        minute = now_ms - now_ms % MINUTE_MS
        settled = live.take_venue_closed_before(minute)  # what the venue said of the drop
        if settled:
            self.settled_minutes += len(settled)
            self._spawn(self._write(live, settled))
        if self.backfill is None or live.venue not in BACKFILLED or minute == now_ms:
            live.builder = self._builder(live, start_ms=now_ms)
            return
        builder = live.builder = self._builder(live, start_ms=minute)
        live.buffer, live.started_ms = [], now_ms
        live.backfill_deadline_ms = minute + MINUTE_MS + self.grace_ms
        live.backfilling = self._spawn(self._backfill_now(live, builder, minute))

    async def _backfill_now(self, live: LiveSymbol, builder: CandleBuilder, minute: int) -> None:
        assert self.backfill is not None
        try:
            got = await missed_trades(self.backfill, live, builder, minute)
        except CandlevaultError as e:
            log.warning("backfilling %s %s failed: %s", live.venue.value, live.info.symbol, e)
            self._give_up_backfill(live)
            return
        if got is None:
            return  # superseded
        held, live.buffer, live.backfilling = live.buffer or [], None, None
        for trade in got:
            builder.add(trade)
        for trade in held:
            builder.add(trade)
        self.backfilled_trades += len(got)

    def _give_up_backfill(self, live: LiveSymbol) -> None:
        """Start over from when the feed came up; the minute it came up in is unknown."""
        held = live.buffer or []
        started = live.started_ms
        live.retire()
        builder = live.builder = self._builder(live, start_ms=started)
        for trade in held:
            builder.add(trade)

    # --- helpers ----------------------------------------------------------------------

    def _on(self, feed: Feed) -> list[LiveSymbol]:
        return [live for live in self._symbols.values() if live.feed == feed]

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _builder(self, live: LiveSymbol, start_ms: int | None = None) -> CandleBuilder:
        return CandleBuilder(
            live.info.precision,
            inception_ms=live.inception_ms,
            timeframes=(M1,),  # higher open candles: the stored part + this minute
            trade_details=live.venue not in BYBIT,
            grace_ms=self.grace_ms,
            start_ms=start_ms,
        )
