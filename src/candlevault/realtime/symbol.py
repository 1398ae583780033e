"""One streamed symbol's state in `LiveCandles`: its builder and what surrounds it.

Kept apart from the builder (pure trades → candles) because it is about the feed: the
trades held while the open minute is backfilled, the venue's own klines waiting to be
reconciled, the recent minutes written (which a late closed kline may correct).
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from dataclasses import dataclass, field

from candlevault.aggregation.builder import CandleBuilder
from candlevault.domain.candles import Candle
from candlevault.domain.spans import Span
from candlevault.domain.trades import Trade
from candlevault.domain.venues import Venue
from candlevault.exchanges.ports import SymbolInfo

WRITTEN_KEPT = 10  # minutes: a venue's closed kline comes within seconds of the close


@dataclass
class Queued:
    """Unknown minutes held for one REST repair, and what to check after it."""

    span: Span
    unproven: list[Span] = field(default_factory=list)  # the feed watched these: no proof
    seen: dict[int, Candle] = field(default_factory=dict)  # what it delivered of them


class LiveSymbol:
    """A streamed symbol: info, feed, builder (None while its feed is down) and more."""

    __slots__ = (
        "backfill_deadline_ms",
        "backfilling",
        "buffer",
        "builder",
        "feed",
        "inception_ms",
        "info",
        "provisional",
        "queued",
        "repaired_minutes",
        "started_ms",
        "venue",
        "venue_closed",
        "written",
    )

    def __init__(
        self, venue: Venue, info: SymbolInfo, inception_ms: int | None, feed: Hashable
    ) -> None:
        self.venue = venue
        self.info = info
        self.inception_ms = inception_ms
        self.feed = feed
        self.builder: CandleBuilder | None = None
        self.buffer: list[Trade] | None = None  # the stream's trades, held while backfilling
        self.backfilling: asyncio.Task[None] | None = None
        self.backfill_deadline_ms = 0  # exchange time past which the backfill is too late
        self.started_ms = 0  # when the feed came up (exchange time)
        self.venue_closed: dict[int, Candle] = {}  # the venue's closed klines, by minute
        self.provisional: Candle | None = None  # the venue's newest forming 1m kline
        self.written: dict[int, Candle] = {}  # the last minutes written, by minute
        self.repaired_minutes = 0
        self.queued: Queued | None = None  # unknown minutes waiting for one repair

    def retire(self) -> None:
        """Drop the builder and any backfill in flight (the feed broke or starts over)."""
        task = self.backfilling
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        self.backfilling = None
        self.builder = None
        self.buffer = None

    def remember(self, candles: list[Candle]) -> None:
        """Keep the newest written minutes, for a closed kline that comes after them."""
        written = self.written
        for candle in candles:
            written[candle.open_time_ms] = candle
        if len(written) > WRITTEN_KEPT:
            for minute in sorted(written)[: len(written) - WRITTEN_KEPT]:
                del written[minute]

    def take_venue_closed_before(self, minute: int) -> list[Candle]:
        """Remove and return the venue's closed klines of minutes before `minute`."""
        older = sorted(m for m in self.venue_closed if m < minute)
        return [self.venue_closed.pop(m) for m in older]
