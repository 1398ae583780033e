"""The read path: hot → warm → open candle → exchange, each only when the one before
cannot answer, writing back what had to be fetched.

`CandleService.read` answers one request for a series' candles:

1. The window: Binance's paging rules (`service.windows`) at the exchange clock's now.
2. The open candle, when the window reaches it, from the `FormingSource`. Asked first:
   its refresh also ingests the minutes closed since the last one, so the ledger is
   current before anything is judged missing.
3. The closed candles: the hot cache if its span holds the window, else the warm store
   (and the rows go into the hot cache when the window is within its retention).
4. The coverage ledger says which minutes of the window are neither present nor
   confirmed empty. `auto` fetches exactly those from the exchange (the planner's
   fewest requests, through the one write path), `force_fresh` fetches the whole window
   again and corrects what differs, `cache_only` only reports them.

Every answer says which layers served it, and whether the window is complete: the
missing and the confirmed-empty (exchange outage) minute spans are listed. Rows are the
prebuilt bytes of `cache.rows`; the open candle, rendered per refresh, comes last.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from enum import StrEnum

import msgspec

from candlevault.aggregation.candles import extend_bucket
from candlevault.bootstrap.runner import Bootstrap, Progress
from candlevault.cache.ports import HotCache, SeriesKey
from candlevault.cache.retention import Retention
from candlevault.cache.rows import render_candle, render_rows
from candlevault.domain.candles import Candle
from candlevault.domain.columns import CLOSED, CandleColumns
from candlevault.domain.coverage import Coverage
from candlevault.domain.errors import CandlevaultError, ExchangeError
from candlevault.domain.spans import EMPTY_SPANS, SpanSet
from candlevault.domain.timeframes import M1, Timeframe
from candlevault.domain.venues import Venue
from candlevault.exchanges.ports import SymbolInfo
from candlevault.ingest.writer import Ingestor
from candlevault.service.forming import FormingSource
from candlevault.service.stats import ServiceStats
from candlevault.service.venues import Venues
from candlevault.service.windows import ReadWindow, check_window, resolve, widen

RunnerOf = Callable[[Venue], Awaitable[Bootstrap]]
MAX_WIDENINGS = 16  # newest reads widen past outages this often at most (a request each)


class Strategy(StrEnum):
    """How far down the layers a read may go."""

    AUTO = "auto"
    FORCE_FRESH = "force_fresh"
    CACHE_ONLY = "cache_only"


class ReadResult(msgspec.Struct):
    """One read's answer: rows (bytes, see `cache.rows`), the open candle's last."""

    venue: Venue
    symbol: str
    tf: Timeframe
    window: ReadWindow
    rows: list[bytes]
    forming: bool
    layers: list[str]
    missing: SpanSet
    empty: SpanSet
    warnings: list[str]

    @property
    def complete(self) -> bool:
        """True when every minute of the window is present or confirmed empty."""
        return not self.missing


class CandleService:
    """Candles of any series, from the cheapest layer that has them."""

    def __init__(
        self,
        venues: Venues,
        ingestor: Ingestor,
        hot: HotCache,
        forming: FormingSource,
        runner_of: RunnerOf,
        stats: ServiceStats,
        retention: Retention,
    ) -> None:
        self.venues = venues
        self.ingestor = ingestor
        self.hot = hot
        self.forming = forming
        self.runner_of = runner_of
        self.stats = stats
        self.retention = retention
        self._rendered: dict[tuple[Venue, str, str], tuple[Candle, bytes]] = {}

    async def read(
        self,
        venue: Venue,
        symbol: str,
        tf: Timeframe,
        *,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int = 500,
        strategy: Strategy = Strategy.AUTO,
    ) -> ReadResult:
        """Return the candles of one request (see the module docstring)."""
        check_window(start_ms, end_ms)  # before any I/O: a bad request costs nothing
        info = await self._info(venue, symbol)
        link = self.venues.known_link(venue) or await self.venues.link(venue)
        now = link.clock.now_ms()
        warnings: list[str] = []
        coverage = await self._coverage(venue, symbol, strategy, warnings)
        window = resolve(
            tf, now, start_ms=start_ms, end_ms=end_ms, limit=limit,
            inception_ms=coverage.inception_ms,
        )  # fmt: skip
        result = ReadResult(
            venue, symbol, tf, window, [], False, [], EMPTY_SPANS, EMPTY_SPANS, warnings
        )
        if window.empty:
            return result
        fetching = strategy is not Strategy.CACHE_ONLY
        if window.reaches_forming and fetching:  # brings the minutes closed since the last
            await self._refresh(venue, info, now, result)
            coverage = self.ingestor.known_coverage(venue, symbol) or coverage
        span = window.minutes(coverage.inception_ms, now)
        # Minutes a stream has finished but holds within its grace: served, not fetched.
        pending = self.forming.pending(venue, symbol, now) if window.reaches_forming else []
        pending = [c for c in pending if not coverage.present.contains(c.open_time_ms)]
        held = _held_by_stream(pending)
        coverage = await self._complete(
            venue, symbol, _before(span, held), coverage, now, strategy, result
        )
        for _ in range(MAX_WIDENINGS):  # an outage in a newest window: reach past it
            wider = widen(
                window, coverage.empty, limit - window.reaches_forming, coverage.inception_ms
            )
            if wider == window:
                break
            window = result.window = wider
            span = window.minutes(coverage.inception_ms, now)
            coverage = await self._complete(
                venue, symbol, _before(span, held), coverage, now, strategy, result
            )
        forming_row = None
        if window.reaches_forming:  # folded after the fill: its bucket's minutes are stored
            forming_row = await self._forming(venue, info, tf, now, result)
        last_closed = window.last_closed_ms
        if last_closed >= window.first_ms:
            room = limit - (forming_row is not None)
            result.rows = await self._closed(info, window, last_closed, room, coverage, now, result)
            if pending and tf is M1:
                result.rows = _with_pending(result.rows, pending, info, window, room)
            elif pending:
                buckets = await self._pending_buckets(
                    venue, info, tf, window, pending, coverage, held, now
                )
                result.rows = _with_rows(result.rows, buckets, window, room)
        result.missing = coverage.missing(span, now) - held
        result.empty = coverage.empty.clip(*span)
        if forming_row is not None:
            result.rows.append(forming_row)
            result.forming = True
        self.stats.read(tuple(result.layers))
        return result

    async def preload(self, venue: Venue, symbol: str, tf: Timeframe) -> int:
        """Load the series' closed candles within its retention from the warm store into
        the hot cache; return how many."""
        info = await self._info(venue, symbol)
        now = (self.venues.known_link(venue) or await self.venues.link(venue)).clock.now_ms()
        inception = (await self.ingestor.coverage(venue, symbol)).inception_ms
        first = tf.next_open(max(0, now - self.retention.ms(tf)), inception)
        last = tf.bucket_open(now, inception) - 1
        if last < first:
            return 0
        key = SeriesKey(venue, symbol, tf)
        return len(await self._warm(key, info, first, last, 1 << 30, True, now))

    async def _info(self, venue: Venue, symbol: str) -> SymbolInfo:
        catalog = self.venues.known_catalog(venue)
        info = None if catalog is None else catalog.symbols.get(symbol)
        return info if info is not None else await self.venues.info(venue, symbol)

    async def _coverage(
        self, venue: Venue, symbol: str, strategy: Strategy, warnings: list[str]
    ) -> Coverage:
        """The series' ledger; a symbol never seen learns its inception first (3d buckets
        and the planner need it), unless the read may not touch the exchange."""
        coverage = self.ingestor.known_coverage(venue, symbol)
        if coverage is None:
            coverage = await self.ingestor.coverage(venue, symbol)
        if coverage.inception_ms is not None or strategy is Strategy.CACHE_ONLY:
            return coverage
        try:
            await (await self.runner_of(venue)).inception(symbol)
        except ExchangeError as e:
            warnings.append(f"exchange unavailable: {e}")
        return await self.ingestor.coverage(venue, symbol)

    async def _refresh(self, venue: Venue, info: SymbolInfo, now: int, result: ReadResult) -> None:
        """Refresh the symbol's forming minute if it is stale (one shared request)."""
        try:
            await self.forming.candle(venue, info, M1, now, refresh=True)
        except ExchangeError as e:
            result.warnings.append(f"open candle unavailable: {e}")

    async def _forming(
        self, venue: Venue, info: SymbolInfo, tf: Timeframe, now: int, result: ReadResult
    ) -> bytes | None:
        """The open candle of `tf`, rendered (once per candle)."""
        started = time.perf_counter()
        candle = await self.forming.candle(venue, info, tf, now, refresh=False)
        if candle is None:
            self.stats.miss("forming", time.perf_counter() - started)
            return None
        key = (venue, info.symbol, tf.code)
        known = self._rendered.get(key)
        if known is not None and known[0] is candle:
            row = known[1]
        else:
            row = render_candle(candle, info.precision)
            self._rendered[key] = (candle, row)
        self.stats.hit("forming", time.perf_counter() - started)
        result.layers.append("forming")
        return row

    async def _pending_buckets(
        self,
        venue: Venue,
        info: SymbolInfo,
        tf: Timeframe,
        window: ReadWindow,
        pending: list[Candle],
        coverage: Coverage,
        held: SpanSet,
        now: int,
    ) -> list[bytes]:
        """The closed `tf` buckets of the window that end with minutes a stream still
        holds: their stored part folded with those minutes (none is stored whole yet)."""
        inception = coverage.inception_ms
        rows: list[bytes] = []
        for bucket in sorted({tf.bucket_open(c.open_time_ms, inception) for c in pending}):
            next_open = tf.next_open(bucket, inception)
            if next_open > now or not window.first_ms <= bucket <= window.last_closed_ms:
                continue  # the forming bucket: the open candle folds those minutes
            stored = await self.ingestor.store.read(
                venue, info.symbol, tf, start_ms=bucket, end_ms=bucket
            )
            part = stored.candle(0) if len(stored) else None
            whole = coverage.settled.union(held).covers(max(bucket, inception or bucket), next_open)
            candle = extend_bucket(
                part, pending, tf, bucket, inception_ms=inception, closed=True, complete=whole
            )
            if candle is not None:
                rows.append(render_candle(candle, info.precision))
        return rows

    async def _complete(
        self,
        venue: Venue,
        symbol: str,
        span: tuple[int, int],
        coverage: Coverage,
        now: int,
        strategy: Strategy,
        result: ReadResult,
    ) -> Coverage:
        """Fetch what the strategy asks for; return the ledger after it."""
        fresh = strategy is Strategy.FORCE_FRESH
        if strategy is Strategy.CACHE_ONLY or (not fresh and not coverage.missing(span, now)):
            return coverage
        started = time.perf_counter()
        try:
            runner = await self.runner_of(venue)
            done = await runner.fill(symbol, span, fresh=fresh)
        except CandlevaultError as e:
            result.warnings.append(f"exchange unavailable: {e}")
            self.stats.miss("exchange", time.perf_counter() - started)
            return await self.ingestor.coverage(venue, symbol)
        self._count(done, "fresh" if fresh else "fill", now)
        answered = done.done_requests - done.failed_windows - done.anomalies
        if answered and "exchange" not in result.layers:
            result.layers.append("exchange")
            self.stats.hit("exchange", time.perf_counter() - started)
        if done.failed_windows:
            self.stats.miss("exchange", time.perf_counter() - started)
            result.warnings.append(
                f"exchange unavailable: {done.failed_windows} of {done.planned_requests} "
                "requests failed; their minutes are asked again after a backoff"
            )
        if fresh:  # corrections reach the hot cache row by row; a re-read is simpler
            await self.hot.invalidate(venue, symbol)
        return await self.ingestor.coverage(venue, symbol)

    def _count(self, done: Progress, kind: str, now: int) -> None:
        if done.done_requests:
            self.stats.exchange_request(
                done.venue, done.symbol, kind, done.done_requests, done.weight, now
            )
        if done.failed_windows:
            self.stats.exchange_request(done.venue, done.symbol, kind, 0, 0, now)

    async def _closed(
        self,
        info: SymbolInfo,
        window: ReadWindow,
        last: int,
        room: int,
        coverage: Coverage,
        now: int,
        result: ReadResult,
    ) -> list[bytes]:
        """The closed rows of [window.first_ms, last], at most `room`, hot or warm."""
        if room <= 0:
            return []
        venue, tf = result.venue, result.tf
        key = SeriesKey(venue, info.symbol, tf)
        inception = coverage.inception_ms
        first = window.first_ms  # nothing opens before the listing: the window starts there
        if inception is not None:
            first = max(first, tf.bucket_open(inception, inception))
        started = time.perf_counter()
        hot = await self.hot.read(key, first, last, room, newest=window.newest)
        if hot is not None:  # the window lies in the cache's span: every stored row
            self.stats.hit("hot", time.perf_counter() - started)
            result.layers.append("hot")
            return hot.rows
        self.stats.miss("hot", time.perf_counter() - started)
        started = time.perf_counter()
        rows = await self._warm(key, info, first, last, room, window.newest, now)
        self.stats.hit("warm", time.perf_counter() - started)
        result.layers.append("warm")
        return rows

    async def _warm(
        self,
        key: SeriesKey,
        info: SymbolInfo,
        first: int,
        last: int,
        room: int,
        newest: bool,
        now: int,
    ) -> list[bytes]:
        """Read [first, last] from the warm store, keep it hot if recent, return rows."""
        venue, symbol, tf = key
        generation = await self.hot.generation(key)
        columns = await self.ingestor.store.read(venue, symbol, tf, start_ms=first, end_ms=last)
        columns = _closed_only(columns)
        rows = render_rows(columns, info.precision)
        if first >= now - self.retention.ms(tf):
            hi = tf.next_open(
                last, (self.ingestor.known_coverage(venue, symbol) or Coverage()).inception_ms
            )
            await self.hot.load(key, first, hi, columns.open_time_ms, rows, generation)
        if len(rows) > room:
            rows = rows[-room:] if newest else rows[:room]
        return rows


