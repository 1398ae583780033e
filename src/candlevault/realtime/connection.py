"""One venue WebSocket carrying the trades (and 1m klines) of many symbols, until it ends.

`StreamConnection.run()` connects, subscribes, reads and parses (`wire`), and hands the
trades on through `on_trades(symbol, trades)`, the venue's own 1m candles through
`on_klines(symbol, candles)` and the exchange time of every event through
`on_alive(event_ms)`; it never reconnects (that is the supervisor's job) and ends by
raising `StreamEnded`: the venue closed it, the socket broke, or nothing at all arrived
for `silence_s` wall seconds.

That last is a watchdog on the *socket*, as cryptofeed keeps one: a half-open TCP
connection or a stalled server sends nothing and raises no error. Any frame counts,
pings and pongs included, and the connection pings the venue itself every
`ping_every_s` (a ping frame on Binance, `{"op":"ping"}` on Bybit, as each asks), so a
healthy socket always answers within the silence allowed, however quiet its symbols: a
symbol that does not trade is not a broken feed. A feed that stays connected but stops
delivering market data is caught one level up, where the exchange's own klines show
trades the stream never sent (`realtime.live`).

Subscribing: Binance gets its initial streams in the URL (`/stream?streams=a@aggTrade/..`,
the combined form, so every frame names its stream; up to `URL_CHARS` of them) and the
rest, and later ones, with `SUBSCRIBE`; Bybit gets `{"op":"subscribe","args":[..]}` (at
most 10 topics a request, Bybit's spot limit). Control messages are paced to
`CONTROL_PER_S` a second, under Binance's 5 incoming messages a second (pings and pongs
count too, and a connection past the limit is cut).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping

import aiohttp
import orjson

from candlevault.domain.candles import Candle
from candlevault.domain.decimals import Precision
from candlevault.domain.errors import ExchangeUnavailable
from candlevault.domain.trades import Trade
from candlevault.domain.venues import Venue
from candlevault.realtime.wire import (
    Control,
    Klines,
    MalformedFrame,
    Message,
    Trades,
    parse_binance,
    parse_bybit,
)

log = logging.getLogger(__name__)

OnTrades = Callable[[str, list[Trade]], None]
OnKlines = Callable[[str, list[Candle]], None]
OnAlive = Callable[[int], None]
BYBIT_TOPICS_PER_REQUEST = 10
BINANCE_STREAMS_PER_REQUEST = 200
URL_CHARS = 4000  # initial Binance streams in the URL, the rest by SUBSCRIBE
CONTROL_PER_S = 3  # under Binance's 5 incoming messages a second, pings and pongs included


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
        on_klines: OnKlines | None = None,
        silence_s: float = 30.0,
        ping_every_s: float = 20.0,
        wall: Callable[[], float] = time.time,
    ) -> None:
        """`on_klines` given: follow each symbol's 1m kline stream too."""
        self.venue = venue
        self.url = url
        self.silence_s = silence_s
        self.ping_every_s = ping_every_s
        self.connected = False
        self.last_message_ms: int | None = None  # wall time of the latest text frame
        self.last_event_ms: int | None = None  # exchange time of the latest event
        self.messages = 0
        self.pongs = 0  # pong frames: the answers to our pings (Binance)
        self.malformed = 0
        self.refusals: list[Control] = []
        self._session = session
        self._symbols = dict(symbols)
        self._on_trades = on_trades
        self._on_alive = on_alive
        self._on_klines = on_klines
        self._wall = wall
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._next_id = 0
        self._binance = venue.exchange == "binance"
        self._sent: deque[float] = deque(maxlen=CONTROL_PER_S)  # loop times of the last sends
        self._sending = asyncio.Lock()

    @property
    def symbols(self) -> list[str]:
        """Return the symbols this connection follows (or will, once connected)."""
        return list(self._symbols)

    async def run(self) -> None:
        """Connect and deliver trades until the connection ends; raise `StreamEnded`."""
        in_url = self._url_symbols()
        try:
            ws = await self._session.ws_connect(
                self._connect_url(in_url), autoping=False, heartbeat=None, max_msg_size=1 << 22
            )
        except (aiohttp.ClientError, OSError, TimeoutError) as e:
            raise StreamEnded(f"{self.venue} stream: connect failed: {e!r}") from e
        self._ws = ws
        self.connected = True
        pinger = asyncio.create_task(self._ping(ws))
        rest = [s for s in self._symbols if s not in in_url]
        subscriber = asyncio.create_task(self._subscribe_rest(ws, rest))
        try:
            await self._read(ws)
        finally:
            self.connected = False
            self._ws = None
            for task in (pinger, subscriber):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                    await task
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
                    watchdog.reschedule(loop.time() + self.silence_s)
                    if msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                        self._handle(msg.data)
                    elif msg.type is aiohttp.WSMsgType.PING:
                        with contextlib.suppress(ConnectionError):
                            await ws.pong(msg.data)
                    elif msg.type is aiohttp.WSMsgType.PONG:
                        self.pongs += 1
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
        elif isinstance(message, Klines) and self._on_klines is not None:
            self._on_klines(message.symbol, message.candles)
        if event_ms is not None:
            if self.last_event_ms is None or event_ms > self.last_event_ms:
                self.last_event_ms = event_ms
            self._on_alive(event_ms)

    # -- writing ------------------------------------------------------------------------

    def _streams(self, symbol: str) -> list[str]:
        """The venue's stream names (Binance) or topics (Bybit) of one symbol."""
        klines = self._on_klines is not None
        if self._binance:
            low = symbol.lower()
            return [f"{low}@aggTrade", f"{low}@kline_1m"] if klines else [f"{low}@aggTrade"]
        trades = f"publicTrade.{symbol}"
        return [trades, f"kline.1.{symbol}"] if klines else [trades]

    def _url_symbols(self) -> set[str]:
        """The symbols whose Binance streams go in the connect URL (Bybit: none)."""
        chosen: set[str] = set()
        if not self._binance:
            return chosen
        length = 0
        for symbol in self._symbols:
            length += sum(len(s) + 1 for s in self._streams(symbol))
            if length > URL_CHARS:
                break
            chosen.add(symbol)
        return chosen

    def _connect_url(self, symbols: set[str]) -> str:
        if not self._binance:
            return self.url
        streams = "/".join(n for s in self._symbols if s in symbols for n in self._streams(s))
        return f"{self.url}/stream?streams={streams}" if streams else f"{self.url}/stream"

    async def _subscribe_rest(
        self, ws: aiohttp.ClientWebSocketResponse, symbols: list[str]
    ) -> None:
        """Subscribe what the URL did not hold (a socket that broke meanwhile ends `run`)."""
        with contextlib.suppress(ConnectionError, aiohttp.ClientError):
            await self._send_subscribe(ws, symbols, "subscribe")

    async def _send_subscribe(
        self, ws: aiohttp.ClientWebSocketResponse, symbols: list[str], op: str
    ) -> None:
        for request in self._requests(symbols, op):
            await self._send(ws, request.decode())

    async def _send(self, ws: aiohttp.ClientWebSocketResponse, text: str | None) -> None:
        """Send a control message (or a ping frame: None), at most `CONTROL_PER_S` a second."""
        async with self._sending:
            loop = asyncio.get_running_loop()
            if len(self._sent) == CONTROL_PER_S:
                await asyncio.sleep(max(0.0, self._sent[0] + 1.0 - loop.time()))
            self._sent.append(loop.time())
            if text is None:
                await ws.ping()
            else:
                await ws.send_str(text)

    def _requests(self, symbols: list[str], op: str) -> Iterator[bytes]:
        names = [n for s in symbols for n in self._streams(s)]
        per = BINANCE_STREAMS_PER_REQUEST if self._binance else BYBIT_TOPICS_PER_REQUEST
        for i in range(0, len(names), per):
            chunk = names[i : i + per]
            self._next_id += 1
            if self._binance:
                yield orjson.dumps({"method": op.upper(), "params": chunk, "id": self._next_id})
            else:
                yield orjson.dumps({"op": op, "args": chunk, "req_id": str(self._next_id)})

    async def _ping(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Ping the venue: its answer keeps the watchdog fed while no symbol trades."""
        while not ws.closed:
            await asyncio.sleep(self.ping_every_s)
            with contextlib.suppress(ConnectionError, aiohttp.ClientError):
                await self._send(ws, None if self._binance else '{"op":"ping"}')


_CLOSING = (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED)
