"""Keep one venue's trade stream up: reconnect, rotate, and say what may have been lost.

`StreamSupervisor.run()` runs `StreamConnection`s one after another until cancelled:

- **Reconnect** after any end (venue close, broken socket, watchdog silence, failed
  connect) after a jittered exponential backoff, capped (`Backoff`); a connection that
  delivered something resets the attempt count, so a long-lived feed that drops once
  reconnects at once-ish, and a venue that is down is not hammered.
- **Rotate** before the venue's 24 h cut (`rotate_after_s`, 23 h): open the new
  connection first, hold its trades until it has caught up with the old one's latest
  event, then close the old and release them. The overlap is de-duplicated per symbol
  by (time, trade id), so a rotation loses and repeats nothing.
- **Reconnect on demand** (`reconnect()`): the owner found the feed losing trades while
  connected (the venue's klines show trades it never sent); counted as a silence.
- **Gaps**: after a connection *ends*, the first event of the next one reports
  `on_gap(start_ms, end_ms)`: the exchange-time span between the last event seen and
  the first after reconnecting, in which trades may have been lost. The owner repairs
  the minutes it touches from REST. A first connection reports no gap (there was no
  feed to lose); a rotation reports none (it overlaps).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import aiohttp
import msgspec

from candlevault.domain.candles import Candle
from candlevault.domain.decimals import Precision
from candlevault.domain.trades import Trade
from candlevault.domain.venues import Venue
from candlevault.realtime.connection import (
    OnAlive,
    OnKlines,
    OnTrades,
    StreamConnection,
    StreamEnded,
)

log = logging.getLogger(__name__)

OnGap = Callable[[int, int], None]
ROTATE_AFTER_S = 23 * 3600.0  # the venues cut a connection at 24 h
ROTATE_RETRY_S = 60.0  # after a failed rotation


@dataclass(frozen=True)
class Backoff:
    """Delay before reconnect attempt n (0-based): half fixed, half random, capped."""

    base_s: float = 0.5
    factor: float = 2.0
    cap_s: float = 30.0

    def delay(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        """Return the wait before attempt `attempt` (equal jitter: d/2 + U(0, d/2))."""
        ceiling = min(self.cap_s, self.base_s * self.factor ** min(attempt, 30))
        return ceiling / 2 + rng() * ceiling / 2


class StreamHealth(msgspec.Struct, frozen=True):
    """A supervisor's state for `/system` and metrics."""

    venue: str
    connected: bool
    last_message_age_s: float | None  # wall seconds since the latest frame
    last_event_ms: int | None  # exchange time of the latest event
    reconnects: int
    rotations: int
    silences: int
    malformed: int
    gaps: int
    duplicates: int  # trades dropped as already delivered (a rotation's overlap)


