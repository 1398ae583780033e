"""REST repairs of the minutes a stream could not vouch for: batched, made once the
minutes have closed, and checked for trades the feed lost while connected.

A quiet connection leaves a minute unknown at every close (nothing proved it alive past
its end), so consecutive unknown minutes of a symbol are held (`queue`) and fetched in
one request when the stretch ends or reaches `batch_ms` (`flush`: 5 minutes by default,
also how long a feed that went silent while connected can go unnoticed); the planner behind
`repair` asks the exchange only for what is still missing then (a venue's closed kline
may have settled some meanwhile). Minutes the feed was watching but could not prove
(`unproven`) are checked after the repair: REST volume the feed never delivered means it
is losing data while connected, and `on_lost` is told.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from candlevault.aggregation.builder import Closing
from candlevault.domain.clock import Clock
from candlevault.domain.errors import CandlevaultError
from candlevault.domain.spans import Span
from candlevault.domain.timeframes import M1, MINUTE_MS
from candlevault.domain.venues import Venue
from candlevault.realtime.symbol import LiveSymbol, Queued
from candlevault.storage.ports import CandleStore

log = logging.getLogger(__name__)
Repair = Callable[[Venue, str, Span, bool], Awaitable[None]]  # (venue, symbol, span, fresh)
Spawn = Callable[[Coroutine[Any, Any, None]], object]


class Repairs:
    """The REST repairs of the streamed symbols (see the module docstring)."""

    def __init__(
        self,
        store: CandleStore,
        clock_of: Callable[[Venue], Clock],
        repair: Repair,
        spawn: Spawn,
        on_lost: Callable[[LiveSymbol], None],
        *,
        grace_ms: int,
        tick_s: float,
        batch_ms: int,
    ) -> None:
        self.store = store
        self.clock_of = clock_of
        self.repair = repair
        self.spawn = spawn
        self.on_lost = on_lost
        self.grace_ms = grace_ms
        self.tick_s = tick_s
        self.batch_ms = batch_ms

    def queue(self, live: LiveSymbol, span: Span, closing: Closing) -> None:
        """Hold an unknown span (from `closing`) for one repair with the next ones."""
        queued = live.queued
        if queued is None or queued.span[1] != span[0]:
            self.flush(live)
            queued = live.queued = Queued(span)
        queued.span = (queued.span[0], span[1])
        for lo, hi in closing.unproven:
            if lo < span[1] and span[0] < hi:
                queued.unproven.append((max(lo, span[0]), min(hi, span[1])))
        queued.seen.update(closing.seen)
        if queued.span[1] - queued.span[0] >= self.batch_ms:
            self.flush(live)

    def flush(self, live: LiveSymbol) -> None:
        """Repair what is held for `live` now."""
        queued, live.queued = live.queued, None
        if queued is not None:
            self.start(live, queued.span, False, queued if queued.unproven else None)

    def start(self, live: LiveSymbol, span: Span, fresh: bool, check: Queued | None = None) -> None:
        """Fetch `span` from REST once it has closed (`fresh`: again, a late trade says
        the stored minute is wrong); `check` given: then see whether the feed lost trades."""
        if span[1] <= span[0]:
            return
        live.repaired_minutes += (span[1] - span[0]) // MINUTE_MS
        self.spawn(self._run(live, span, fresh, check))

    async def _run(self, live: LiveSymbol, span: Span, fresh: bool, check: Queued | None) -> None:
        venue, symbol = live.venue, live.info.symbol
        clock = self.clock_of(venue)
        wait_ms = span[1] + self.grace_ms - clock.now_ms()
        while wait_ms > 0:  # exchange time may run faster than the wall: check again
            await asyncio.sleep(min(wait_ms / 1000, self.tick_s))
            wait_ms = span[1] + self.grace_ms - clock.now_ms()
        try:
            await self.repair(venue, symbol, span, fresh)
        except CandlevaultError as e:
            log.warning("repairing %s %s %s failed: %s", venue.value, symbol, span, e)
            return
        if check is not None and await self._lost_trades(live, check):
            self.on_lost(live)

    async def _lost_trades(self, live: LiveSymbol, check: Queued) -> bool:
        """Whether REST shows volume in the unproven minutes that the feed did not deliver."""
        for lo, hi in check.unproven:
            stored = await self.store.read(
                live.venue, live.info.symbol, M1, start_ms=lo, end_ms=hi - 1
            )
            for minute, volume in zip(stored.open_time_ms, stored.volume, strict=True):
                mine = check.seen.get(minute)
                if volume != (0 if mine is None else mine.volume):
                    return True
        return False
