"""The open candle of every timeframe, from one shared exchange request per symbol.

Until the real-time builder serves it from trades, the forming 1m candle comes from the
venue's own newest kline: one request per symbol, shared by every client and timeframe,
and made again only when the copy is older than `ttl_ms` or a minute boundary has
passed since (a new minute is forming). The same request reaches back to the newest
minute already held (up to 99 minutes: weight 1 on USD-M, 2 on spot, 1 on Bybit), so
it also brings, and ingests through the one write path, every minute that has closed
since the previous refresh: a symbol that clients keep reading needs no other kline
request to stay complete.

A higher timeframe's open candle is its bucket's stored part (derived from the closed
minutes by the ingestor) folded with the forming minute (`aggregation.forming_candle`).

`FormingSource` is the seam the real-time builder plugs into: the read path asks it for
a series' open candle and does not care where it comes from; a symbol whose stream is
up (`LiveMinutes`) takes its forming minute from the builder and makes no request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from candlevault.aggregation.candles import forming_candle
from candlevault.domain.candles import Candle
from candlevault.domain.coverage import Coverage, closed_until
from candlevault.domain.timeframes import M1, Timeframe
from candlevault.domain.venues import Venue
from candlevault.exchanges.ports import SymbolInfo
from candlevault.ingest.writer import Ingestor
from candlevault.service.venues import Venues

MINUTE_MS = 60_000
REACH_MINUTES = 99  # a refresh reaches back this far at most: limit < 100 (weight 1 on USD-M)
RequestHook = Callable[[Venue, str, int], None]  # (venue, symbol, weight) per request


class FormingSource(Protocol):
    """Where the read path gets a series' open candle."""

    def pending(self, venue: Venue, symbol: str, now_ms: int) -> list[Candle]:
        """1m candles that are over but not stored yet (a stream's grace): the read path
        serves them and does not fetch their minutes."""
        ...

    async def candle(
        self, venue: Venue, info: SymbolInfo, tf: Timeframe, now_ms: int, *, refresh: bool
    ) -> Candle | None:
        """Return the open candle of `tf` at `now_ms` (None: none, e.g. an outage);
        `refresh` False: only what is held already (a `cache_only` read)."""
        ...


class LiveMinutes(Protocol):
    """The forming minutes the real-time streams build."""

    def minute(self, venue: Venue, symbol: str, now_ms: int) -> tuple[Candle | None] | None:
        """Return (the open 1m candle or None if nothing traded yet) while the symbol is
        streamed and its feed is up; None when it is not (the exchange is asked then)."""
        ...

    async def settle(self, venue: Venue, symbol: str) -> None:
        """Store the minutes the symbol's stream has finished (before a read judges what
        is missing)."""
        ...

    def pending(self, venue: Venue, symbol: str, now_ms: int) -> list[Candle]:
        """Minutes over that the stream holds within its grace, not stored yet."""
        ...


class _Minute:
    """The newest forming minute of a symbol and when (exchange time) it was fetched."""

    __slots__ = ("candle", "fetched_ms", "task")

    def __init__(self) -> None:
        self.candle: Candle | None = None
        self.fetched_ms = -1
        self.task: asyncio.Task[None] | None = None


