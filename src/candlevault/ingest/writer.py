"""The one write path for every candle, whatever its source.

Bootstrap, archive import, gap fill, read-path fetches and the real-time builder all
hand closed 1m candles to `Ingestor.ingest`, which (1) upserts them, (2) rebuilds every
higher-timeframe bucket they touch from what the store now holds, level by level along
`DERIVATION`, with the domain core's aggregation (incomplete buckets flagged), and
(3) marks the minutes present in the coverage ledger, and (4) tells whoever listens
(the hot cache, from the serve issue on) what changed.
Engines only store and read, so SQLite and MongoDB never each re-implement derivation.

Derived buckets are recomputed from the store, not from the batch alone: a batch that
fills a gap in the middle of a day touches buckets whose other minutes were stored
long ago, and only the store has them. Reading back costs ~0.2 µs a candle, and the
aggregation works on columns (`aggregation.columnar`), never on one object per candle.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import msgspec
import orjson

from candlevault.aggregation import Outage
from candlevault.aggregation.columnar import aggregate_columns
from candlevault.domain.columns import CandleColumns, empty_columns
from candlevault.domain.coverage import Coverage
from candlevault.domain.spans import SpanSet
from candlevault.domain.timeframes import M1, GridKind, Timeframe
from candlevault.domain.venues import Venue
from candlevault.ingest.derive import DERIVATION, spans, touched
from candlevault.storage.chunks import ascending
from candlevault.storage.ports import CandleStore, UpsertResult

Listener = Callable[[Venue, str, Timeframe, CandleColumns], Awaitable[None]]


class IngestReport(msgspec.Struct):
    """What one ingest wrote, per timeframe code."""

    written: dict[str, UpsertResult] = msgspec.field(default_factory=dict)

    @property
    def minutes(self) -> UpsertResult:
        """The 1m upsert's result."""
        return self.written.get(M1.code, UpsertResult())


class Ingestor:
    """Upsert 1m candles and keep every derived timeframe exact."""

    def __init__(self, store: CandleStore, listeners: Sequence[Listener] = ()) -> None:
        self.store = store
        self._listeners = tuple(listeners)

    async def ingest(
        self,
        venue: Venue,
        symbol: str,
        minutes: CandleColumns,
        *,
        inception_ms: int | None,
        outages: Sequence[Outage] = (),
        now_ms: int | None = None,
    ) -> IngestReport:
        """Write closed 1m candles, mark them present in the coverage ledger, and
        rebuild every higher-timeframe bucket they touch.

        The ledger supplies the symbol's inception (3d anchor; first buckets complete
        from the listing) and its confirmed-empty spans (outages); `inception_ms`
        records the inception if the ledger has none, `outages` adds spans to it for
        this call; `now_ms` tells which derived buckets are over (closed).
        """
        report = IngestReport()
        batch = ascending(minutes)
        if len(batch) == 0:
            return report
        coverage = await self.coverage(venue, symbol)
        if inception_ms is not None and coverage.inception_ms is None:
            coverage = coverage.with_inception(inception_ms)
        inception_ms = coverage.inception_ms
        outages = [*outages, *coverage.empty]
        result = report.written[M1.code] = await self.store.upsert(venue, symbol, M1, batch)
        updated = coverage.with_present(SpanSet.from_open_times(batch.open_time_ms))
        if updated != coverage:
            await self.store.save_ledger(venue, symbol, orjson.dumps(updated.to_doc()))
        if not (result.inserted or result.corrected):
            return report  # the store held exactly these candles: nothing above changes
        await self._notify(venue, symbol, M1, batch)
        changed: dict[str, list[int]] = {M1.code: batch.open_time_ms}
        reads: dict[tuple[str, int, int], CandleColumns] = {}  # 3m and 5m read the same 1m
        for target, source in DERIVATION:
            opens = changed.get(source.code)
            if not opens:
                continue
            derived = await self._derive(
                venue, symbol, target, source, opens, inception_ms, outages, now_ms, reads
            )
            if len(derived) == 0:
                continue
            result = await self.store.upsert(venue, symbol, target, derived)
            report.written[target.code] = result
            if result.inserted or result.corrected:  # else the levels above are unchanged too
                changed[target.code] = derived.open_time_ms
                await self._notify(venue, symbol, target, derived)
        return report

    async def coverage(self, venue: Venue, symbol: str) -> Coverage:
        """Return the series' coverage ledger (empty if none was stored yet)."""
        blob = await self.store.load_ledger(venue, symbol)
        return Coverage() if blob is None else Coverage.from_doc(orjson.loads(blob))

    async def _derive(
        self,
        venue: Venue,
        symbol: str,
        target: Timeframe,
        source: Timeframe,
        opens: list[int],
        inception_ms: int | None,
        outages: Sequence[Outage],
        now_ms: int | None,
        reads: dict[tuple[str, int, int], CandleColumns],
    ) -> CandleColumns:
        """Rebuild the `target` buckets that the `source` candles at `opens` fall in."""
        if target.kind is GridKind.LISTING and inception_ms is None:
            return empty_columns()  # 3d buckets need the listing day; derived once known
        derived: CandleColumns | None = None
        for lo, hi in spans(target, touched(target, opens, inception_ms), inception_ms):
            key = (source.code, lo, hi)
            rows = reads.get(key)
            if rows is None:
                rows = await self.store.read(venue, symbol, source, start_ms=lo, end_ms=hi)
                reads[key] = rows
            part = aggregate_columns(
                rows,
                target,
                source=source,
                inception_ms=inception_ms,
                outages=outages,
                now_ms=now_ms,
            )
            if derived is None:
                derived = part
            else:
                derived.extend(part)
        return empty_columns() if derived is None else derived

    async def _notify(
        self, venue: Venue, symbol: str, tf: Timeframe, candles: CandleColumns
    ) -> None:
        for listener in self._listeners:
            await listener(venue, symbol, tf, candles)
