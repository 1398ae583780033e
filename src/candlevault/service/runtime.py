"""Everything `candlevault serve` runs, built from the settings in one place and owned
by one object that closes it all (ARCHITECTURE.md: engines chosen from settings in one
place; background work as tasks with an owner that cancels them on shutdown).

Built at start: the warm store (taking the data dir's writer lock), the hot cache
(Redis when `CANDLEVAULT_REDIS_URL` is set, else in process), the ingestor with the
hot cache as its listener, the venues (brought up on first use), the read path, the
tracked symbols and the job board. `start()` then brings up the venues of the tracked
symbols, bootstraps those with history still missing in the background, and runs the
gap monitor per venue.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import aiohttp

from candlevault.bootstrap.gaps import GapReport, monitor, scan
from candlevault.bootstrap.runner import AnomalyLog, Bootstrap, Progress
from candlevault.bootstrap.wiring import ClientStacks, exchange_clock, open_store
from candlevault.cache.ports import HotCache
from candlevault.cache.retention import Retention, parse_retention
from candlevault.config import Settings
from candlevault.domain.clock import AnchoredClock, Clock
from candlevault.domain.coverage import Coverage
from candlevault.domain.errors import CandlevaultError
from candlevault.domain.spans import Span
from candlevault.domain.symbols import Instrument
from candlevault.domain.venues import Venue
from candlevault.exchanges.binance.archive_client import BinanceArchiveClient
from candlevault.exchanges.ports import SymbolInfo
from candlevault.ingest.writer import Ingestor
from candlevault.service.forming import ExchangeForming
from candlevault.service.hot_writer import HotWriter
from candlevault.service.jobs import JobBoard, JobStatus
from candlevault.service.reader import CandleService
from candlevault.service.stats import ServiceStats
from candlevault.service.streaming import Streams
from candlevault.service.tracked import TrackedSymbols
from candlevault.service.venues import Venues
from candlevault.storage.ports import CandleStore

log = logging.getLogger(__name__)
BOOTSTRAP = "bootstrap"
GAP_FILL = "gap-fill"
IMPORT = "import"


async def open_hot_cache(settings: Settings, retention: Retention) -> HotCache:
    """The hot cache engine the settings choose."""
    if settings.redis_url:
        from candlevault.cache.redis import open_redis_cache

        return await open_redis_cache(settings.redis_url, retention, prefix=settings.redis_prefix)
    from candlevault.cache.memory import MemoryCache

    return MemoryCache(retention)


class Runtime:
    """The service's parts and background tasks; `open`, `start`, then `aclose`."""

    def __init__(
        self,
        settings: Settings,
        session: aiohttp.ClientSession,
        store: CandleStore,
        hot: HotCache,
    ) -> None:
        self.settings = settings
        self.session = session
        self.store = store
        self.hot = hot
        self.retention = Retention(parse_retention(settings.hot_retention))
        self.stats = ServiceStats()
        self.stacks = ClientStacks(settings, session)
        self.venues = Venues(self._clock_of, self.stacks.client, settings.data_dir)
        self.hot_writer = HotWriter(hot, self.retention, self._known_info, self.now_ms)
        self.ingestor = Ingestor(store, [self.hot_writer.written])
        self.streams = Streams(
            settings,
            session,
            self.venues,
            self.ingestor,
            self._clock,
            self._repair,
            self.stats,
            self._spawn,
        )
        self.live = self.streams.live
        self.forming = ExchangeForming(
            self.venues,
            self.ingestor,
            ttl_ms=round(settings.forming_ttl_s * 1000),
            on_request=self._forming_request,
            live=self.live if settings.streams else None,
        )
        self.candles = CandleService(
            self.venues,
            self.ingestor,
            hot,
            self.forming,
            self.runner,
            self.stats,
            self.retention,
        )
        self.tracked = TrackedSymbols(settings.data_dir)
        self.tracked.add(settings.symbols)
        self.jobs = JobBoard()
        self.anomalies = AnomalyLog(settings.data_dir / "anomalies.jsonl")
        self.started_s = time.time()
        self._runners: dict[Venue, Bootstrap] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._venues_served: set[Venue] = set()

    @classmethod
    async def open(cls, settings: Settings) -> Runtime:
        """Open the store (taking the writer lock) and the hot cache."""
        store = await open_store(settings)
        try:
            hot = await open_hot_cache(settings, Retention(parse_retention(settings.hot_retention)))
        except BaseException:
            await store.aclose()
            raise
        session = aiohttp.ClientSession()
        return cls(settings, session, store, hot)

    async def start(self) -> None:
        """Bring up the tracked symbols' venues, bootstrap what they miss, run the gap
        monitor, and keep the exchange clocks' offsets fresh."""
        for venue in sorted({i.venue for i in self.tracked.all()}):
            self._serve_venue(venue)
        self._tasks.append(asyncio.create_task(self._resync_clocks()))
        if self.settings.streams:
            self._tasks.append(asyncio.create_task(self.live.run()))

    def track(self, items: list[Instrument]) -> list[Instrument]:
        """Track `items`: bootstrap each new one and keep its venue's gaps monitored."""
        added = self.tracked.add(items)
        for venue in sorted({i.venue for i in added}):
            if venue in self._venues_served:
                for item in added:
                    if item.venue is venue:
                        self.bootstrap(item)
                        self._spawn(self._stream(item))
            else:
                self._serve_venue(venue)  # it bootstraps the venue's tracked symbols
        return added

    async def untrack(self, item: Instrument) -> bool:
        """Stop tracking `item`: its jobs and its stream stop, its history stays."""
        if not self.tracked.remove(item):
            return False
        self.jobs.cancel(item)
        await self.streams.remove(item.venue, item.symbol)
        return True

    def _serve_venue(self, venue: Venue) -> None:
        self._venues_served.add(venue)
        self._tasks.append(asyncio.create_task(self._bring_up(venue)))

    async def _resync_clocks(self) -> None:
        while True:
            await asyncio.sleep(self.settings.clock_sync_s)
            await self.venues.resync()

    async def aclose(self) -> None:
        """Cancel background work, then close the cache, the store and the session."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.jobs.aclose()
        await self.hot.aclose()
        await self.store.aclose()
        await self.session.close()

    # -- the parts the API asks for ------------------------------------------------------

    async def runner(self, venue: Venue) -> Bootstrap:
        """The venue's bootstrap runner (built on first use, then shared)."""
        found = self._runners.get(venue)
        if found is not None:
            return found
        link = await self.venues.link(venue)
        archives = None
        if venue in (Venue.BINANCE, Venue.BINANCE_USDM):
            archives = BinanceArchiveClient(self.session, self.settings.binance_archive_url)

        async def listed() -> dict[str, SymbolInfo]:
            return (await self.venues.catalog(venue)).symbols

        runner = Bootstrap(
            link.client,
            self.ingestor,
            link.clock,
            self.anomalies,
            archives=archives,
            symbols=listed,
        )
        return self._runners.setdefault(venue, runner)

    def bootstrap(self, item: Instrument, since_ms: int | None = None) -> None:
        """Start (or join) the background bootstrap of `item`."""
        since = since_ms if since_ms is not None else self.settings.bootstrap_since

        async def work(record: Callable[[Progress], None]) -> Progress:
            runner = await self.runner(item.venue)
            done = await runner.run(item.symbol, since_ms=since, on_progress=record)
            self._count(done, BOOTSTRAP)
            return done

        self.jobs.start(BOOTSTRAP, item, work)

    def import_files(self, item: Instrument, folder: Path | None) -> JobStatus:
        """Start (or join) a background import of `item`'s archive files."""

        async def work(record: Callable[[Progress], None]) -> Progress:
            runner = await self.runner(item.venue)
            done = await runner.import_only(item.symbol, folder=folder, on_progress=record)
            self._count(done, "bootstrap")
            return done

        return self.jobs.start(IMPORT, item, work)

    def fill_gaps(self, item: Instrument) -> JobStatus:
        """Start (or join) a background fill of `item`'s missing minutes."""

        async def work(record: Callable[[Progress], None]) -> Progress:
            runner = await self.runner(item.venue)
            since = self.settings.bootstrap_since
            done = await runner.run(item.symbol, since_ms=since, on_progress=record)
            self._count(done, "fill")
            return done

        return self.jobs.start(GAP_FILL, item, work)

    def gap_report(self, venue: Venue, coverage: Coverage) -> GapReport | None:
        """The series' coverage from max(inception, the configured start) to now, with
        the requests a fill takes (the one scan admin, data health and metrics share)."""
        client = self.stacks.clients.get(venue)
        return scan(
            coverage,
            self.now_ms(venue),
            start_ms=self.settings.bootstrap_since,
            max_candles_per_request=1000 if client is None else client.max_klines,
        )

    def stream_health(self, venue: Venue) -> dict[str, object]:
        """The venue's stream: connected, last message age, reconnects, gaps, and the
        minutes its builders closed or left to REST (`{"state": "off"}` when not run)."""
        if not self.settings.streams:
            return {"state": "off"}
        return self.streams.health(venue)

    def held_symbols(self, venue: Venue) -> list[str]:
        """The venue's symbols candlevault holds: tracked ones and any it has read or
        written history of since it started."""
        held = dict.fromkeys(self.tracked.of(venue))
        for v, symbol in self.ingestor.known_series():
            coverage = self.ingestor.known_coverage(v, symbol)
            if v is venue and coverage is not None and coverage.present:
                held[symbol] = None
        return list(held)

    def now_ms(self, venue: Venue) -> int:
        """The venue's exchange time (wall time until its clock is known)."""
        return self._clock(venue).now_ms()

    # -- background ------------------------------------------------------------------------

    async def _bring_up(self, venue: Venue) -> None:
        """Connect to the venue (retrying while it is unreachable), bootstrap the tracked
        symbols in the background, then keep their gaps filled."""
        delay = 1.0
        while True:
            try:
                await self.venues.catalog(venue)
                break
            except CandlevaultError as e:
                log.warning("%s unreachable (%s); retrying in %.0f s", venue.value, e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60.0)
        for symbol in self.tracked.of(venue):
            self.bootstrap(Instrument(venue, symbol))
        if self.settings.streams:
            catalog = await self.venues.catalog(venue)
            await self.streams.start(venue, catalog.symbols, self.tracked.of(venue))
        runner = await self.runner(venue)
        await monitor(
            runner,
            lambda: [s for s in self.tracked.of(venue) if not self._busy(venue, s)],
            every_s=self.settings.gap_monitor_s,
            since_ms=self.settings.bootstrap_since,
            settle_ms=round(self.settings.gap_settle_s * 1000),
            on_fill=lambda done: self._count(done, "fill"),
        )

    async def _stream(self, item: Instrument) -> None:
        """Add a newly tracked symbol to its venue's running stream."""
        if item.venue in self.streams.pools:
            info = await self.venues.info(item.venue, item.symbol)
            await self.streams.add(item.venue, info)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        self._tasks.append(asyncio.create_task(work))

    async def _repair(self, venue: Venue, symbol: str, span: Span, fresh: bool) -> None:
        """Fetch a span the stream could not vouch for (the planner asks only for what
        is missing, unless `fresh`: a late trade says the stored minute is wrong)."""
        runner = await self.runner(venue)
        done = await runner.fill(symbol, span, fresh=fresh)
        self._count(done, "repair")

    def _clock(self, venue: Venue) -> Clock:
        link = self.venues.known_link(venue)
        return link.clock if link is not None else _WallClock()

    def _busy(self, venue: Venue, symbol: str) -> bool:
        job = self.jobs.get(BOOTSTRAP, Instrument(venue, symbol))
        return job is not None and job.running

    def _count(self, done: Progress, kind: str) -> None:
        if done.done_requests:
            venue = Venue(done.venue)
            self.stats.exchange_request(
                done.venue, done.symbol, kind, done.done_requests, done.weight, self.now_ms(venue)
            )

    def _forming_request(self, venue: Venue, symbol: str, weight: int) -> None:
        self.stats.exchange_request(venue.value, symbol, "forming", 1, weight, self.now_ms(venue))

    async def _clock_of(self, venue: Venue) -> AnchoredClock:
        return await exchange_clock(self.settings, venue, self.session)

    def _known_info(self, venue: Venue, symbol: str) -> SymbolInfo | None:
        catalog = self.venues.known_catalog(venue)
        return None if catalog is None else catalog.symbols.get(symbol)


class _WallClock:
    """Wall time, for a venue whose exchange clock is not known yet."""

    def now_ms(self) -> int:
        return int(time.time() * 1000)
