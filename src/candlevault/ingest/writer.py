"""The one write path for every candle, whatever its source.

Bootstrap, archive import, gap fill, read-path fetches and the real-time builder all
hand closed 1m candles to `Ingestor.ingest`, which (1) rebuilds every higher-timeframe
bucket they touch, level by level along `DERIVATION`, with the domain core's
aggregation (incomplete buckets flagged), (2) writes the 1m candles, every derived
level and the coverage ledger (the minutes marked present) in ONE store write, which
SQLite applies as one transaction, and (3) tells whoever listens (the hot cache, from
the serve issue on) what changed. Engines only store and read, so SQLite and MongoDB
never each re-implement derivation.

Derived buckets are recomputed from everything the store will hold, not from the batch
alone: a batch that fills a gap in the middle of a day touches buckets whose other
minutes were stored long ago. Since the nesting of the chain makes the buckets a batch
touches computable from its 1m open times, every stored row needed is read up front
(for a dense batch, only the partial buckets at its two ends; the rest comes from the
batch and the levels derived from it), merged with what is about to be written, and
aggregated on columns (`aggregation.columnar`), never one object per candle. One read
phase and one write keep a bulk batch to a few thread hops, not two per level.

Ingests of one (venue, symbol) are serialised (an asyncio lock per series): two
overlapping ones would each derive from what the other had not yet written and the
second ledger would drop the first one's minutes. Different symbols run side by side.

The ingestors of a store are its ledgers' only writers (the data dir's writer lock),
so they keep each ledger read or written in memory, shared per store object: the read path asks the
ledger what is missing on every request, and a store read and JSON decode per request
would cost more than the whole hot read.
"""

from __future__ import annotations

import asyncio
import weakref
from bisect import bisect_left, bisect_right
from collections.abc import Awaitable, Callable, Sequence

import msgspec
import orjson

from candlevault.aggregation import Outage
from candlevault.aggregation.columnar import aggregate_columns
from candlevault.domain.columns import CandleColumns, empty_columns
from candlevault.domain.coverage import Coverage
from candlevault.domain.errors import BadRequest
from candlevault.domain.spans import Span, SpanSet
from candlevault.domain.timeframes import M1, GridKind, Timeframe
from candlevault.domain.venues import Venue
from candlevault.ingest.derive import DERIVATION, spans, touched
from candlevault.storage.chunks import ascending, concat, merge
from candlevault.storage.ports import CandleStore, UpsertResult

Listener = Callable[[Venue, str, Timeframe, CandleColumns], Awaitable[None]]
_Series = tuple[Venue, str]
_SHARED: weakref.WeakKeyDictionary[
    CandleStore, tuple[dict[_Series, asyncio.Lock], dict[_Series, Coverage]]
] = weakref.WeakKeyDictionary()
Window = tuple[int, int]  # inclusive open-time bounds of stored source rows to read


class IngestReport(msgspec.Struct):
    """What one ingest wrote, per timeframe code."""

    written: dict[str, UpsertResult] = msgspec.field(default_factory=dict)

    @property
    def minutes(self) -> UpsertResult:
        """The 1m upsert's result."""
        return self.written.get(M1.code, UpsertResult())


