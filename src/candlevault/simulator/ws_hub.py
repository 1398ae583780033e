"""What every simulated WebSocket shares: the live tape, the pump, heartbeats and the ledger.

A venue module (`ws_binance`, `ws_bybit`) supplies a `Session`: it answers the client's
text frames and, asked with the sim time, returns the frames that became due since it
was last asked. `serve` runs one connection around it: a reader, and a pump that asks
the session once per event-loop tick (`TICK_S` of wall time) and sends the batch, so a
clock running 60 times faster than the wall still delivers every trade, in trade-time
order, a few seconds of market at a time.

Live trades are the REST trades: `printed_between` cuts them from the same per-minute
tape (`binance_trades.minute_trades`) with the same rule, "printed once `time_ms <=
now`", so what a client folds from the stream equals the REST klines of those minutes.
A venue gone dark (`/_sim/faults` dark window) sends nothing and skips what printed
meanwhile, like a feed that was down; a clock jump of more than `MAX_CATCH_UP_MS` is not
replayed either (an exchange does not replay history on its stream).

Heartbeats run in *wall* time, as Binance's do: a ping every `ping_every_s` (20 s),
disconnect when no pong came within `pong_within_s` (60 s), and cut every connection
after `max_age_s` (24 h). `WsTimings` lets tests shrink them.

Binance's documented WebSocket limits (ws_limits.py) are enforced here for the venues
`WsTimings.limits` names, in wall time too: an incoming text, ping or pong frame beyond
`messages` in any rolling `messages_per_s` closes the connection with 1008 "Too many
requests" (counted as `rate_limited`), and a handshake beyond `connections` per client
IP in any rolling `connections_per_s` is refused with HTTP 429 (counted as `refused`,
like the venue modules' own refusals, e.g. a URL naming too many streams).

WebSocket faults (`/_sim/faults`, see faults.py) act on market frames only, never on
control replies or heartbeats: `ws_silent` has the pump keep asking the session (so the
cursors move on) and send nothing; `FrameShaper` sends a share of frames twice and holds
a share back until the next market frame (on this connection, maybe a tick later), from
the connection's seeded `WsFaultStream`; `drop_all` is `POST /_sim/ws/drop`, and
`drop_every` runs it every `ws_drop_every_s` wall seconds. The "ws" stats count what
they did: `dropped` connections, `duplicated`, `reordered` and `silenced` frames.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import orjson
from aiohttp import WSMsgType, web

from candlevault.domain.trades import Trade
from candlevault.simulator.binance_trades import AggTrade, aggregate, minute_trades
from candlevault.simulator.faults import FaultSwitchboard, WsFrameFault
from candlevault.simulator.market import MINUTE_MS, VenueMarket
from candlevault.simulator.world import SimWorld
from candlevault.simulator.ws_limits import (
    CLOSE_TOO_MANY_REQUESTS,
    CODE_TOO_MANY_REQUESTS,
    TOO_MANY_REQUESTS,
    ConnectionGate,
    WsLimits,
    message_window,
    venue_limits,
)

TICK_S = 0.02
Frame = tuple[int, bytes]  # (event time, payload), to order one tick's frames
MAX_CATCH_UP_MS = 10 * MINUTE_MS
COUNTED = frozenset({WSMsgType.TEXT, WSMsgType.PING, WSMsgType.PONG})  # by the message limit


@dataclass(frozen=True)
class WsTimings:
    """Heartbeat, lifetime and per-venue limits in wall seconds (Binance's by default).

    `limits` maps a venue name to its `WsLimits`; a venue left out has none.
    """

    ping_every_s: float = 20.0
    pong_within_s: float = 60.0
    max_age_s: float = 24 * 3600.0
    limits: Mapping[str, WsLimits] = field(default_factory=venue_limits, hash=False)


class Session(Protocol):
    """One connection's venue logic."""

    def on_text(self, text: str, now_ms: int) -> list[str]:
        """Answer one text frame from the client; return the replies to send."""
        ...

    def due(self, now_ms: int) -> list[str]:
        """Return the frames due by sim time `now_ms`, in trade-time order."""
        ...


@dataclass
class WsStats:
    """Counts for the "ws" section of `/_sim/stats`, per venue."""

    connections: Counter[str] = field(default_factory=Counter)
    open: Counter[str] = field(default_factory=Counter)
    messages: Counter[str] = field(default_factory=Counter)
    received: Counter[str] = field(default_factory=Counter)
    pings: Counter[str] = field(default_factory=Counter)
    disconnects: Counter[str] = field(default_factory=Counter)
    pong_timeouts: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)
    duplicated: Counter[str] = field(default_factory=Counter)
    reordered: Counter[str] = field(default_factory=Counter)
    silenced: Counter[str] = field(default_factory=Counter)
    rate_limited: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)

    def reset(self) -> None:
        """Clear every count but the open connections (a gauge, not a count)."""
        open_now = self.open
        self.__init__()  # type: ignore[misc]
        self.open = open_now

    def snapshot(self) -> dict[str, object]:
        """Return the counts as JSON-ready dicts."""
        names = (
            "connections", "open", "messages", "received", "pings", "pong_timeouts",
            "disconnects", "dropped", "duplicated", "reordered", "silenced",
            "rate_limited", "refused",
        )  # fmt: skip
        return {name: dict(sorted(getattr(self, name).items())) for name in names}


