"""The hot cache's contract: what the in-process and Redis engines both do.

A hot read must be a lookup and a slice of bytes prepared when the candles arrived
(ARCHITECTURE.md: "JSON is built on write, not per request"), so an entry holds each
closed candle as its rendered JSON row (`cache.rows`), never as numbers to format.

Each series (venue, symbol, timeframe) has at most one entry: a *covered span*
[lo_ms, hi_ms) of open times for which the entry holds exactly the closed candles the
warm store holds, and those rows. Whether the span is *complete* (every minute present
or confirmed empty) is the coverage ledger's business, not the cache's; the cache only
promises that a window inside its span needs no warm read.

How the span stays true:
- `load` installs what the read path just read from the warm store. A write that
  landed between that read and the load would be lost from the entry, so `load` takes
  the series' `generation` observed *before* the read and refuses (False) if any
  `update` happened since.
- `update` is called by the one write path for every closed candle it writes, in the
  same process; rows inside the span replace or join it, and the span grows to
  `through_ms` when the caller says everything up to there has been delivered.
- Retention: each timeframe keeps `Retention.ms(tf)` of history behind its newest row;
  older rows are trimmed (and `lo_ms` raised) as new ones arrive.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol

import msgspec

from candlevault.domain.timeframes import Timeframe
from candlevault.domain.venues import Venue


class SeriesKey(NamedTuple):
    """One series of candles."""

    venue: Venue
    symbol: str
    tf: Timeframe


class HotRows(NamedTuple):
    """Rows of a hot read: ascending, each a JSON array *without* its closing `]`
    (see `cache.rows`), with the open times of the first and last."""

    rows: list[bytes]
    first_open_ms: int | None
    last_open_ms: int | None


class CacheStats(msgspec.Struct):
    """What the engine holds and how it is doing."""

    engine: str
    healthy: bool = True
    series: int = 0
    rows: int = 0
    bytes: int = 0
    degraded_since_ms: int | None = None
    errors: int = 0
    last_error: str | None = None


class HotCache(Protocol):
    """Recent closed candles of every series, as prebuilt row bytes."""

    engine: str  # "memory" or "redis"

    async def read(
        self, key: SeriesKey, start_ms: int, end_ms: int, limit: int, *, newest: bool
    ) -> HotRows | None:
        """Return the rows opening in [start_ms, end_ms] (inclusive), at most `limit`:
        the oldest ones, or the newest ones when `newest`. None (a miss) when the window
        is not inside the covered span, or the engine is unavailable."""
        ...

    async def generation(self, key: SeriesKey) -> int:
        """Return the series' update counter (see `load`)."""
        ...

    async def load(
        self,
        key: SeriesKey,
        lo_ms: int,
        hi_ms: int,
        opens: Sequence[int],
        rows: Sequence[bytes],
        generation: int,
    ) -> bool:
        """Install the warm store's closed rows of [lo_ms, hi_ms) (ascending `opens`,
        one row each), merged with the entry's span when the two touch or overlap,
        replacing it otherwise. Refused (False) when the series' generation is no longer
        `generation`, or the engine is unavailable."""
        ...

    async def update(
        self, key: SeriesKey, opens: Sequence[int], rows: Sequence[bytes], through_ms: int
    ) -> None:
        """Apply written closed rows (ascending): replace or insert the ones inside the
        span; if the entry's span ends at or after the first of them, extend it to
        `through_ms` (the caller's promise: every stored row below it was delivered).
        Bumps the generation whether or not an entry exists. Never raises for an
        unavailable engine (the entry is dropped on recovery instead)."""
        ...

    async def invalidate(
        self, venue: Venue | None = None, symbol: str | None = None, tf: Timeframe | None = None
    ) -> int:
        """Drop entries (all, a venue's, a symbol's, or one series); return how many."""
        ...

    async def stats(self) -> CacheStats:
        """Return what the cache holds and its health."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...