class Ingestor:
    """Upsert 1m candles and keep every derived timeframe and the ledger exact."""

    def __init__(self, store: CandleStore, listeners: Sequence[Listener] = ()) -> None:
        self.store = store
        self._listeners = tuple(listeners)
        # Shared by every ingestor of the same store object, so two of them (a CLI
        # command and its runner, say) never see each other's ledgers stale.
        shared = _SHARED.get(store)
        if shared is None:
            shared = _SHARED[store] = ({}, {})
        self._locks: dict[tuple[Venue, str], asyncio.Lock] = shared[0]
        self._ledgers: dict[tuple[Venue, str], Coverage] = shared[1]

    async def ingest(
        self,
        venue: Venue,
        symbol: str,
        minutes: CandleColumns,
        *,
        inception_ms: int | None,
        outages: Sequence[Outage] = (),
        now_ms: int | None = None,
        answered: Span | Sequence[Span] | None = None,
    ) -> IngestReport:
        """Write closed 1m candles, mark them present in the coverage ledger, and
        rebuild every higher-timeframe bucket they touch.

        The ledger supplies the symbol's inception (3d anchor; first buckets complete
        from the listing) and its confirmed-empty spans (outages); `inception_ms`
        records the inception if the ledger has none, `outages` adds spans to it for
        this call; `now_ms` tells which derived buckets are over (closed). `answered`
        is the window (or windows) of the exchange replies these minutes came from:
        their minutes the replies did not hold are recorded as confirmed empty (if over
        and settled at `now_ms`, which is then required), in the same write.
        """
        batch = ascending(minutes)
        if len(batch) == 0 and answered is None:
            return IngestReport()
        if answered is not None and now_ms is None:
            raise BadRequest("an answered window needs now_ms to tell which minutes are over")
        lock = self._lock(venue, symbol)
        async with lock:
            return await self._ingest(venue, symbol, batch, inception_ms, outages, now_ms, answered)

    async def coverage(self, venue: Venue, symbol: str) -> Coverage:
        """Return the series' coverage ledger (empty if none was stored yet)."""
        known = self._ledgers.get((venue, symbol))
        if known is not None:
            return known
        blob = await self.store.load_ledger(venue, symbol)
        found = Coverage() if blob is None else Coverage.from_doc(orjson.loads(blob))
        return self._ledgers.setdefault((venue, symbol), found)

    def known_coverage(self, venue: Venue, symbol: str) -> Coverage | None:
        """Return the series' ledger if it is in memory already (no I/O: the hot path)."""
        return self._ledgers.get((venue, symbol))

    def known_series(self) -> list[tuple[Venue, str]]:
        """Return the (venue, symbol) pairs whose ledgers are in memory."""
        return list(self._ledgers)

    def forget_ledgers(self) -> None:
        """Drop the ledgers held in memory (another process wrote the store)."""
        self._ledgers.clear()

    async def update_coverage(
        self, venue: Venue, symbol: str, change: Callable[[Coverage], Coverage]
    ) -> Coverage:
        """Apply `change` to the series' ledger and store it, serialised with ingests
        (a failure, an anomaly, the inception or a bootstrap checkpoint)."""
        async with self._lock(venue, symbol):
            before = await self.coverage(venue, symbol)
            after = change(before)
            if after != before:
                await self.store.save_ledger(venue, symbol, orjson.dumps(after.to_doc()))
                self._ledgers[(venue, symbol)] = after
            return after

    def _lock(self, venue: Venue, symbol: str) -> asyncio.Lock:
        return self._locks.setdefault((venue, symbol), asyncio.Lock())

    async def _ingest(
        self,
        venue: Venue,
        symbol: str,
        batch: CandleColumns,
        inception_ms: int | None,
        extra_outages: Sequence[Outage],
        now_ms: int | None,
        answered: Span | Sequence[Span] | None,
    ) -> IngestReport:
        coverage = await self.coverage(venue, symbol)
        if inception_ms is not None and coverage.inception_ms is None:
            coverage = coverage.with_inception(inception_ms)
        inception_ms = coverage.inception_ms
        updated = _marked(coverage, batch, answered, now_ms)
        ledger = None if updated == coverage else orjson.dumps(updated.to_doc())
        if len(batch) == 0:
            if ledger is not None:
                await self.store.save_ledger(venue, symbol, ledger)
                self._ledgers[(venue, symbol)] = updated
            return IngestReport()
        if ledger is None and await self._holds(venue, symbol, batch):
            return IngestReport({M1.code: UpsertResult(unchanged=len(batch))})
        outages = [*extra_outages, *updated.empty]
        writes = await self._derived(venue, symbol, batch, inception_ms, outages, now_ms)
        try:
            results = await self.store.write(venue, symbol, writes, ledger)
        except BaseException:
            self._ledgers.pop((venue, symbol), None)  # the store says what it holds
            raise
        if ledger is not None:
            self._ledgers[(venue, symbol)] = updated
        report = IngestReport()
        for (tf, rows), result in zip(writes, results, strict=True):
            report.written[tf.code] = result
            if result.inserted or result.corrected:
                await self._notify(venue, symbol, tf, rows)
        return report

    async def _derived(
        self,
        venue: Venue,
        symbol: str,
        batch: CandleColumns,
        inception_ms: int | None,
        outages: Sequence[Outage],
        now_ms: int | None,
    ) -> list[tuple[Timeframe, CandleColumns]]:
        """The batch and every level derived from it, in `DERIVATION` order."""
        levels = [
            (target, source)
            for target, source in DERIVATION
            if not (target.kind is GridKind.LISTING and inception_ms is None)
        ]  # 3d buckets need the listing day: derived once it is known
        stored = await self._stored_sources(venue, symbol, batch, levels, inception_ms)
        writes: list[tuple[Timeframe, CandleColumns]] = [(M1, batch)]
        held = {M1.code: batch}
        for (target, source), (reads, fetched) in zip(levels, stored, strict=True):
            rows = _source_rows(held[source.code], reads, fetched)
            derived = aggregate_columns(
                rows,
                target,
                source=source,
                inception_ms=inception_ms,
                outages=outages,
                now_ms=now_ms,
            )
            held[target.code] = derived
            writes.append((target, derived))
        return writes

    async def _holds(self, venue: Venue, symbol: str, batch: CandleColumns) -> bool:
        """True when the store holds exactly `batch` already (a re-fetch or re-import:
        the ledger says every minute is present), so nothing needs writing."""
        opens = batch.open_time_ms
        stored = await self.store.read(venue, symbol, M1, start_ms=opens[0], end_ms=opens[-1])
        _, inserted, corrected = merge(stored, batch)
        return inserted == corrected == 0

    async def _stored_sources(
        self,
        venue: Venue,
        symbol: str,
        batch: CandleColumns,
        levels: Sequence[tuple[Timeframe, Timeframe]],
        inception_ms: int | None,
    ) -> list[tuple[list[Window], list[CandleColumns]]]:
        """For each level, the stored `source` rows its touched buckets need beyond
        what this ingest writes: the windows read and what they returned.

        A target bucket touched by the batch is touched by the source rows derived
        from it (the chain nests), so the windows follow from the 1m open times alone
        and every read can run at once, before anything is written. For a dense batch
        they are the parts of its two end buckets outside the batch's span; for a
        batch with holes, every touched bucket whole."""
        opens = batch.open_time_ms
        dense = opens[-1] - opens[0] == (len(opens) - 1) * M1.duration_ms
        plans: list[list[Window]] = []
        for target, source in levels:
            if dense:
                plans.append(_edge_windows(target, source, opens[0], opens[-1], inception_ms))
            else:
                plans.append(spans(target, touched(target, opens, inception_ms), inception_ms))
        reads = [
            self.store.read(venue, symbol, source, start_ms=lo, end_ms=hi)
            for (_, source), windows in zip(levels, plans, strict=True)
            for lo, hi in windows
        ]
        fetched = iter(await asyncio.gather(*reads))
        return [(windows, [next(fetched) for _ in windows]) for windows in plans]

    async def _notify(
        self, venue: Venue, symbol: str, tf: Timeframe, candles: CandleColumns
    ) -> None:
        for listener in self._listeners:
            await listener(venue, symbol, tf, candles)