class WsHub:
    """Every open simulated WebSocket, its timings and counts."""

    def __init__(self, timings: WsTimings | None = None) -> None:
        self.timings = timings or WsTimings()
        self.stats = WsStats()
        self._open: dict[web.WebSocketResponse, str] = {}
        self._gate = ConnectionGate()

    def limits(self, venue: str) -> WsLimits | None:
        """Return the limits enforced on `venue`'s connections (None: none)."""
        return self.timings.limits.get(venue)

    def refuse(self, venue: str, status: int, code: int, msg: str) -> web.Response:
        """Count a refused handshake and return its HTTP answer, `{"code":..,"msg":..}`."""
        self.stats.refused[venue] += 1
        body = orjson.dumps({"code": code, "msg": msg})
        return web.Response(status=status, body=body, content_type="application/json")

    async def drop_all(self, message: bytes = b"simulated drop") -> int:
        """Close every open connection now (code 1001, going away); return how many."""
        sockets = [(ws, venue) for ws, venue in self._open.items() if not ws.closed]
        for _, venue in sockets:
            self.stats.dropped[venue] += 1
        await asyncio.gather(*(ws.close(code=1001, message=message) for ws, _ in sockets))
        return len(sockets)

    async def drop_every(self, every_s: Callable[[], float], poll_s: float = 0.05) -> None:
        """Run `drop_all` every `every_s()` wall seconds (0: never) until cancelled.

        The period is read again at each poll; a new period counts from when it was seen.
        """
        period, last = 0.0, time.monotonic()
        while True:
            left = last + period - time.monotonic() if period > 0 else poll_s
            await asyncio.sleep(max(0.0, min(poll_s, left)))
            current, moment = every_s(), time.monotonic()
            if current != period:
                period, last = current, moment
            elif period > 0 and moment - last >= period:
                last = moment
                await self.drop_all(b"simulated periodic drop")

    async def serve(
        self,
        request: web.Request,
        venue: str,
        session: Session,
        now: _Now,
        faults: FaultSwitchboard,
    ) -> web.StreamResponse:
        """Run one connection until either side closes it (or refuse it: HTTP 429)."""
        limits = self.limits(venue)
        if limits is not None and not self._gate.admit(venue, request.remote or "", limits):
            msg = (
                f"Too many connections; at most {limits.connections} "
                f"every {limits.connections_per_s:g} s per IP"
            )
            return self.refuse(venue, 429, CODE_TOO_MANY_REQUESTS, msg)
        ws = web.WebSocketResponse(autoping=False, max_msg_size=1 << 20)
        await ws.prepare(request)
        pongs = [time.monotonic()]  # the last pong's wall time, shared with the heartbeat
        self._open[ws] = venue
        self.stats.connections[venue] += 1
        self.stats.open[venue] += 1
        try:
            async with asyncio.TaskGroup() as tasks:
                pump = tasks.create_task(self._pump(ws, venue, session, now, faults))
                beat = tasks.create_task(self._heartbeat(ws, venue, pongs))
                await self._read(ws, venue, session, now, pongs)
                pump.cancel()
                beat.cancel()
        finally:
            self._open.pop(ws, None)
            self.stats.open[venue] -= 1
            self.stats.disconnects[venue] += 1
        return ws

    async def _read(
        self,
        ws: web.WebSocketResponse,
        venue: str,
        session: Session,
        now: _Now,
        pongs: list[float],
    ) -> None:
        window = message_window(self.limits(venue))
        async for msg in ws:
            if window is not None and msg.type in COUNTED and not window.admit():
                self.stats.rate_limited[venue] += 1
                await ws.close(code=CLOSE_TOO_MANY_REQUESTS, message=TOO_MANY_REQUESTS)
                return
            if msg.type is WSMsgType.TEXT:
                self.stats.received[venue] += 1
                for reply in session.on_text(msg.data, now()):
                    await ws.send_str(reply)
            elif msg.type is WSMsgType.PING:
                await ws.pong(msg.data)
            elif msg.type is WSMsgType.PONG:
                pongs[0] = time.monotonic()

    async def _pump(
        self,
        ws: web.WebSocketResponse,
        venue: str,
        session: Session,
        now: _Now,
        faults: FaultSwitchboard,
    ) -> None:
        shaper = FrameShaper(faults.ws_stream(venue).next)
        stats = self.stats
        while not ws.closed:
            frames = session.due(now())
            if faults.settings.ws_silent:
                _count(stats.silenced, venue, len(frames) + shaper.discard())
                frames = []
            else:
                frames = shaper.shape(frames)
                _count(stats.duplicated, venue, shaper.duplicated)
                _count(stats.reordered, venue, shaper.reordered)
                shaper.duplicated = shaper.reordered = 0
            for frame in frames:
                await ws.send_str(frame)
            stats.messages[venue] += len(frames)
            await asyncio.sleep(TICK_S)

    async def _heartbeat(self, ws: web.WebSocketResponse, venue: str, pongs: list[float]) -> None:
        t = self.timings
        started = time.monotonic()
        while not ws.closed:
            left = started + t.max_age_s - time.monotonic()
            await asyncio.sleep(max(0.0, min(t.ping_every_s, left)))
            moment = time.monotonic()
            if moment - started >= t.max_age_s:
                await ws.close(code=1000, message=b"connection lifetime exceeded")
            elif moment - pongs[0] > t.pong_within_s:
                self.stats.pong_timeouts[venue] += 1
                await ws.close(code=1000, message=b"no pong")
            else:
                await ws.ping(str(int(moment * 1000)).encode())
                self.stats.pings[venue] += 1


