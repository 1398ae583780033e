"""Keeps the hot cache true as candles are written: the ingest listener.

Every write of the one write path reaches `HotWriter.written` with the rows it stored
(1m and each derived timeframe). Closed rows within the timeframe's retention are
rendered once, here, and handed to the cache (`HotCache.update`): reads then never
render them. The cache's span grows only over the first unbroken run of buckets in the
write, since only there does the write prove that nothing else is stored.

Rows older than the retention are not rendered (a bootstrap writes years of them);
if any changed, the series' entry is dropped instead, so a stale row is never served
and the next read reloads from the warm store.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable

from candlevault.cache.ports import HotCache, SeriesKey
from candlevault.cache.retention import Retention
from candlevault.cache.rows import render_rows
from candlevault.domain.columns import CLOSED, CandleColumns
from candlevault.domain.timeframes import GridKind, Timeframe
from candlevault.domain.venues import Venue
from candlevault.exchanges.ports import SymbolInfo

InfoOf = Callable[[Venue, str], SymbolInfo | None]
NowOf = Callable[[Venue], int]


class HotWriter:
    """The ingest listener that renders written rows into the hot cache."""

    def __init__(self, hot: HotCache, retention: Retention, info_of: InfoOf, now_of: NowOf) -> None:
        self.hot = hot
        self.retention = retention
        self.info_of = info_of
        self.now_of = now_of

    async def written(self, venue: Venue, symbol: str, tf: Timeframe, rows: CandleColumns) -> None:
        """Apply one timeframe's written rows (ascending) to the cache."""
        key = SeriesKey(venue, symbol, tf)
        info = self.info_of(venue, symbol)
        cutoff = self.now_of(venue) - self.retention.ms(tf)
        recent = bisect_left(rows.open_time_ms, cutoff)
        if recent > 0 or info is None:
            await self.hot.invalidate(venue, symbol, tf)
        if info is None:
            return
        fresh = _closed_rows(rows.slice(recent, len(rows)))
        if not len(fresh):
            await self.hot.update(key, [], [], cutoff)  # the generation moves all the same
            return
        rendered = render_rows(fresh, info.precision)
        await self.hot.update(key, fresh.open_time_ms, rendered, _run_end(fresh, tf))


def _closed_rows(rows: CandleColumns) -> CandleColumns:
    """The closed rows: all but a newest bucket still filling."""
    end = len(rows)
    while end and not rows.flags[end - 1] & CLOSED:
        end -= 1
    return rows if end == len(rows) else rows.slice(0, end)


def _run_end(rows: CandleColumns, tf: Timeframe) -> int:
    """Where the unbroken run of buckets that starts at the first row ends."""
    month = tf.kind is GridKind.MONTH
    opens = rows.open_time_ms
    end = tf.next_open(opens[0]) if month else opens[0] + tf.duration_ms
    for t in opens[1:]:
        if t != end:
            break
        end = tf.next_open(t) if month else t + tf.duration_ms
    return end