def _held_by_stream(pending: list[Candle]) -> SpanSet:
    """The minutes of the pending candles."""
    return SpanSet.from_open_times(c.open_time_ms for c in pending)


def _before(span: tuple[int, int], held: SpanSet) -> tuple[int, int]:
    """The part of `span` before the first minute a stream holds (never fetched)."""
    first = held.first
    return span if first is None else (span[0], max(span[0], min(span[1], first[0])))


def _with_pending(
    rows: list[bytes], pending: list[Candle], info: SymbolInfo, window: ReadWindow, room: int
) -> list[bytes]:
    """The stored 1m rows followed by the pending ones inside the window."""
    inside = [c for c in pending if window.first_ms <= c.open_time_ms <= window.last_ms]
    return _with_rows(rows, [render_candle(c, info.precision) for c in inside], window, room)


def _with_rows(rows: list[bytes], more: list[bytes], window: ReadWindow, room: int) -> list[bytes]:
    """The stored rows followed by newer ones, within the window's room."""
    if not more:
        return rows
    rows = rows + more
    return rows[-room:] if window.newest else rows[:room]


def _closed_only(columns: CandleColumns) -> CandleColumns:
    """Drop a bucket that is not over (a derived bucket still filling)."""
    flags = columns.flags
    if not flags or flags[-1] & CLOSED:
        return columns
    end = len(flags)
    while end and not flags[end - 1] & CLOSED:
        end -= 1
    return columns.slice(0, end)