class FrameShaper:
    """Apply one connection's duplicate/reorder decisions to its market frames.

    Each frame takes one decision, in order. A frame to duplicate is sent twice in a
    row; a frame to reorder is held back and sent right after the next frame (which then
    takes no reorder decision of its own), even when that comes in a later batch.
    `duplicated` and `reordered` count what was done since the caller last cleared them.
    """

    def __init__(self, decide: Callable[[], WsFrameFault]) -> None:
        self._decide = decide
        self._held: tuple[str, bool] | None = None  # (frame, duplicate it)
        self.duplicated = 0
        self.reordered = 0

    def shape(self, frames: list[str]) -> list[str]:
        """Return what to send for `frames`, the frame held from before included."""
        out: list[str] = []
        for frame in frames:
            fault = self._decide()
            if self._held is not None:
                self._emit(out, frame, fault.duplicate)
                self._emit(out, *self._held)
                self._held = None
                self.reordered += 1
            elif fault.reorder:
                self._held = (frame, fault.duplicate)
            else:
                self._emit(out, frame, fault.duplicate)
        return out

    def discard(self) -> int:
        """Forget the frame held back, if any; return how many were forgotten (0 or 1)."""
        held, self._held = self._held, None
        return 0 if held is None else 1

    def _emit(self, out: list[str], frame: str, duplicate: bool) -> None:
        out.append(frame)
        if duplicate:
            out.append(frame)
            self.duplicated += 1


def _count(counter: Counter[str], venue: str, n: int) -> None:
    if n:  # a venue appears in a count once something happened
        counter[venue] += n


class _Now(Protocol):
    def __call__(self) -> int: ...


def printed_between(market: VenueMarket, after_ms: int, upto_ms: int) -> list[Trade]:
    """Return the trades with `after_ms < time_ms <= upto_ms`, in exchange order."""
    out: list[Trade] = []
    minute = max(after_ms + 1 - (after_ms + 1) % MINUTE_MS, market.listing.listed_ms)
    while minute <= upto_ms:
        out.extend(t for t in minute_trades(market, minute) if after_ms < t.time_ms <= upto_ms)
        minute += MINUTE_MS
    return out


def aggs_between(market: VenueMarket, after_ms: int, upto_ms: int) -> list[AggTrade]:
    """Return the aggTrades whose last trade printed in (after_ms, upto_ms], in id order."""
    out: list[AggTrade] = []
    minute = max(after_ms + 1 - (after_ms + 1) % MINUTE_MS, market.listing.listed_ms)
    while minute <= upto_ms:
        out.extend(
            a for a in aggregate(minute_trades(market, minute)) if after_ms < a.time_ms <= upto_ms
        )
        minute += MINUTE_MS
    return out


def catch_up_from(cursor_ms: int, now_ms: int) -> int:
    """Return where to read on from: the cursor, unless the clock jumped (either way)."""
    if now_ms < cursor_ms or now_ms - cursor_ms > MAX_CATCH_UP_MS:
        return now_ms
    return cursor_ms


def in_order(world: SimWorld, venue: str, frames: list[Frame]) -> list[str]:
    """Return a tick's frames in event-time order, less those stamped in a dark window
    of `venue` (what printed while the feed was down is lost to the stream)."""
    faults = world.faults
    if any(w.venue == venue for w in faults.settings.dark):
        frames = [frame for frame in frames if not faults.is_dark(venue, frame[0])]
    frames.sort(key=lambda frame: frame[0])
    return [payload.decode() for _, payload in frames]