class _Dedupe:
    """Per symbol, the latest delivered trade time and the ids delivered at that time."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[int, set[int | str]]] = {}
        self.dropped = 0

    def fresh(self, symbol: str, trades: list[Trade]) -> list[Trade]:
        """Return the trades not delivered before (trades come in time order)."""
        last_ms, ids = self._last.get(symbol, (-1, set()))
        out: list[Trade] = []
        for t in trades:
            if t.time_ms < last_ms or (t.time_ms == last_ms and t.trade_id in ids):
                self.dropped += 1
                continue
            if t.time_ms > last_ms:
                last_ms, ids = t.time_ms, set()
            ids.add(t.trade_id)
            out.append(t)
        self._last[symbol] = (last_ms, ids)
        return out


class StreamSupervisor:
    """Own one venue stream: run, reconnect and rotate its connections until cancelled."""

    def __init__(
        self,
        venue: Venue,
        url: str,
        symbols: Mapping[str, Precision],
        *,
        session: aiohttp.ClientSession,
        on_trades: OnTrades,
        on_alive: OnAlive,
        on_gap: OnGap,
        on_klines: OnKlines | None = None,
        backoff: Backoff | None = None,
        silence_s: float = 30.0,
        ping_every_s: float = 20.0,
        rotate_after_s: float = ROTATE_AFTER_S,
        rng: Callable[[], float] = random.random,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.venue = venue
        self.url = url
        self.backoff = backoff or Backoff()
        self.silence_s = silence_s
        self.ping_every_s = ping_every_s
        self.rotate_after_s = rotate_after_s
        self.reconnects = 0
        self.rotations = 0
        self.silences = 0
        self.gaps = 0
        self.last_event_ms: int | None = None
        self._symbols = dict(symbols)
        self._session = session
        self._on_trades = on_trades
        self._on_alive = on_alive
        self._on_gap = on_gap
        self._on_klines = on_klines
        self._rng = rng
        self._wall = wall
        self._dedupe = _Dedupe()
        self._live: StreamConnection | None = None
        self._pending: StreamConnection | None = None  # a rotation's new connection
        self._held: list[tuple[str, list[Trade]] | int] = []  # its output until it goes live
        self._gap_from: int | None = None  # set after a connection ended
        self._malformed_done = 0  # malformed frames of connections already finished
        self._last_message_ms: int | None = None  # wall, of connections already finished

    # -- public -------------------------------------------------------------------------

    async def run(self) -> None:
        """Keep the stream up until cancelled."""
        attempt = 0
        while True:
            conn = self._connection()
            self._live = conn
            try:
                await self._run_rotating(conn)
            except StreamEnded as e:
                self.silences += e.silent
                log.warning("%s: %s", self.venue, e)
            finally:
                if self._live is not None:
                    self._malformed_done += self._live.malformed
                    self._last_message_ms = self._live.last_message_ms or self._last_message_ms
                self._live = None
            if self.last_event_ms is not None:
                self._gap_from = self.last_event_ms
            attempt = 0 if conn.messages else attempt + 1
            await asyncio.sleep(self.backoff.delay(attempt, self._rng))
            self.reconnects += 1

    async def reconnect(self) -> None:
        """Close the live connection (it is losing data): `run` reconnects and the gap
        between its last event and the next connection's first is repaired."""
        live = self._live
        if live is not None:
            self.silences += 1
            await live.close()

    async def subscribe(self, symbol: str, precision: Precision) -> None:
        """Follow `symbol` from now on, on the live connection and every later one."""
        self._symbols[symbol] = precision
        for conn in (self._live, self._pending):
            if conn is not None:
                await conn.subscribe(symbol, precision)

    async def unsubscribe(self, symbol: str) -> None:
        """Stop following `symbol`."""
        self._symbols.pop(symbol, None)
        for conn in (self._live, self._pending):
            if conn is not None:
                await conn.unsubscribe(symbol)

    @property
    def symbols(self) -> list[str]:
        """Return the followed symbols."""
        return list(self._symbols)

    def health(self) -> StreamHealth:
        """Return the connected flag, last message age, reconnect count and the like."""
        live = self._live
        last = live.last_message_ms if live is not None else None
        last = last if last is not None else self._last_message_ms
        age = None if last is None else max(0.0, self._wall() - last / 1000)
        return StreamHealth(
            venue=self.venue.value,
            connected=live is not None and live.connected,
            last_message_age_s=age,
            last_event_ms=self.last_event_ms,
            reconnects=self.reconnects,
            rotations=self.rotations,
            silences=self.silences,
            malformed=self._malformed_done + (live.malformed if live is not None else 0),
            gaps=self.gaps,
            duplicates=self._dedupe.dropped,
        )

    # -- connections --------------------------------------------------------------------

    def _connection(self) -> StreamConnection:
        holder: list[StreamConnection] = []

        def trades(symbol: str, batch: list[Trade]) -> None:
            self._trades(holder[0], symbol, batch)

        def alive(event_ms: int) -> None:
            self._alive(holder[0], event_ms)

        def klines(symbol: str, candles: list[Candle]) -> None:
            if holder[0] is self._live and symbol in self._symbols and self._on_klines:
                self._on_klines(symbol, candles)  # a rotation's overlap: sent twice, harmless

        conn = StreamConnection(
            self._session,
            self.venue,
            self.url,
            self._symbols,
            on_trades=trades,
            on_alive=alive,
            on_klines=klines if self._on_klines is not None else None,
            silence_s=self.silence_s,
            ping_every_s=self.ping_every_s,
            wall=self._wall,
        )
        holder.append(conn)
        return conn

    async def _run_rotating(self, conn: StreamConnection) -> None:
        """Run `conn`, and every `rotate_after_s` hand over to a fresh connection."""
        task = asyncio.create_task(conn.run())
        wait_s = self.rotate_after_s
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=wait_s)
                if task in done:
                    task.result()  # raises StreamEnded
                    raise StreamEnded(f"{self.venue} stream ended")
                successor = await self._rotate(conn, task)
                if successor is None:  # keep the old one and try again soon, before the cut
                    wait_s = min(self.rotate_after_s, ROTATE_RETRY_S)
                else:
                    (conn, task), wait_s = successor, self.rotate_after_s
        finally:
            await _finish(task)

    async def _rotate(
        self, old: StreamConnection, old_task: asyncio.Task[None]
    ) -> tuple[StreamConnection, asyncio.Task[None]] | None:
        """Open a successor, wait until it caught up with `old`, then swap; None on failure."""
        new = self._connection()
        self._pending, self._held = new, []
        new_task = asyncio.create_task(new.run())

        def caught_up() -> bool:
            old_ms, new_ms = old.last_event_ms, new.last_event_ms
            return new_ms is not None and (old_ms is None or new_ms >= old_ms)

        try:
            while not caught_up() and not (new_task.done() or old_task.done()):
                await asyncio.wait({new_task, old_task}, timeout=0.05)
            if not caught_up() or new_task.done():
                await _finish(new_task)
                self._pending = None
                return None
            # The new connection's output stays held while the old one closes: what it
            # delivers meanwhile is released, de-duplicated, once it is the live one.
            await old.close()
            await _finish(old_task)
        except BaseException:
            self._pending = None
            raise
        self._live, self._pending = new, None
        self._malformed_done += old.malformed
        self._last_message_ms = old.last_message_ms or self._last_message_ms
        self.rotations += 1
        held, self._held = self._held, []
        for item in held:
            if isinstance(item, int):
                self._alive(new, item)
            else:
                self._trades(new, *item)
        return new, new_task

    # -- delivery -----------------------------------------------------------------------

    def _trades(self, conn: StreamConnection, symbol: str, batch: list[Trade]) -> None:
        if conn is self._pending:
            self._held.append((symbol, batch))
            return
        if conn is not self._live or symbol not in self._symbols:
            return
        if batch:
            self._gap_check(batch[0].time_ms)
        fresh = self._dedupe.fresh(symbol, batch)
        if fresh:
            self._on_trades(symbol, fresh)

    def _alive(self, conn: StreamConnection, event_ms: int) -> None:
        if conn is self._pending:
            self._held.append(event_ms)
            return
        if conn is not self._live:
            return
        self._gap_check(event_ms)
        if self.last_event_ms is None or event_ms > self.last_event_ms:
            self.last_event_ms = event_ms
            self._on_alive(event_ms)

    def _gap_check(self, event_ms: int) -> None:
        start = self._gap_from
        if start is None:
            return
        self._gap_from = None
        self.gaps += 1
        self._on_gap(start, max(start, event_ms))


async def _finish(task: asyncio.Task[None]) -> None:
    """Cancel `task` if it runs and wait for it, swallowing how it ended."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, StreamEnded):
        await task
