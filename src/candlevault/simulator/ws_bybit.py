"""Bybit v5 public streams on the simulator: `/v5/public/spot` and `/v5/public/linear`.

Payloads follow the 2026 mainnet recording (../shared/fixtures/bybit/ws/), key order
included, which differs by category:

- `publicTrade.<SYMBOL>`: linear `{"topic":..,"type":"snapshot","ts":..,"data":[{"T","s",
  "S","v","p","L","i","BT","RPI","seq"}]}` (prices at the contract's scale, `i` a UUID,
  `L` the tick direction); spot `{"topic":..,"ts":..,"type":"snapshot","data":[{"i","T",
  "p","v","S","seq","s","BT","RPI"}]}` (no `L`, `i` numeric, no trailing zeros). One frame
  per taker time `T`, as the venue groups them; execIds and `seq` are the REST ones.
- `kline.<interval>.<SYMBOL>`: `{"start","end","interval","open","close","high","low",
  "volume","turnover","confirm","timestamp"}`, an update at most once a second of sim
  time while the candle trades; once it closes, `confirm:true`, and on linear the new
  candle (flat at the close, volume "0", `confirm:false`) in the same frame.

Control: `{"op":"subscribe","args":[..],"req_id":".."}` is acknowledged as recorded
(linear `{"success":true,"ret_msg":"","conn_id":..,"req_id":"","op":"subscribe"}`, spot
`{"success":true,"ret_msg":"subscribe","conn_id":..,"op":"subscribe"}` with `req_id` only
when sent); `{"op":"ping"}` gets `{"success":true,"ret_msg":"pong",...,"op":"ping"}`
(Bybit's docs, docs/v5/ws/connect). A topic on an unlisted symbol is refused with
`"ret_msg":"Invalid symbol :[<topic>]"` and an unknown topic with `"error:handler not
found,topic:<topic>"`: wordings seen in client issue threads, not in this recording.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import orjson
from aiohttp import web

from candlevault.domain.candles import Candle
from candlevault.domain.decimals import format_units
from candlevault.domain.errors import BadValue
from candlevault.domain.timeframes import Timeframe, from_bybit_code
from candlevault.domain.trades import Trade
from candlevault.domain.venues import Venue
from candlevault.simulator.bybit_rest import SEQ_BASE, exec_id
from candlevault.simulator.instruments import Listing
from candlevault.simulator.klines import KlineView
from candlevault.simulator.world import SimWorld
from candlevault.simulator.ws_hub import Frame, WsHub, catch_up_from, in_order, printed_between

KLINE_EVERY_MS = 1000
PATHS = {"/v5/public/spot": Venue.BYBIT_SPOT, "/v5/public/linear": Venue.BYBIT_LINEAR}


@dataclass
class _Topic:
    name: str
    view: KlineView
    tf: Timeframe | None  # None: publicTrade
    cursor_ms: int
    last_price: int | None = None
    last_tick: str = "ZeroPlusTick"
    kline_open: int | None = None
    kline_sent: tuple[int, int] | None = None


class BybitSession:
    """One Bybit public connection: its topics and the frames they owe."""

    def __init__(self, world: SimWorld, venue: Venue) -> None:
        self.world = world
        self.venue = venue
        self.linear = venue is Venue.BYBIT_LINEAR
        self.conn_id = str(uuid.uuid4())
        self.topics: dict[str, _Topic] = {}

    def on_text(self, text: str, now_ms: int) -> list[str]:
        """Answer `subscribe`, `unsubscribe` and `ping`."""
        try:
            request = orjson.loads(text)
        except orjson.JSONDecodeError:
            return [self._ack(False, "error:request not json", None, "")]
        if not isinstance(request, dict):
            return [self._ack(False, "error:request not json", None, "")]
        op, req_id = request.get("op"), request.get("req_id")
        if op == "ping":
            return [self._ack(True, "pong", req_id, "ping")]
        if op not in ("subscribe", "unsubscribe"):
            return [self._ack(False, f"error:unsupported op {op}", req_id, str(op))]
        args = request.get("args")
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            return [self._ack(False, "error:args invalid", req_id, op)]
        if op == "unsubscribe":
            for name in args:
                self.topics.pop(name, None)
            return [self._ack(True, "" if self.linear else op, req_id, op)]
        for name in args:
            problem = self._subscribe(name, now_ms)
            if problem:
                return [self._ack(False, problem, req_id, op)]
        return [self._ack(True, "" if self.linear else op, req_id, op)]

    def _subscribe(self, name: str, now_ms: int) -> str:
        parts = name.split(".")
        tf: Timeframe | None = None
        if len(parts) == 2 and parts[0] == "publicTrade":
            symbol = parts[1]
        elif len(parts) == 3 and parts[0] == "kline":
            symbol = parts[2]
            try:
                tf = from_bybit_code(parts[1])
            except BadValue:
                return f"error:handler not found,topic:{name}"
        else:
            return f"error:handler not found,topic:{name}"
        view = self.world.view(self.venue, symbol)
        if view is None:
            return f"Invalid symbol :[{name}]"
        if name in self.topics:
            return f"error:already subscribed,topic:{name}"
        self.topics[name] = _Topic(name, view, tf, now_ms)
        return ""

    def _ack(self, success: bool, message: str, req_id: object, op: str) -> str:
        body: dict[str, object] = {"success": success, "ret_msg": message, "conn_id": self.conn_id}
        if self.linear or req_id is not None:
            body["req_id"] = "" if req_id is None else req_id
        body["op"] = op
        return orjson.dumps(body).decode()

    def due(self, now_ms: int) -> list[str]:
        """Return the frames of every topic due by `now_ms`, in event-time order."""
        frames: list[Frame] = []
        for topic in list(self.topics.values()):
            start = catch_up_from(topic.cursor_ms, now_ms)
            topic.cursor_ms = now_ms
            if start >= now_ms or self.world.faults.is_dark(self.venue.value, now_ms):
                continue
            if topic.tf is None:
                frames += self._trades(topic, printed_between(topic.view.market, start, now_ms))
            else:
                frames += self._klines(topic, topic.tf, now_ms)
        return in_order(self.world, self.venue.value, frames)

    def _trades(self, topic: _Topic, trades: list[Trade]) -> list[Frame]:
        groups: list[list[Trade]] = []
        for trade in trades:
            if groups and groups[-1][0].time_ms == trade.time_ms:
                groups[-1].append(trade)
            else:
                groups.append([trade])
        listing = topic.view.market.listing
        out: list[Frame] = []
        for group in groups:
            rows = [self._trade_row(topic, listing, t) for t in group]
            t = group[0].time_ms
            if self.linear:
                body = {"topic": topic.name, "type": "snapshot", "ts": t, "data": rows}
            else:
                body = {"topic": topic.name, "ts": t, "type": "snapshot", "data": rows}
            out.append((t, orjson.dumps(body)))
        return out

    def _trade_row(self, topic: _Topic, listing: Listing, trade: Trade) -> dict[str, object]:
        p = listing.precision
        tid = int(trade.trade_id)
        price = format_units(trade.price, p.price, self.linear)
        size = format_units(trade.qty, p.base, self.linear)
        side = "Sell" if trade.buyer_is_maker else "Buy"
        i = exec_id(self.venue, listing.symbol, tid)
        if not self.linear:
            return {
                "i": i, "T": trade.time_ms, "p": price, "v": size, "S": side,
                "seq": SEQ_BASE + tid, "s": listing.symbol, "BT": False, "RPI": False,
            }  # fmt: skip
        topic.last_tick = _tick(topic.last_price, trade.price, topic.last_tick)
        topic.last_price = trade.price
        return {
            "T": trade.time_ms, "s": listing.symbol, "S": side, "v": size, "p": price,
            "L": topic.last_tick, "i": i, "BT": False, "RPI": False, "seq": SEQ_BASE + tid,
        }  # fmt: skip

    def _klines(self, topic: _Topic, tf: Timeframe, now: int) -> list[Frame]:
        view, listed = topic.view, topic.view.market.listing.listed_ms
        current = tf.bucket_open(now, listed)
        previous, topic.kline_open = topic.kline_open, current
        if previous is not None and previous != current:
            topic.kline_sent = None
            closed = view.bucket(tf, previous, now)
            if closed is not None:
                return [self._closing(topic, tf, closed, current)]
        forming = view.bucket(tf, current, now)
        trades = (forming.trades or 0) if forming is not None else 0
        last = topic.kline_sent
        fresh = last is None or (trades != last[1] and now - last[0] >= KLINE_EVERY_MS)
        if forming is None or trades == 0 or not fresh:
            return []
        topic.kline_sent = (now, trades)
        row = self._kline_row(topic, forming, tf, False, now)
        return [(now, self._kline_frame(topic, [row], now))]

    def _closing(self, topic: _Topic, tf: Timeframe, closed: Candle, current: int) -> Frame:
        """The confirmed candle; on linear with the next one, flat at its close."""
        event = closed.close_time_ms + 1
        rows = [self._kline_row(topic, closed, tf, True, event)]
        if self.linear:
            c = closed.close
            end = tf.close_time(current, topic.view.market.listing.listed_ms)
            flat = Candle(current, c, c, c, c, 0, end, 0)
            rows.append(self._kline_row(topic, flat, tf, False, event))
        return (event, self._kline_frame(topic, rows, event))

    def _kline_row(
        self, topic: _Topic, candle: Candle, tf: Timeframe, confirm: bool, ts: int
    ) -> dict[str, object]:
        p = topic.view.market.listing.precision
        return {
            "start": candle.open_time_ms, "end": candle.close_time_ms, "interval": tf.bybit_code,
            "open": format_units(candle.open, p.price, False),
            "close": format_units(candle.close, p.price, False),
            "high": format_units(candle.high, p.price, False),
            "low": format_units(candle.low, p.price, False),
            "volume": format_units(candle.volume, p.base, False),
            "turnover": format_units(candle.quote_volume, p.quote, False),
            "confirm": confirm, "timestamp": ts,
        }  # fmt: skip

    def _kline_frame(self, topic: _Topic, rows: list[dict[str, object]], ts: int) -> bytes:
        if self.linear:
            return orjson.dumps({"topic": topic.name, "data": rows, "ts": ts, "type": "snapshot"})
        return orjson.dumps({"type": "snapshot", "topic": topic.name, "data": rows, "ts": ts})


def _tick(previous: int | None, price: int, last: str) -> str:
    """Return Bybit's tick direction of a trade at `price` after one at `previous`."""
    if previous is None or price == previous:
        return "ZeroPlusTick" if last in ("PlusTick", "ZeroPlusTick") else "ZeroMinusTick"
    return "PlusTick" if price > previous else "MinusTick"


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def routes(world: SimWorld, hub: WsHub) -> list[tuple[str, Handler]]:
    """Return the (path, handler) pairs of the public spot and linear streams."""

    def handler(venue: Venue) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            session = BybitSession(world, venue)
            return await hub.serve(request, venue.value, session, world.now_ms, world.faults)

        return handle

    return [(path, handler(venue)) for path, venue in PATHS.items()]
