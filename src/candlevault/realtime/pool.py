"""A venue's streamed symbols over as many connections as the venue's limits need.

Binance lets one connection listen to at most 1024 streams (binance-spot-api-docs
web-socket-streams.md, "WebSocket Limits"; the USD-M page says the same), and each
symbol takes two (`@aggTrade`, `@kline_1m`); Bybit caps a public connection's
subscription arguments at 21,000 characters (v5 docs, "connect": about 800 topics), so
500 topics a connection leaves room. `VenueStreams` fills connections in order: a new
symbol joins the first with room, and a new connection (its own `StreamSupervisor`,
with its own reconnects and gaps) opens when none has. Each supervisor is a feed of its
own for `LiveCandles`: a drop on one connection repairs only that connection's symbols.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from candlevault.domain.decimals import Precision
from candlevault.domain.venues import Venue
from candlevault.realtime.supervisor import StreamHealth, StreamSupervisor

MAX_STREAMS = {
    Venue.BINANCE: 1024,
    Venue.BINANCE_USDM: 1024,
    Venue.BYBIT_SPOT: 500,
    Venue.BYBIT_LINEAR: 500,
}
NewSupervisor = Callable[[dict[str, Precision]], StreamSupervisor]
Spawn = Callable[[Coroutine[Any, Any, None]], object]


class VenueStreams:
    """One venue's supervisors, each holding at most `per_connection` symbols."""

    def __init__(self, venue: Venue, per_connection: int, new: NewSupervisor, spawn: Spawn) -> None:
        if per_connection < 1:
            raise ValueError("a connection must hold at least one symbol")
        self.venue = venue
        self.per_connection = per_connection
        self._new = new
        self._spawn = spawn
        self.supervisors: list[StreamSupervisor] = []

    def plan(self, symbols: dict[str, Precision]) -> list[StreamSupervisor]:
        """Create the supervisors for `symbols` (not started: `start` runs them)."""
        items = list(symbols.items())
        for i in range(0, len(items), self.per_connection):
            self.supervisors.append(self._new(dict(items[i : i + self.per_connection])))
        return list(self.supervisors)

    def start(self) -> None:
        """Run every planned supervisor."""
        for supervisor in self.supervisors:
            self._spawn(supervisor.run())

    def place(self, symbol: str) -> StreamSupervisor | None:
        """The supervisor following `symbol`, if any."""
        return next((s for s in self.supervisors if symbol in s.symbols), None)

    def room(self) -> StreamSupervisor | None:
        """The first supervisor with room for one more symbol, if any."""
        return next((s for s in self.supervisors if len(s.symbols) < self.per_connection), None)

    async def subscribe(self, symbol: str, precision: Precision) -> StreamSupervisor:
        """Follow `symbol` on the first connection with room, or on a new one."""
        found = self.place(symbol) or self.room()
        if found is not None:
            await found.subscribe(symbol, precision)
            return found
        supervisor = self._new({symbol: precision})
        self.supervisors.append(supervisor)
        self._spawn(supervisor.run())
        return supervisor

    async def unsubscribe(self, symbol: str) -> None:
        """Stop following `symbol` (its connection stays, possibly empty, for the next)."""
        found = self.place(symbol)
        if found is not None:
            await found.unsubscribe(symbol)

    def health(self) -> StreamHealth:
        """The venue's connections together: connected when all are, counts summed."""
        healths = [s.health() for s in self.supervisors]
        ages = [h.last_message_age_s for h in healths if h.last_message_age_s is not None]
        events = [h.last_event_ms for h in healths if h.last_event_ms is not None]
        return StreamHealth(
            venue=self.venue.value,
            connected=bool(healths) and all(h.connected for h in healths),
            last_message_age_s=max(ages) if ages else None,
            last_event_ms=min(events) if events else None,
            reconnects=sum(h.reconnects for h in healths),
            rotations=sum(h.rotations for h in healths),
            silences=sum(h.silences for h in healths),
            malformed=sum(h.malformed for h in healths),
            gaps=sum(h.gaps for h in healths),
            duplicates=sum(h.duplicates for h in healths),
        )
