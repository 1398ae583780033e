"""One venue WebSocket carrying the trades of many symbols, until it ends.

`StreamConnection.run()` connects, subscribes, reads and parses (`wire`), and hands the
trades on through `on_trades(symbol, trades)` and `on_alive(event_ms)`; it never
reconnects (that is the supervisor's job) and ends by raising `StreamEnded`: the venue
closed it, the socket broke, or nothing arrived for `silence_s` wall seconds. That last
is a watchdog, as cryptofeed keeps one: a half-open TCP connection or a stalled venue
sends nothing and raises no error, so a feed that is quiet for too long is closed and
treated as lost. Quiet here means no text frame: Binance's pings are control frames that
aiohttp answers (autoping) and do not count, since they prove the socket, not the feed.
An illiquid symbol may be quiet for longer than 10 s; give such a connection a longer
`silence_s`.

Subscribing: Binance gets its initial symbols in the URL (`/stream?streams=a@aggTrade/..`,
the combined form, so every frame names its stream) and later ones with `SUBSCRIBE`;
Bybit gets `{"op":"subscribe","args":["publicTrade.X",..]}` (at most 10 topics a request,
Bybit's spot limit) and a `{"op":"ping"}` every `ping_every_s` (20 s, as Bybit asks).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Mapping

import aiohttp
import orjson

from candlevault.domain.decimals import Precision
from candlevault.domain.errors import ExchangeUnavailable
from candlevault.domain.trades import Trade
from candlevault.domain.venues import Venue
from candlevault.realtime.wire import (
    Control,
    MalformedFrame,
    Message,
    Trades,
    parse_binance,
    parse_bybit,
)

log = logging.getLogger(__name__)

OnTrades = Callable[[str, list[Trade]], None]
OnAlive = Callable[[int], None]
BYBIT_TOPICS_PER_REQUEST = 10


class StreamEnded(ExchangeUnavailable):
    """The connection is over: closed by the venue, broken, or silent (`silent`)."""

    def __init__(self, message: str, *, silent: bool = False) -> None:
        self.silent = silent
        super().__init__(message)


class StreamConnection:
    """One connection to one venue's trade streams; `run()` once, then discard it."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        venue: Venue,
        url: str,
        symbols: Mapping[str, Precision],
        *,
        on_trades: OnTrades,
        on_alive: OnAlive,
        silence_s: float = 10.0,
        ping_every_s: float = 20.0,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.venue = venue
        self.url = url
        self.silence_s = silence_s
        self.ping_every_s = ping_every_s
        self.connected = False
        self.last_message_ms: int | None = None  # wall time of the latest text frame
        self.last_event_ms: int | None = None  # exchange time of the latest event
        self.messages = 0
        self.malformed = 0
        self.refusals: list[Control] = []
        self._session = session
        self._symbols = dict(symbols)
        self._on_trades = on_trades
        self._on_alive = on_alive
        self._wall = wall
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._next_id = 0
        self._binance = venue.exchange == "binance"

    @property
    def symbols(self) -> list[str]:
        """Return the symbols this connection follows (or will, once connected)."""
        return list(self._symbols)

    async def run(self) -> None:
        """Connect and deliver trades until the connection ends; raise `StreamEnded`."""
        try:
            ws = await self._session.ws_connect(
                self._connect_url(), autoping=True, heartbeat=None, max_msg_size=1 << 22
            )
        except (aiohttp.ClientError, OSError, TimeoutError) as e:
            raise StreamEnded(f"{self.venue} stream: connect failed: {e!r}") from e
        self._ws = ws
        self.connected = True
        pinger = asyncio.create_task(self._ping(ws)) if not self._binance else None
        try:
            if not self._binance:
                await self._send_subscribe(ws, list(self._symbols), "subscribe")
            await self._read(ws)
        finally:
            self.connected = False
            self._ws = None
            if pinger is not None:
                pinger.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pinger
            await ws.close()

    async def close(self) -> None:
        """Close the socket; `run()` then ends with `StreamEnded`."""
        if self._ws is not None:
            await self._ws.close()

    async def subscribe(self, symbol: str, precision: Precision) -> None:
        """Follow `symbol` from now on (at once if connected, else when `run()` connects)."""
        new = symbol not in self._symbols
        self._symbols[symbol] = precision
        if new and self._ws is not None:
            await self._send_subscribe(self._ws, [symbol], "subscribe")

    async def unsubscribe(self, symbol: str) -> None:
        """Stop following `symbol`; trades still in flight for it are dropped."""
        if self._symbols.pop(symbol, None) is not None and self._ws is not None:
            await self._send_subscribe(self._ws, [symbol], "unsubscribe")

    # -- reading ------------------------------------------------------------------------

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout_at(loop.time() + self.silence_s) as watchdog:
                while True:
                    msg = await ws.receive()
                    if msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                        watchdog.reschedule(loop.time() + self.silence_s)
                        self._handle(msg.data)
                    elif msg.type in _CLOSING:
                        code, reason = ws.close_code, msg.extra
                        raise StreamEnded(f"{self.venue} stream closed ({code}, {reason!r})")
                    elif msg.type is aiohttp.WSMsgType.ERROR:
                        raise StreamEnded(f"{self.venue} stream broke: {ws.exception()!r}")
        except TimeoutError as e:
            raise StreamEnded(
                f"{self.venue} stream silent for {self.silence_s:g} s", silent=True
            ) from e

    def _handle(self, data: str | bytes) -> None:
        self.messages += 1
        self.last_message_ms = int(self._wall() * 1000)
        parse = parse_binance if self._binance else parse_bybit
        try:
            message = parse(data, self._symbols.get)
        except MalformedFrame as e:
            self.malformed += 1
            log.warning("%s: skipped a malformed frame: %s", self.venue, e)
            return
        self._dispatch(message)

    def _dispatch(self, message: Message) -> None:
        if isinstance(message, Control):
            if not message.ok:
                self.refusals.append(message)
                log.warning("%s stream refused a request: %s", self.venue, message)
            return
        event_ms = message.event_ms
        if isinstance(message, Trades) and message.trades:
            self._on_trades(message.symbol, message.trades)
        if event_ms is not None:
            if self.last_event_ms is None or event_ms > self.last_event_ms:
                self.last_event_ms = event_ms
            self._on_alive(event_ms)

    # -- writing ------------------------------------------------------------------------

    def _connect_url(self) -> str:
        if not self._binance:
            return self.url
        streams = "/".join(_binance_stream(s) for s in self._symbols)
        return f"{self.url}/stream?streams={streams}" if streams else f"{self.url}/stream"

    async def _send_subscribe(
        self, ws: aiohttp.ClientWebSocketResponse, symbols: list[str], op: str
    ) -> None:
        for request in self._requests(symbols, op):
            await ws.send_str(request.decode())

    def _requests(self, symbols: list[str], op: str) -> Iterator[bytes]:
        if self._binance:
            if symbols:
                self._next_id += 1
                params = [_binance_stream(s) for s in symbols]
                yield orjson.dumps({"method": op.upper(), "params": params, "id": self._next_id})
            return
        for i in range(0, len(symbols), BYBIT_TOPICS_PER_REQUEST):
            chunk = symbols[i : i + BYBIT_TOPICS_PER_REQUEST]
            self._next_id += 1
            args = [f"publicTrade.{s}" for s in chunk]
            yield orjson.dumps({"op": op, "args": args, "req_id": str(self._next_id)})

    async def _ping(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        while not ws.closed:
            await asyncio.sleep(self.ping_every_s)
            with contextlib.suppress(ConnectionError, aiohttp.ClientError):
                await ws.send_str('{"op":"ping"}')


_CLOSING = (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED)


def _binance_stream(symbol: str) -> str:
    return f"{symbol.lower()}@aggTrade"
