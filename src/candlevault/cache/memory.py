"""The in-process hot cache: per series, its covered span, sorted open times and rows.

A read is the hot path, measured in microseconds: one dict lookup, two `bisect` calls on
a list of ints and one slice of the parallel list of row bytes, so it does no per-row
Python work and allocates nothing but the slice. Writes pay instead: they splice into
the sorted lists and trim to the retention window.

Generations live apart from the entries, so a series that was never loaded or was
invalidated keeps its counter: resetting it would let a load that observed the old
value slip through. The span rules (`Span`, `load_span`, `trim`) are shared with the
Redis engine, so both engines merge and trim the same way.

The methods are `async` only to fit `HotCache`; none awaits, so each runs to completion
on the event loop and needs no lock.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence

from candlevault.cache.ports import CacheStats, HotRows, SeriesKey
from candlevault.cache.retention import Retention
from candlevault.domain.timeframes import Timeframe
from candlevault.domain.venues import Venue


class Span:
    """One series' entry: covered span [lo, hi) and its rows, ascending by open time."""

    __slots__ = ("hi", "lo", "opens", "rows")

    def __init__(self, lo: int, hi: int, opens: list[int], rows: list[bytes]) -> None:
        self.lo = lo
        self.hi = hi
        self.opens = opens
        self.rows = rows


def load_span(
    span: Span | None,
    lo_ms: int,
    hi_ms: int,
    opens: Sequence[int],
    rows: Sequence[bytes],
) -> Span:
    """Merge the store's rows of [lo_ms, hi_ms) into `span` when the two touch or
    overlap (the new rows win inside it), else return a new span of just them."""
    a, b = bisect_left(opens, lo_ms), bisect_left(opens, hi_ms)
    new_opens, new_rows = list(opens[a:b]), list(rows[a:b])
    if span is None or span.hi < lo_ms or hi_ms < span.lo:
        return Span(lo_ms, hi_ms, new_opens, new_rows)
    i, j = bisect_left(span.opens, lo_ms), bisect_left(span.opens, hi_ms)
    span.opens[i:j] = new_opens
    span.rows[i:j] = new_rows
    span.lo, span.hi = min(span.lo, lo_ms), max(span.hi, hi_ms)
    return span


def trim(span: Span, keep_ms: int) -> None:
    """Drop rows older than `keep_ms` behind the newest row and raise `lo` to match."""
    if not span.opens:
        return
    cutoff = span.opens[-1] - keep_ms
    if cutoff > span.lo:
        span.lo = cutoff
        k = bisect_left(span.opens, cutoff)
        del span.opens[:k], span.rows[:k]


def matches(key: SeriesKey, venue: Venue | None, symbol: str | None, tf: Timeframe | None) -> bool:
    """Whether `key` is among the series an `invalidate(venue, symbol, tf)` names."""
    return (
        (venue is None or key.venue == venue)
        and (symbol is None or key.symbol == symbol)
        and (tf is None or key.tf.code == tf.code)
    )


class MemoryCache:
    """`HotCache` in this process's memory."""

    engine = "memory"

    def __init__(self, retention: Retention) -> None:
        self._retention = retention
        self._spans: dict[SeriesKey, Span] = {}
        self._generations: dict[SeriesKey, int] = {}

    async def read(
        self, key: SeriesKey, start_ms: int, end_ms: int, limit: int, *, newest: bool
    ) -> HotRows | None:
        """Return the rows opening in [start_ms, end_ms], or None when not covered."""
        span = self._spans.get(key)
        if span is None or start_ms < span.lo or end_ms >= span.hi:
            return None
        opens = span.opens
        i = bisect_left(opens, start_ms)
        j = bisect_right(opens, end_ms, i)
        if j - i > limit:
            if newest:
                i = j - limit
            else:
                j = i + limit
        if i >= j:
            return HotRows([], None, None)
        return HotRows(span.rows[i:j], opens[i], opens[j - 1])

    async def generation(self, key: SeriesKey) -> int:
        """Return the series' update counter."""
        return self._generations.get(key, 0)

    async def load(
        self,
        key: SeriesKey,
        lo_ms: int,
        hi_ms: int,
        opens: Sequence[int],
        rows: Sequence[bytes],
        generation: int,
    ) -> bool:
        """Install the store's rows of [lo_ms, hi_ms) unless an update came since."""
        if len(opens) != len(rows):
            raise ValueError(f"{len(opens)} open times for {len(rows)} rows")
        if self._generations.get(key, 0) != generation:
            return False
        if lo_ms < hi_ms:
            span = load_span(self._spans.get(key), lo_ms, hi_ms, opens, rows)
            trim(span, self._retention.ms(key.tf))
            self._spans[key] = span
        return True

    async def update(
        self, key: SeriesKey, opens: Sequence[int], rows: Sequence[bytes], through_ms: int
    ) -> None:
        """Apply written rows inside the span and extend it to `through_ms` if contiguous."""
        if len(opens) != len(rows):
            raise ValueError(f"{len(opens)} open times for {len(rows)} rows")
        self._generations[key] = self._generations.get(key, 0) + 1
        span = self._spans.get(key)
        if span is None or not opens:
            return
        if span.hi >= opens[0] and through_ms > span.hi:
            span.hi = through_ms
        a, b = bisect_left(opens, span.lo), bisect_left(opens, span.hi)
        if a < b:
            _merge(span, opens[a:b], rows[a:b])
            trim(span, self._retention.ms(key.tf))

    async def invalidate(
        self, venue: Venue | None = None, symbol: str | None = None, tf: Timeframe | None = None
    ) -> int:
        """Drop the named entries (generations stay); return how many."""
        doomed = [key for key in self._spans if matches(key, venue, symbol, tf)]
        for key in doomed:
            del self._spans[key]
        return len(doomed)

    async def stats(self) -> CacheStats:
        """Return how many series, rows and row bytes the cache holds."""
        spans = self._spans.values()
        return CacheStats(
            engine=self.engine,
            series=len(spans),
            rows=sum(len(span.opens) for span in spans),
            bytes=sum(sum(map(len, span.rows)) for span in spans),
        )

    async def aclose(self) -> None:
        """Drop everything; there are no connections to release."""
        self._spans.clear()


def _merge(span: Span, opens: Sequence[int], rows: Sequence[bytes]) -> None:
    # The common case is the newest closed candle: an append.
    if not span.opens or opens[0] > span.opens[-1]:
        span.opens.extend(opens)
        span.rows.extend(rows)
        return
    i, j = bisect_left(span.opens, opens[0]), bisect_right(span.opens, opens[-1])
    merged = dict(zip(span.opens[i:j], span.rows[i:j], strict=True))
    merged.update(zip(opens, rows, strict=True))
    ordered = sorted(merged)
    span.opens[i:j] = ordered
    span.rows[i:j] = [merged[t] for t in ordered]
