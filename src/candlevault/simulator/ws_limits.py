"""Binance's WebSocket limits on the simulator: messages a second, streams, connections.

binance-spot-api-docs `web-socket-streams.md`, "WebSocket Limits" (the USD-M
"Websocket Market Streams" page says the same with 10 messages a second and no
connection limit):

- "WebSocket connections have a limit of 5 incoming messages per second. A message is
  considered: A PING frame, A PONG frame, A JSON controlled message (e.g. subscribe,
  unsubscribe)." and "A connection that goes beyond the limit will be disconnected; IPs
  that are repeatedly disconnected may be banned." The window here is rolling, in wall
  time: the message that would be the sixth within any one second closes the connection
  unanswered, with code 1008 and "Too many requests". Binance documents neither the code
  nor the reason; both are what clients log when Binance cuts them (binance-connector-go
  issue #90 "close 1008 (policy violation): Too many requests", binance-connector-js
  issue #530, nautilus_trader issue #5012). Text frames count, whatever they hold; no
  ban follows here.
- "A single connection can listen to a maximum of 1024 streams." (USD-M too). What
  Binance answers past it is not documented; see `ws_binance` for the simulator's choice.
- "There is a limit of 300 connections per attempt every 5 minutes per IP." (spot only).
  The answer is not documented either: here the handshake is refused with HTTP 429 and
  `{"code":-1003,"msg":..}` (Binance's REST code for too many requests), counted per
  venue and client IP over a rolling window; refused attempts do not count.

`WsLimits` holds one venue's values (`None`: no such limit); `WsTimings.limits` maps a
venue to them, so tests shrink them like the heartbeat timings. A venue not in the
mapping (Bybit, for now) has no limits.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

CLOSE_TOO_MANY_REQUESTS = 1008  # policy violation
TOO_MANY_REQUESTS = b"Too many requests"
CODE_TOO_MANY_REQUESTS = -1003


@dataclass(frozen=True)
class WsLimits:
    """One venue's per-connection limits (Binance spot's by default); wall seconds."""

    messages: int | None = 5  # incoming messages (text, ping, pong) in any `messages_per_s`
    messages_per_s: float = 1.0
    streams: int | None = 1024  # streams one connection may listen to
    connections: int | None = 300  # accepted connections per IP in any `connections_per_s`
    connections_per_s: float = 300.0


BINANCE_SPOT_LIMITS = WsLimits()
BINANCE_USDM_LIMITS = WsLimits(messages=10, connections=None)


def venue_limits() -> dict[str, WsLimits]:
    """Return each venue's documented limits, by venue name (`Venue.value`)."""
    return {"binance": BINANCE_SPOT_LIMITS, "binance-usdm": BINANCE_USDM_LIMITS}


class RollingWindow:
    """Admit at most `limit` events in any `span_s` seconds of `wall` time."""

    def __init__(
        self, limit: int, span_s: float, wall: Callable[[], float] = time.monotonic
    ) -> None:
        if limit < 0 or span_s <= 0:
            raise ValueError("limit must be >= 0 and span_s > 0")
        self.limit = limit
        self.span_s = span_s
        self._wall = wall
        self._times: deque[float] = deque()

    def admit(self) -> bool:
        """Record one event now and return True, or return False if it is over the limit."""
        now = self._wall()
        while self._times and self._times[0] <= now - self.span_s:
            self._times.popleft()
        if len(self._times) >= self.limit:
            return False
        self._times.append(now)
        return True


class ConnectionGate:
    """Per (venue, client IP) rolling windows of accepted connections."""

    def __init__(self, wall: Callable[[], float] = time.monotonic) -> None:
        self._wall = wall
        self._windows: dict[tuple[str, str], RollingWindow] = {}

    def admit(self, venue: str, ip: str, limits: WsLimits) -> bool:
        """Count a connection from `ip` to `venue`; False if `limits` refuse it."""
        if limits.connections is None:
            return True
        key = (venue, ip)
        window = self._windows.get(key)
        if window is None:
            window = RollingWindow(limits.connections, limits.connections_per_s, self._wall)
            self._windows[key] = window
        return window.admit()


def message_window(
    limits: WsLimits | None, wall: Callable[[], float] = time.monotonic
) -> RollingWindow | None:
    """Return a fresh incoming-message window for one connection (None: unlimited)."""
    if limits is None or limits.messages is None:
        return None
    return RollingWindow(limits.messages, limits.messages_per_s, wall)