class ExchangeForming:
    """`FormingSource` from the venue's newest kline, refreshed at most every `ttl_ms`."""

    def __init__(
        self,
        venues: Venues,
        ingestor: Ingestor,
        *,
        ttl_ms: int = 3000,
        on_request: RequestHook | None = None,
        live: LiveMinutes | None = None,
    ) -> None:
        self.venues = venues
        self.ingestor = ingestor
        self.ttl_ms = ttl_ms
        self.on_request = on_request
        self._minutes: dict[tuple[Venue, str], _Minute] = {}
        self._parts: dict[
            tuple[Venue, str, str], tuple[tuple[int, int], Coverage, Candle | None, bool]
        ] = {}
        self.live = live

    async def candle(
        self, venue: Venue, info: SymbolInfo, tf: Timeframe, now_ms: int, *, refresh: bool
    ) -> Candle | None:
        """Return the open candle of `tf` (see the module docstring)."""
        if refresh and self.live is not None:  # what the stream has finished gets stored
            await self.live.settle(venue, info.symbol)
        streamed = None if self.live is None else self.live.minute(venue, info.symbol, now_ms)
        if streamed is None:  # not streamed (or the stream is down): the exchange's newest
            minute = await self._polled(venue, info, now_ms, refresh)
        else:
            (minute,) = streamed
        if tf is M1:
            return minute
        part, whole, inception = await self._stored_part(venue, info, tf, now_ms)
        return forming_candle(part, minute, tf, inception_ms=inception, complete=whole)

    def pending(self, venue: Venue, symbol: str, now_ms: int) -> list[Candle]:
        """The streamed minutes over but within the stream's grace (none when polled)."""
        if self.live is None or self.live.minute(venue, symbol, now_ms) is None:
            return []
        return self.live.pending(venue, symbol, now_ms)

    async def _polled(
        self, venue: Venue, info: SymbolInfo, now_ms: int, refresh: bool
    ) -> Candle | None:
        held = self._minutes.setdefault((venue, info.symbol), _Minute())
        if refresh and self._stale(held, now_ms):
            await self._refresh(venue, info, held)
        minute = held.candle
        if minute is not None and minute.open_time_ms != closed_until(now_ms):
            return None  # a copy from a minute that has closed since: not forming now
        return minute

    async def _stored_part(
        self, venue: Venue, info: SymbolInfo, tf: Timeframe, now_ms: int
    ) -> tuple[Candle | None, bool, int | None]:
        """The forming bucket's stored part (derived from its closed minutes), whether
        those minutes are all held, and the inception; read once per bucket and ledger
        (every write replaces the ledger), not once per request."""
        coverage = await self.ingestor.coverage(venue, info.symbol)  # in memory: no I/O
        inception = coverage.inception_ms
        bucket = tf.bucket_open(now_ms, inception)
        key = (venue, info.symbol, tf.code)
        known = self._parts.get(key)
        if (
            known is not None
            and known[0] == (bucket, closed_until(now_ms))
            and known[1] is coverage
        ):
            return known[2], known[3], inception
        stored = await self.ingestor.store.read(
            venue, info.symbol, tf, start_ms=bucket, end_ms=bucket
        )
        part = stored.candle(0) if len(stored) else None
        whole = coverage.settled.covers(max(bucket, inception or bucket), closed_until(now_ms))
        self._parts[key] = ((bucket, closed_until(now_ms)), coverage, part, whole)
        return part, whole, inception

    def _stale(self, held: _Minute, now_ms: int) -> bool:
        fetched = held.fetched_ms
        return fetched < 0 or now_ms - fetched >= self.ttl_ms or closed_until(now_ms) > fetched

    async def _refresh(self, venue: Venue, info: SymbolInfo, held: _Minute) -> None:
        """One request for the symbol, however many readers wait for it."""
        if held.task is None or held.task.done():
            held.task = asyncio.ensure_future(self._fetch(venue, info, held))
        await asyncio.shield(held.task)

    async def _fetch(self, venue: Venue, info: SymbolInfo, held: _Minute) -> None:
        link = await self.venues.link(venue)
        sent = link.clock.now_ms()
        forming = closed_until(sent)
        coverage = await self.ingestor.coverage(venue, info.symbol)
        newest = coverage.present.last
        reach = forming - REACH_MINUTES * MINUTE_MS
        start = max(reach, newest[1] if newest is not None else forming - MINUTE_MS)
        start = min(start, forming - MINUTE_MS)  # the minute that has just closed, at least
        reply = await link.client.klines(info.symbol, start, forming, info.precision)
        if self.on_request is not None:
            self.on_request(venue, info.symbol, link.client.request_weight)
        if coverage.inception_ms is not None or len(reply.closed):
            await self.ingestor.ingest(
                venue,
                info.symbol,
                reply.closed,
                inception_ms=None,
                now_ms=link.clock.now_ms(),
                answered=(reply.start_ms, forming),
            )
        held.candle = reply.forming
        # Stamped with when it was asked: a reply that crossed a minute boundary in
        # flight is stale at once, so the minute that closed meanwhile is asked again
        # by the next read rather than left missing for a gap fill.
        held.fetched_ms = sent
