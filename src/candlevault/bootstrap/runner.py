"""Fetch a symbol's missing 1m history, once, as fast as its venue's weight budget allows.

The coverage ledger decides what is fetched (`domain.coverage.plan`: only minutes that
are neither present, confirmed empty, anomalous nor backing off, in the fewest
requests), so a second run of a finished bootstrap asks for nothing and a killed one
resumes where it stopped: every reply is ingested (candles, derived timeframes and the
ledger in one write) as it arrives, so whatever was written is known and nothing is
fetched twice. Requests run concurrently; how many are in flight at once is bounded,
and how fast they go is the venue limiter's business.

Each reply ends one of four ways:
- answered: its candles are ingested and, the reply being for a window that is over,
  its minutes without a candle are recorded as confirmed empty (an outage: never
  asked again);
- malformed twice the same way: recorded as an exchange anomaly (not planned again
  until forgotten) and its raw rows kept aside in the anomaly log; once is a fluke and
  is asked again;
- failed (the venue unavailable after the client's retries): recorded as a failure, to
  be planned again after its backoff;
- refused (`Banned`, `ExchangeRejected`): recorded, and the run stops with that error.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import msgspec
import orjson

from candlevault.bootstrap.archives import ArchiveReport, import_archives
from candlevault.bootstrap.folder_import import import_folder
from candlevault.domain.clock import Clock
from candlevault.domain.columns import CandleColumns
from candlevault.domain.coverage import (
    DEFAULT_BACKOFF,
    Backoff,
    Coverage,
    FetchWindow,
    closed_until,
    plan,
)
from candlevault.domain.errors import Banned, ExchangeUnavailable, NotFound
from candlevault.domain.spans import Span
from candlevault.domain.venues import Venue
from candlevault.exchanges.binance.archive_client import BinanceArchiveClient
from candlevault.exchanges.ports import ExchangeClient, SymbolInfo
from candlevault.exchanges.validate import MalformedReply
from candlevault.ingest.writer import Ingestor
from candlevault.storage.chunks import concat

T = TypeVar("T")
MINUTE_MS = 60_000
CHECKPOINT_EVERY = 50  # windows between bootstrap checkpoints in the ledger
FLUSH_CANDLES = 20_000  # candles gathered before one store write


class Progress(msgspec.Struct):
    """A symbol's bootstrap so far: what the CLI's progress bar and the status endpoint
    show."""

    venue: str
    symbol: str
    planned_requests: int = 0
    done_requests: int = 0
    candles: int = 0
    weight: int = 0
    empty_minutes: int = 0
    failed_windows: int = 0
    anomalies: int = 0
    archive_files: int = 0
    archive_candles: int = 0
    archive_refused: list[tuple[str, str]] = msgspec.field(default_factory=list)
    started_s: float = 0.0
    elapsed_s: float = 0.0
    finished: bool = False
    error: str | None = None

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the pace so far (None before the first reply)."""
        if not self.done_requests or self.finished:
            return None if not self.finished else 0.0
        per_request = self.elapsed_s / self.done_requests
        return per_request * (self.planned_requests - self.done_requests)


