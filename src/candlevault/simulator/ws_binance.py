"""Binance market streams on the simulator: spot (`/ws`, `/stream`) and USD-M (`/fstream/...`).

Real hosts differ (stream.binance.com:9443 and fstream.binance.com) but both serve `/ws`
and `/stream`, so on the one simulator port the USD-M streams live under `/fstream`
(`CANDLEVAULT_BINANCE_USDM_WS_URL` ends with it), including the `/market` and `/public`
variants that fstream serves and ccxt uses. Raw streams are `/ws/<stream>` (several
joined by "/"; names that are no stream, as ccxt's `/ws/0`, are ignored), combined ones
`/stream?streams=a/b` and wrap each payload as `{"stream":"<name>","data":{...}}`.

Streams (payloads as in ../shared/fixtures/binance/ws/, key order included):

- `<symbol>@aggTrade`: `{"e":"aggTrade","E":1633998523963,"s":"NKNUSDT","a":15683430,
  "p":"0.35280000","q":"58.00000000","f":19862790,"l":19862790,"T":1633998523963,
  "m":false,"M":true}`; USD-M puts "a" before "s" and has no "M". The aggregates are
  `binance_trades.aggregate`'s, sent once their last trade has printed, as REST serves them.
- `<symbol>@trade` (spot only): `{"e":"trade","E":..,"s":"ETHUSDT","t":705291099,
  "p":"4149.74000000","q":"0.43870000","b":7038593583,"a":7038593613,"T":..,"m":true,
  "M":true}`; the order ids "b"/"a" are derived from the trade id (no order book here).
- `<symbol>@kline_<interval>`: `{"e":"kline","E":..,"s":..,"k":{"t","T","s","i","f","L",
  "o","c","h","l","v","n","x","q","V","Q","B":"0"}}`, an update at most every 2 s of sim
  time while the candle trades (the first only with its first trade), then one with
  `"x":true` once its close time has passed; values are those of the REST klines. A
  candle that never traded gets no event at all, not even the final one: Binance sends a
  candle's first event with its first trade and then "every 2s if there is anything
  new" (../shared/fixtures/README.md, "Binance WebSocket").

Live control (binance-spot-api-docs web-socket-streams.md): `SUBSCRIBE`/`UNSUBSCRIBE`
answer `{"result":null,"id":1}`, `LIST_SUBSCRIPTIONS` `{"result":[...],"id":3}`,
`SET_PROPERTY`/`GET_PROPERTY` the `combined` flag. Refusals use the documented codes
in the wrapper the venue sends (`{"error":{"code":2,"msg":"Invalid request: invalid
stream"},"id":2}`, as logged in ctubio/Krypto-trading-bot issue #1121).

Limits ("WebSocket Limits" in the same page; ws_limits.py, enforced by the hub for the
message rate and the connections): "A single connection can listen to a maximum of 1024
streams" (`WsLimits.streams`, spot and USD-M). Binance documents no answer past it, so
here a `SUBSCRIBE` that would take the connection past the cap is refused whole, in the
documented error wrapper (`{"error":{"code":2,"msg":"Invalid request: too many streams;
a connection can listen to a maximum of 1024"},"id":7}`), and the streams already
subscribed flow on; a URL that names more streams than the cap (counting the names
that are streams, each once) is refused before the upgrade with HTTP 400 and
`{"code":2,"msg":..}` (the `refused` count). With the real cap such a URL is longer than
the ~8000 characters Binance (and aiohttp) accept in a request line anyway.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import orjson
from aiohttp import web

from candlevault.domain.candles import Candle
from candlevault.domain.decimals import format_units
from candlevault.domain.errors import BadValue
from candlevault.domain.timeframes import Timeframe, parse_timeframe
from candlevault.domain.trades import Trade
from candlevault.domain.venues import Venue
from candlevault.simulator.binance_trades import AggTrade
from candlevault.simulator.instruments import Listing
from candlevault.simulator.klines import KlineView
from candlevault.simulator.market import MINUTE_MS, VenueMarket
from candlevault.simulator.path import DAY_MS
from candlevault.simulator.world import SimWorld
from candlevault.simulator.ws_hub import (
    Frame,
    WsHub,
    aggs_between,
    catch_up_from,
    in_order,
    printed_between,
)

USDM_PREFIX = "/fstream"
KLINE_EVERY_MS = 2000
METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY")
ORDER_ID_BASE = 1_000_000_000


@dataclass
class _Stream:
    """One subscribed stream and where its feed stands."""

    name: str
    kind: str  # "aggTrade", "trade" or "kline"
    view: KlineView | None  # None: the symbol is not listed (Binance sends nothing)
    tf: Timeframe | None
    cursor_ms: int
    kline_open: int | None = None
    kline_sent: tuple[int, int] | None = None  # (sim time, trade count) of the last update


class BinanceSession:
    """One Binance stream connection: its subscriptions and the frames they owe."""

    def __init__(
        self, world: SimWorld, venue: Venue, combined: bool, max_streams: int | None = None
    ) -> None:
        self.world = world
        self.venue = venue
        self.combined = combined
        self.max_streams = max_streams  # None: no cap
        self.streams: dict[str, _Stream] = {}

    def subscribe(self, name: str, now_ms: int) -> bool:
        """Subscribe to `name`; False if it is no stream the simulator serves."""
        if name in self.streams:
            return True
        stream = self._parse(name, now_ms)
        if stream is None:
            return False
        self.streams[name] = stream
        return True

    def _parse(self, name: str, now_ms: int) -> _Stream | None:
        symbol, _, kind = name.partition("@")
        if not symbol or symbol != symbol.lower() or not kind:
            return None
        tf: Timeframe | None = None
        if kind.startswith("kline_"):
            try:
                tf = parse_timeframe(kind.removeprefix("kline_"))
            except BadValue:
                return None
            kind = "kline"
        elif kind not in ("aggTrade", "trade") or (
            kind == "trade" and self.venue is not Venue.BINANCE
        ):
            return None
        view = self.world.view(self.venue, symbol.upper())
        return _Stream(name, kind, view, tf, now_ms)

    # -- control messages ---------------------------------------------------------------

    def on_text(self, text: str, now_ms: int) -> list[str]:
        """Answer one control message (binance-spot-api-docs web-socket-streams.md)."""
        try:
            request = orjson.loads(text)
        except orjson.JSONDecodeError:
            return [_error(3, "Invalid JSON: expected value at line 1 column 1", None)]
        if not isinstance(request, dict):
            return [_error(2, "Invalid request: expected an object", None)]
        request_id = request.get("id")
        if not _valid_id(request_id, spot=self.venue is Venue.BINANCE):
            return [_error(2, "Invalid request: request ID must be an unsigned integer", None)]
        method = request.get("method")
        if method is None:
            return [_error(2, "Invalid request: missing field `method`", request_id)]
        if method not in METHODS:
            expected = ", ".join(f"`{m}`" for m in METHODS)
            msg = f"Invalid request: unknown variant `{method}`, expected one of {expected}"
            return [_error(2, msg, request_id)]
        return [self._perform(str(method), request.get("params"), request_id, now_ms)]

    def _perform(self, method: str, params: object, request_id: object, now_ms: int) -> str:
        if method == "LIST_SUBSCRIPTIONS":
            return _result(list(self.streams), request_id)
        if method in ("SET_PROPERTY", "GET_PROPERTY"):
            return self._property(method, params, request_id)
        if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
            return _error(2, "Invalid request: invalid stream", request_id)
        if method == "UNSUBSCRIBE":
            for name in params:
                self.streams.pop(name, None)
            return _result(None, request_id)
        wanted = [name for name in dict.fromkeys(params) if name not in self.streams]
        parsed = [self._parse(name, now_ms) for name in wanted]
        if any(stream is None for stream in parsed):
            return _error(2, "Invalid request: invalid stream", request_id)
        if self.max_streams is not None and len(self.streams) + len(wanted) > self.max_streams:
            return _error(2, too_many_streams(self.max_streams), request_id)
        self.streams.update((s.name, s) for s in parsed if s is not None)
        return _result(None, request_id)

    def _property(self, method: str, params: object, request_id: object) -> str:
        if not isinstance(params, list) or not params or not isinstance(params[0], str):
            return _error(2, "Invalid request: property name must be a string", request_id)
        if params[0] != "combined":
            return _error(0, "Unknown property", request_id)
        if method == "GET_PROPERTY":
            return _result(self.combined, request_id)
        if len(params) != 2 or not isinstance(params[1], bool):
            return _error(1, "Invalid value type: expected Boolean", request_id)
        self.combined = params[1]
        return _result(None, request_id)

    # -- the feed ---------------------------------------------------------------------------

    def due(self, now_ms: int) -> list[str]:
        """Return the frames of every stream due by `now_ms`, in event-time order."""
        faults, venue = self.world.faults, self.venue.value
        frames: list[Frame] = []
        for stream in list(self.streams.values()):
            start = catch_up_from(stream.cursor_ms, now_ms)
            stream.cursor_ms = now_ms
            if stream.view is None or start >= now_ms or faults.is_dark(venue, now_ms):
                continue
            frames.extend(self._frames(stream, stream.view, start, now_ms))
        return in_order(self.world, venue, frames)

    def _frames(self, stream: _Stream, view: KlineView, start: int, now: int) -> list[Frame]:
        market = view.market
        if stream.kind == "aggTrade":
            spot = self.venue is Venue.BINANCE
            aggs = aggs_between(market, start, now)
            return [
                (a.time_ms, self._wrap(stream, agg_event(a, market.listing, spot))) for a in aggs
            ]
        if stream.kind == "trade":
            trades = printed_between(market, start, now)
            return [(t.time_ms, self._wrap(stream, trade_event(t, market.listing))) for t in trades]
        return [(e, self._wrap(stream, body)) for e, body in self._klines(stream, view, now)]

    def _klines(self, stream: _Stream, view: KlineView, now: int) -> list[tuple[int, bytes]]:
        assert stream.tf is not None
        tf, listing = stream.tf, view.market.listing
        current = tf.bucket_open(now, listing.listed_ms)
        out: list[tuple[int, bytes]] = []
        if stream.kline_open is not None and stream.kline_open != current:
            closed = view.bucket(tf, stream.kline_open, now)
            if closed is not None and closed.trades:  # a candle that never traded: no event
                event_ms = closed.close_time_ms + 1
                out.append((event_ms, kline_event(closed, tf, view.market, event_ms, final=True)))
            stream.kline_sent = None
        stream.kline_open = current
        forming = view.bucket(tf, current, now)
        trades = (forming.trades or 0) if forming is not None else 0
        last = stream.kline_sent
        fresh = last is None or (trades != last[1] and now - last[0] >= KLINE_EVERY_MS)
        if forming is not None and trades > 0 and fresh:
            out.append((now, kline_event(forming, tf, view.market, now, final=False)))
            stream.kline_sent = (now, trades)
        return out

    def _wrap(self, stream: _Stream, body: bytes) -> bytes:
        if not self.combined:
            return body
        return b'{"stream":%b,"data":%b}' % (orjson.dumps(stream.name), body)


def too_many_streams(cap: int) -> str:
    """Return the refusal text for going past `cap` streams on one connection."""
    return f"Invalid request: too many streams; a connection can listen to a maximum of {cap}"


def _valid_id(value: object, *, spot: bool) -> bool:
    if isinstance(value, int) and not isinstance(value, bool):
        return value >= 0
    # Spot also takes an alphanumeric string of up to 36 characters, or null.
    return spot and (value is None or (isinstance(value, str) and len(value) <= 36))


def _result(result: object, request_id: object) -> str:
    return orjson.dumps({"result": result, "id": request_id}).decode()


def _error(code: int, msg: str, request_id: object) -> str:
    return orjson.dumps({"error": {"code": code, "msg": msg}, "id": request_id}).decode()


def agg_event(agg: AggTrade, listing: Listing, spot: bool) -> bytes:
    """Render an aggTrade event (spot or USD-M key order)."""
    p = listing.precision
    price = format_units(agg.price, p.price, p.fixed)
    qty = format_units(agg.qty, p.base, p.fixed)
    if spot:
        body: dict[str, object] = {
            "e": "aggTrade", "E": agg.time_ms, "s": listing.symbol, "a": agg.agg_id,
            "p": price, "q": qty, "f": agg.first_id, "l": agg.last_id, "T": agg.time_ms,
            "m": agg.buyer_is_maker, "M": True,
        }  # fmt: skip
    else:
        body = {
            "e": "aggTrade", "E": agg.time_ms, "a": agg.agg_id, "s": listing.symbol,
            "p": price, "q": qty, "f": agg.first_id, "l": agg.last_id, "T": agg.time_ms,
            "m": agg.buyer_is_maker,
        }  # fmt: skip
    return orjson.dumps(body)


def trade_event(trade: Trade, listing: Listing) -> bytes:
    """Render a spot trade event; order ids follow from the trade id."""
    p = listing.precision
    tid = int(trade.trade_id)
    maker, taker = ORDER_ID_BASE + 2 * tid, ORDER_ID_BASE + 2 * tid + 1
    buyer, seller = (maker, taker) if trade.buyer_is_maker else (taker, maker)
    return orjson.dumps(
        {
            "e": "trade", "E": trade.time_ms, "s": listing.symbol, "t": tid,
            "p": format_units(trade.price, p.price, p.fixed),
            "q": format_units(trade.qty, p.base, p.fixed),
            "b": buyer, "a": seller, "T": trade.time_ms, "m": trade.buyer_is_maker, "M": True,
        }
    )  # fmt: skip


def first_trade_id(market: VenueMarket, open_ms: int) -> int:
    """Return the id of the first trade at or after `open_ms` (a minute's open)."""
    day = open_ms - open_ms % DAY_MS
    return market.day(day).first_ids[(open_ms - day) // MINUTE_MS]


def kline_event(
    candle: Candle, tf: Timeframe, market: VenueMarket, event_ms: int, *, final: bool
) -> bytes:
    """Render a kline event; `f`/`L` are the first and last trade ids it counts."""
    listing = market.listing
    p, fixed = listing.precision, listing.precision.fixed
    trades = candle.trades or 0
    first = first_trade_id(market, max(candle.open_time_ms, listing.listed_ms)) if trades else -1
    last = first + trades - 1 if trades else -1
    k = {
        "t": candle.open_time_ms, "T": candle.close_time_ms, "s": listing.symbol, "i": tf.code,
        "f": first, "L": last,
        "o": format_units(candle.open, p.price, fixed),
        "c": format_units(candle.close, p.price, fixed),
        "h": format_units(candle.high, p.price, fixed),
        "l": format_units(candle.low, p.price, fixed),
        "v": format_units(candle.volume, p.base, fixed),
        "n": trades, "x": final,
        "q": format_units(candle.quote_volume, p.quote, fixed),
        "V": format_units(candle.taker_buy_base or 0, p.base, fixed),
        "Q": format_units(candle.taker_buy_quote or 0, p.quote, fixed),
        "B": "0",
    }  # fmt: skip
    return orjson.dumps({"e": "kline", "E": event_ms, "s": listing.symbol, "k": k})


Route = tuple[str, Callable[[web.Request], Awaitable[web.StreamResponse]]]


def routes(world: SimWorld, hub: WsHub) -> list[Route]:
    """Return the (path, handler) pairs of the spot and USD-M stream endpoints."""
    out: list[Route] = []
    mounts = [("", Venue.BINANCE)] + [
        (USDM_PREFIX + sub, Venue.BINANCE_USDM) for sub in ("", "/market", "/public")
    ]
    for prefix, venue in mounts:
        raw, combined = _handler(world, hub, venue, False), _handler(world, hub, venue, True)
        out += [(f"{prefix}/ws", raw), (f"{prefix}/ws/{{streams:.+}}", raw)]
        out += [(f"{prefix}/stream", combined)]
    return out


def _handler(
    world: SimWorld, hub: WsHub, venue: Venue, combined: bool
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        limits = hub.limits(venue.value)
        cap = limits.streams if limits is not None else None
        session = BinanceSession(world, venue, combined, cap)
        text = (
            request.query.get("streams", "") if combined else request.match_info.get("streams", "")
        )
        now = world.now_ms()
        for name in filter(None, text.split("/")):
            session.subscribe(name, now)  # names that are no stream are ignored, as Binance does
        if cap is not None and len(session.streams) > cap:
            return hub.refuse(venue.value, 400, 2, too_many_streams(cap))
        return await hub.serve(request, venue.value, session, world.now_ms, world.faults)

    return handle
