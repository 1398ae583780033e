"""Rendered kline rows of closed buckets, kept per (market view, interval).

A closed bucket never changes, so its JSON row is rendered once and reused: warm kline
requests are a lookup and a join. Two generations of dicts bound the memory (when the
young one fills up it becomes the old one and the previous old one is dropped), which
is an LRU without per-hit bookkeeping. Each venue renders its own rows, and views are
per venue, so one registry serves every venue without mixing them.
"""

from __future__ import annotations

from weakref import WeakKeyDictionary

from candlevault.domain.timeframes import Timeframe
from candlevault.simulator.klines import KlineView

EMPTY = b""  # a closed bucket without a candle (an outage)


class RowCache:
    """Rendered rows of one (view, interval) by open time; at most 2 × `capacity` rows."""

    def __init__(self, capacity: int = 50_000) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, not {capacity}")
        self._capacity = capacity
        self.young: dict[int, bytes] = {}
        self.old: dict[int, bytes] = {}
        # the forming bucket's row and what fixes it (bucket, minute, trades printed)
        self.forming: tuple[tuple[int, int, int], bytes] | None = None

    def __len__(self) -> int:
        return len(self.young) + len(self.old)

    def get(self, open_ms: int) -> bytes | None:
        """Return the row of the closed bucket at `open_ms` (EMPTY: none), None if unknown."""
        row = self.young.get(open_ms)
        if row is None:
            row = self.old.get(open_ms)
            if row is not None:
                self.young[open_ms] = row
        return row

    def put(self, open_ms: int, row: bytes) -> None:
        """Remember the row (or EMPTY) of a closed bucket."""
        self.young[open_ms] = row
        if len(self.young) > self._capacity:
            self.old, self.young = self.young, {}


_CACHES: WeakKeyDictionary[KlineView, dict[str, RowCache]] = WeakKeyDictionary()


def row_cache(view: KlineView, tf: Timeframe) -> RowCache:
    """Return the row cache of `view` at interval `tf` (made on first use)."""
    caches = _CACHES.get(view)
    if caches is None:
        caches = _CACHES[view] = {}
    cache = caches.get(tf.code)
    if cache is None:
        cache = caches[tf.code] = RowCache()
    return cache