class AnomalyLog:
    """Raw rows of replies the exchange answers malformed every time, one JSON line
    each, kept for inspection (`<data dir>/anomalies.jsonl`)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    async def keep(self, record: dict[str, object]) -> None:
        """Append one record (off the event loop)."""
        line = orjson.dumps(record, default=str) + b"\n"
        await asyncio.to_thread(self._append, line)

    def _append(self, line: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab") as out:
            out.write(line)


class Bootstrap:
    """Bootstrap symbols of one venue through `client` into `ingestor`."""

    def __init__(
        self,
        client: ExchangeClient,
        ingestor: Ingestor,
        clock: Clock,
        anomalies: AnomalyLog,
        *,
        concurrency: int = 8,
        backoff: Backoff = DEFAULT_BACKOFF,
        archives: BinanceArchiveClient | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        symbols: Callable[[], Awaitable[dict[str, SymbolInfo]]] | None = None,
    ) -> None:
        self.client = client
        self.ingestor = ingestor
        self.clock = clock
        self.anomalies = anomalies
        self.concurrency = concurrency
        self.backoff = backoff
        self.archives = archives
        self.on_progress = on_progress
        self._monotonic = monotonic
        self._symbols: dict[str, SymbolInfo] | None = None
        self._hooks: dict[int, Callable[[Progress], None]] = {}
        self._list_symbols = symbols  # a shared, refreshed catalog (serve); else asked once

    async def run(
        self,
        symbol: str,
        *,
        since_ms: int | None = None,
        settle_ms: int = 0,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> Progress:
        """Fetch every missing minute of `symbol` from its inception (or `since_ms`) to
        the last minute closed `settle_ms` ago (a serving process leaves the newest
        minutes to the read path's refreshes, which bring them anyway)."""
        progress = self._start(symbol, on_progress)
        info = await self._info(symbol)
        inception = await self._inception(info)
        if inception is None:  # listed but never traded: nothing to fetch yet
            return self._finish(progress)
        now = self.clock.now_ms()
        start = max(inception, since_ms or inception)
        start += -start % MINUTE_MS
        window = (start, max(start, closed_until(now - settle_ms)))
        if self.archives is not None and self.client.venue in (Venue.BINANCE, Venue.BINANCE_USDM):
            await self._from_archives(info, window, inception, progress)
        coverage = await self.ingestor.coverage(self.client.venue, symbol)
        return await self._run_plan(info, coverage, window, progress)

    async def fill(
        self,
        symbol: str,
        window: Span,
        *,
        fresh: bool = False,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> Progress:
        """Fetch the minutes of `window` the ledger says are missing (`fresh`: every
        minute of it again, to correct what is held): the read path's cold fetch."""
        progress = self._start(symbol, on_progress)
        info = await self._info(symbol)
        inception = await self._inception(info)
        if inception is None:
            return self._finish(progress)
        coverage = await self.ingestor.coverage(self.client.venue, symbol)
        if fresh:
            coverage = Coverage(inception_ms=inception)
        return await self._run_plan(info, coverage, window, progress)

    async def import_only(
        self,
        symbol: str,
        *,
        folder: Path | None = None,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> Progress:
        """Import the symbol's archive files, from `folder` or else the archive host
        (whole past days and months, verified), and fetch nothing else."""
        progress = self._start(symbol, on_progress)
        info = await self._info(symbol)
        if folder is not None:
            done = await import_folder(
                folder, self.client.venue, symbol, info.precision, self.ingestor
            )
            progress.archive_files, progress.archive_candles = done.verified, done.candles
            progress.archive_refused = done.refused
            return self._finish(progress)
        inception = await self._inception(info)
        if inception is not None and self.archives is not None:
            window = (inception, closed_until(self.clock.now_ms()))
            await self._from_archives(info, window, inception, progress)
        return self._finish(progress)

    async def inception(self, symbol: str) -> int | None:
        """Return the symbol's first minute: from the ledger, else asked once and recorded
        (NotFound if the venue does not list it)."""
        return await self._inception(await self._info(symbol))

    async def _run_plan(
        self, info: SymbolInfo, coverage: Coverage, window: Span, progress: Progress
    ) -> Progress:
        windows = plan(
            coverage,
            window,
            self.clock.now_ms(),
            max_candles_per_request=self.client.max_klines,
            request_cost=self.client.request_weight,
            backoff=self.backoff,
        )
        progress.planned_requests = len(windows)
        self._report(progress)
        try:
            await self._fetch_all(info, windows, progress)
        except BaseException as e:
            progress.error = f"{type(e).__name__}: {e}"
            self._finish(progress)
            raise
        return self._finish(progress)

    def _start(self, symbol: str, hook: Callable[[Progress], None] | None) -> Progress:
        progress = Progress(self.client.venue.value, symbol, started_s=self._monotonic())
        if hook is not None:
            self._hooks[id(progress)] = hook
        return progress

    async def _from_archives(
        self, info: SymbolInfo, window: tuple[int, int], inception: int, progress: Progress
    ) -> None:
        """Import whole past days and months from the archive files first."""
        assert self.archives is not None

        def show(report: ArchiveReport) -> None:
            progress.archive_files = report.verified
            progress.archive_candles = report.candles
            self._report(progress)

        report = await import_archives(
            self.archives,
            self.client,
            self.ingestor,
            self.clock,
            info,
            window,
            inception_ms=inception,
            on_file=show,
        )
        progress.archive_refused = report.rejected
        progress.weight += report.spot_checks * self.client.request_weight
        show(report)

    async def _fetch_all(
        self, info: SymbolInfo, windows: list[FetchWindow], progress: Progress
    ) -> None:
        gate = asyncio.Semaphore(self.concurrency)
        done: set[int] = set()
        batch = _Batch(self.ingestor, self.client.venue, info.symbol, self.clock)

        async def one(index: int, window: FetchWindow) -> None:
            async with gate:
                await self._fetch(info, window, progress, batch)
            done.add(index)
            if len(done) % CHECKPOINT_EVERY == 0 or len(done) == len(windows):
                await batch.flush()  # a checkpoint never claims what is not stored
                await self._checkpoint(info.symbol, windows, done)

        try:
            async with asyncio.TaskGroup() as group:
                for index, window in enumerate(windows):
                    group.create_task(one(index, window))
        except BaseExceptionGroup as group:  # the first error stopped the run: raise it
            raise group.exceptions[0] from None
        finally:
            await batch.flush()  # stopped or not, what was fetched is stored

    async def _fetch(
        self, info: SymbolInfo, window: FetchWindow, progress: Progress, batch: _Batch
    ) -> None:
        symbol = info.symbol
        last_open = window.end_ms - MINUTE_MS
        malformed: MalformedReply | None = None
        for _ in range(2):
            try:
                reply = await self.client.klines(symbol, window.start_ms, last_open, info.precision)
            except MalformedReply as e:
                progress.weight += window.cost
                if malformed is not None and malformed.reason == e.reason:
                    await self._anomaly(info, window, e, progress)
                    return
                malformed = e
                continue
            except Banned as e:  # the venue refuses us for a while: stop the run
                await self._failed(info, window, str(e), progress)
                raise
            except ExchangeUnavailable as e:  # down, or still 429 after the retries
                await self._failed(info, window, str(e), progress)
                return
            progress.weight += window.cost
            now = self.clock.now_ms()
            await batch.add(reply.closed, (window.start_ms, min(window.end_ms, closed_until(now))))
            got = len(reply.closed)
            progress.candles += got
            progress.empty_minutes += max(0, window.minutes - got - (reply.forming is not None))
            self._step(progress)
            return
        assert malformed is not None
        await self._failed(info, window, f"malformed reply: {malformed.reason}", progress)

    async def _anomaly(
        self, info: SymbolInfo, window: FetchWindow, error: MalformedReply, progress: Progress
    ) -> None:
        venue, now = self.client.venue, self.clock.now_ms()
        await self.anomalies.keep(
            {
                "venue": venue.value,
                "symbol": info.symbol,
                "window": [window.start_ms, window.end_ms],
                "reason": error.reason,
                "seen_ms": now,
                "rows": [msgspec.to_builtins(row) for row in error.rows],
            }
        )
        span = (window.start_ms, window.end_ms)
        await self.ingestor.update_coverage(
            venue, info.symbol, lambda c: c.with_anomaly(span, error.reason, now)
        )
        progress.anomalies += 1
        self._step(progress)

    async def _failed(
        self, info: SymbolInfo, window: FetchWindow, reason: str, progress: Progress
    ) -> None:
        now = self.clock.now_ms()
        span = (window.start_ms, window.end_ms)
        await self.ingestor.update_coverage(
            self.client.venue, info.symbol, lambda c: c.with_failure(span, reason, now)
        )
        progress.failed_windows += 1
        self._step(progress)

    async def _checkpoint(self, symbol: str, windows: list[FetchWindow], done: set[int]) -> None:
        """Record how far the bootstrap got: the start of the first window not done."""
        first_open = next((i for i in range(len(windows)) if i not in done), None)
        mark = windows[-1].end_ms if first_open is None else windows[first_open].start_ms
        await self.ingestor.update_coverage(self.client.venue, symbol, lambda c: _advanced(c, mark))

    async def _info(self, symbol: str) -> SymbolInfo:
        if self._list_symbols is not None:
            listed = await self._list_symbols()
        else:
            if self._symbols is None:
                self._symbols = await self.client.symbols()
            listed = self._symbols
        info = listed.get(symbol)
        if info is None:
            raise NotFound(f"{self.client.venue.value} does not list {symbol}")
        return info

    async def _inception(self, info: SymbolInfo) -> int | None:
        """The symbol's first minute: from the ledger, else asked once and recorded."""
        venue = self.client.venue
        known = (await self.ingestor.coverage(venue, info.symbol)).inception_ms
        if known is not None:
            return known
        found = await _retried(lambda: self.client.inception_ms(info))
        if found is not None:
            await self.ingestor.update_coverage(
                venue, info.symbol, lambda c: c.with_inception(found)
            )
        return found

    def _step(self, progress: Progress) -> None:
        progress.done_requests += 1
        self._report(progress)

    def _finish(self, progress: Progress) -> Progress:
        progress.finished = True
        self._report(progress)
        self._hooks.pop(id(progress), None)
        return progress

    def _report(self, progress: Progress) -> None:
        progress.elapsed_s = self._monotonic() - progress.started_s
        if self.on_progress is not None:
            self.on_progress(progress)
        hook = self._hooks.get(id(progress))
        if hook is not None:
            hook(progress)


async def _retried(ask: Callable[[], Awaitable[T]], attempts: int = 3) -> T:
    """Ask again after a malformed reply (a corrupted one is rarely corrupted twice)."""
    for attempt in range(attempts):
        try:
            return await ask()
        except MalformedReply:
            if attempt + 1 == attempts:
                raise
    raise AssertionError("unreachable")


class _Batch:
    """Replies waiting to be ingested together: one store write per `FLUSH_CANDLES`
    candles instead of one per reply, since each write derives every higher timeframe
    and costs a transaction. Replies answer disjoint windows, so their candles join into
    one ascending batch; the windows go along, for the minutes confirmed empty."""

    def __init__(self, ingestor: Ingestor, venue: Venue, symbol: str, clock: Clock) -> None:
        self.ingestor, self.venue, self.symbol, self.clock = ingestor, venue, symbol, clock
        self.parts: list[CandleColumns] = []
        self.windows: list[Span] = []
        self.count = 0
        self._lock = asyncio.Lock()

    async def add(self, closed: CandleColumns, window: Span) -> None:
        """Keep one reply's candles; write them all once enough have gathered."""
        self.parts.append(closed)
        self.windows.append(window)
        self.count += len(closed)
        if self.count >= FLUSH_CANDLES:
            await self.flush()

    async def flush(self) -> None:
        """Write what has gathered (nothing if nothing has)."""
        async with self._lock:
            if not self.windows:
                return
            parts, windows = self.parts, self.windows
            self.parts, self.windows, self.count = [], [], 0
            filled = sorted((p for p in parts if len(p)), key=lambda p: p.open_time_ms[0])
            rows = concat(filled) if filled else parts[0]
            await self.ingestor.ingest(
                self.venue,
                self.symbol,
                rows,
                inception_ms=None,
                now_ms=self.clock.now_ms(),
                answered=windows,
            )


def _advanced(coverage: Coverage, mark_ms: int) -> Coverage:
    """Move the checkpoint forward only (windows finish out of order)."""
    if coverage.checkpoint_ms is not None and coverage.checkpoint_ms >= mark_ms:
        return coverage
    return coverage.with_checkpoint(mark_ms)
