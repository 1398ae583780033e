"""The warm store's contract: what every engine (SQLite, MongoDB) does, and nothing more.

Engines only store and read; deriving higher timeframes, deciding what is missing and
notifying caches happen once, above them, in `ingest/`. Every operation is async and
keyed by (venue, symbol, timeframe); candles travel as `CandleColumns` batches in
ascending open time, times are epoch ms and windows are inclusive at both ends, as
Binance's klines bound open times.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import msgspec

from candlevault.domain.columns import CandleColumns
from candlevault.domain.timeframes import Timeframe
from candlevault.domain.venues import Venue


class UpsertResult(msgspec.Struct, frozen=True):
    """What an upsert did: new rows, rows replaced by a different candle, rows unchanged."""

    inserted: int = 0
    corrected: int = 0
    unchanged: int = 0

    def __add__(self, other: UpsertResult) -> UpsertResult:
        return UpsertResult(
            self.inserted + other.inserted,
            self.corrected + other.corrected,
            self.unchanged + other.unchanged,
        )


class CandleStore(Protocol):
    """Complete candle history of every (venue, symbol, timeframe), plus the ledger blobs."""

    async def upsert(
        self, venue: Venue, symbol: str, tf: Timeframe, candles: CandleColumns
    ) -> UpsertResult:
        """Insert or replace candles by open time; the same candle twice is one row."""
        ...

    async def write(
        self,
        venue: Venue,
        symbol: str,
        batches: Sequence[tuple[Timeframe, CandleColumns]],
        ledger: bytes | None = None,
    ) -> list[UpsertResult]:
        """Upsert each (timeframe, candles) batch in order, then store the ledger (if
        given); return each batch's result.

        This is the ingest layer's one write: an engine with transactions applies all
        of it atomically (SQLite); one without applies it in this order (MongoDB), so
        a crash midway leaves the ledger, written last, claiming nothing unstored and
        the next ingest of those minutes rebuilds what lies above them."""
        ...

    async def read(
        self,
        venue: Venue,
        symbol: str,
        tf: Timeframe,
        *,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int | None = None,
    ) -> CandleColumns:
        """Return candles opening in [start_ms, end_ms], ascending, the oldest `limit`."""
        ...

    async def latest(self, venue: Venue, symbol: str, tf: Timeframe, n: int) -> CandleColumns:
        """Return the newest `n` candles, ascending."""
        ...

    async def bounds(self, venue: Venue, symbol: str, tf: Timeframe) -> tuple[int, int] | None:
        """Return the first and last open time stored (None: nothing stored)."""
        ...

    async def count(
        self,
        venue: Venue,
        symbol: str,
        tf: Timeframe,
        *,
        start_ms: int | None = None,
        end_ms: int | None = None,
    ) -> int:
        """Return how many candles open in [start_ms, end_ms]."""
        ...

    async def delete(
        self, venue: Venue, symbol: str, tf: Timeframe, start_ms: int, end_ms: int
    ) -> int:
        """Delete the candles opening in [start_ms, end_ms]; return how many went."""
        ...

    async def load_ledger(self, venue: Venue, symbol: str) -> bytes | None:
        """Return the stored coverage ledger of (venue, symbol), encoded by its owner."""
        ...

    async def save_ledger(self, venue: Venue, symbol: str, ledger: bytes) -> None:
        """Store the coverage ledger of (venue, symbol), replacing the previous one."""
        ...

    async def aclose(self) -> None:
        """Finish pending work and release connections and files."""
        ...