def _edge_windows(
    target: Timeframe, source: Timeframe, first_ms: int, last_ms: int, inception_ms: int | None
) -> list[Window]:
    """The stored `source` rows that the end buckets of a dense batch of minutes
    [first_ms, last_ms] need and the batch does not bring: before its first source
    bucket and after its last one, within the touched target buckets."""
    windows: list[Window] = []
    head = target.bucket_open(first_ms, inception_ms)
    brought_from = source.bucket_open(first_ms, inception_ms)
    if head < brought_from:
        windows.append((head, brought_from - 1))
    brought_to = source.next_open(last_ms, inception_ms)
    tail_end = target.next_open(last_ms, inception_ms)
    if brought_to < tail_end:
        windows.append((brought_to, tail_end - 1))
    return windows


def _source_rows(
    written: CandleColumns, windows: list[Window], stored: list[CandleColumns]
) -> CandleColumns:
    """Return every `source` row the touched buckets hold once `written` is stored:
    the stored rows of `windows`, with `written` replacing rows of the same open time."""
    if not any(len(rows) for rows in stored):
        return written  # nothing stored around the batch (a bootstrap): no copy at all
    opens = written.open_time_ms
    parts: list[CandleColumns] = []
    taken = 0  # written rows placed so far
    for (lo, hi), rows in zip(windows, stored, strict=True):
        start, end = bisect_left(opens, lo), bisect_right(opens, hi)
        if start > taken:  # written rows between the previous window and this one
            parts.append(written.slice(taken, start))
        inside = written.slice(start, end)
        parts.append(merge(rows, inside)[0] if len(inside) else rows)
        taken = max(taken, end)
    if taken < len(written):
        parts.append(written.slice(taken, len(written)))
    parts = [p for p in parts if len(p)]
    return concat(parts) if parts else empty_columns(written.trades is not None)


def _marked(
    coverage: Coverage,
    batch: CandleColumns,
    answered: Span | Sequence[Span] | None,
    now_ms: int | None,
) -> Coverage:
    """The ledger with the batch's minutes present and, for the answered windows, the
    minutes they did not hold confirmed empty."""
    got = SpanSet.from_open_times(batch.open_time_ms)
    updated = coverage.with_present(got)
    if answered is not None:
        assert now_ms is not None
        for window in _windows(answered):
            updated = updated.with_answer(window, got, now_ms)
    return updated


def _windows(answered: Span | Sequence[Span]) -> list[Span]:
    """One answered window or several, as a list."""
    first = answered[0]
    if isinstance(first, int):
        start, end = answered
        assert isinstance(start, int)
        assert isinstance(end, int)
        return [(start, end)]
    return [w for w in answered if not isinstance(w, int)]
