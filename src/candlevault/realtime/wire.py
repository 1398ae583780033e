"""Stream frames → domain values, pure: Binance aggTrade and kline_1m, Bybit publicTrade
and kline.1.

Frames are decoded strictly with msgspec, by key (spot and derivatives order keys
differently), and prices and sizes are parsed exactly with the symbol's `Precision`
(`parse_units`), never through float. Every frame parses to one `Message`:

- `Trades`: the trades of one symbol in one frame, with the frame's event time;
- `Klines`: the venue's own 1m candle(s) of one symbol in one frame, `closed` for the
  final one (Binance `"x":true`, Bybit `"confirm":true`): what the stream's candles are
  reconciled with, and what settles a minute the trades alone cannot vouch for;
- `Control`: a reply to something we sent (Binance `{"result":null,"id":1}` and
  `{"error":{"code":2,"msg":..},"id":2}`; Bybit subscribe acks and pongs);
- `Event`: any other stream event (a kline of another interval, or trades or klines of a
  symbol we no longer follow): not ours to parse, but it proves the feed alive up to its
  event time.

A frame that is not valid JSON, lacks a field or has a field of the wrong type raises
`MalformedFrame` naming the venue and msgspec's reason; the connection counts and skips
it rather than trusting any part of it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import msgspec

from candlevault.domain.candles import Candle, parse_kline_row
from candlevault.domain.decimals import Precision, parse_units
from candlevault.domain.errors import BadValue
from candlevault.domain.timeframes import MINUTE_MS
from candlevault.domain.trades import Trade
from candlevault.exchanges.binance.schemas import AggTradeRow
from candlevault.exchanges.validate import MalformedReply

T = TypeVar("T")
PrecisionOf = Callable[[str], Precision | None]
"""The precision of a followed symbol, None for one not (or no longer) followed."""


class MalformedFrame(MalformedReply):
    """A stream frame that does not parse; the caller counts and skips it."""


class Trades(msgspec.Struct, frozen=True):
    """The trades of `symbol` in one frame, in the venue's order."""

    symbol: str
    trades: list[Trade]
    event_ms: int


class Klines(msgspec.Struct, frozen=True):
    """The venue's own 1m candles of `symbol` in one frame, ascending (`closed`: final)."""

    symbol: str
    candles: list[Candle]
    event_ms: int


class Control(msgspec.Struct, frozen=True):
    """A reply to a request: `ok` False for a refusal, `message` the venue's words."""

    ok: bool
    op: str  # "result"/"error" on Binance; "subscribe", "unsubscribe", "pong" on Bybit
    request_id: int | str | None = None
    message: str = ""


class Event(msgspec.Struct, frozen=True):
    """Any other stream event: `kind` (e.g. "kline") and its exchange time if it has one."""

    kind: str
    event_ms: int | None = None


Message = Trades | Klines | Control | Event


# -- Binance -----------------------------------------------------------------------------


class BinanceAggTrade(AggTradeRow, frozen=True, kw_only=True):
    """`<symbol>@aggTrade` (binance-spot-api-docs web-socket-streams.md, USD-M alike):
    the REST aggTrades row with the event's type, time and symbol."""

    event_type: str = msgspec.field(name="e")
    event_ms: int = msgspec.field(name="E")
    symbol: str = msgspec.field(name="s")


class BinanceKline(msgspec.Struct, frozen=True):
    """The `k` member of `<symbol>@kline_<interval>` (all twelve REST kline fields)."""

    open_ms: int = msgspec.field(name="t")
    close_ms: int = msgspec.field(name="T")
    interval: str = msgspec.field(name="i")
    open: str = msgspec.field(name="o")
    close: str = msgspec.field(name="c")
    high: str = msgspec.field(name="h")
    low: str = msgspec.field(name="l")
    volume: str = msgspec.field(name="v")
    trades: int = msgspec.field(name="n")
    final: bool = msgspec.field(name="x")
    quote_volume: str = msgspec.field(name="q")
    taker_base: str = msgspec.field(name="V")
    taker_quote: str = msgspec.field(name="Q")


class BinanceKlineEvent(msgspec.Struct, frozen=True):
    """`<symbol>@kline_<interval>` (binance-spot-api-docs web-socket-streams.md)."""

    event_ms: int = msgspec.field(name="E")
    symbol: str = msgspec.field(name="s")
    kline: BinanceKline = msgspec.field(name="k")


class BinanceError(msgspec.Struct, frozen=True):
    """The `error` member of a refused request."""

    code: int
    msg: str


_NONE = msgspec.Raw()


class _BinanceEnvelope(msgspec.Struct, frozen=True):
    """What tells Binance frames apart: combined wrapper, raw event, or reply."""

    stream: str | None = None
    data: msgspec.Raw = _NONE  # empty when absent
    e: str | None = None
    event_ms: int | None = msgspec.field(name="E", default=None)
    id: int | str | None = None
    result: msgspec.Raw = _NONE  # b"null" for `"result":null`, empty when absent
    error: BinanceError | None = None


_binance_envelope = msgspec.json.Decoder(_BinanceEnvelope)
_binance_agg = msgspec.json.Decoder(BinanceAggTrade)
_binance_kline = msgspec.json.Decoder(BinanceKlineEvent)


def parse_binance(frame: bytes | str, precision_of: PrecisionOf) -> Message:
    """Parse one Binance market-stream frame, raw or combined.

    Combined (spot, cryptofeed_spot_combined_2021-10-12.jsonl):
        {"stream":"nknusdt@aggTrade","data":{"e":"aggTrade","E":1633998523963,
         "s":"NKNUSDT","a":15683430,"p":"0.35280000","q":"58.00000000","f":19862790,
         "l":19862790,"T":1633998523963,"m":false,"M":true}}
    USD-M puts "a" before "s" and has no "M"; a raw stream sends the `data` alone.
    """
    envelope = _decode(_binance_envelope, frame, "binance")
    if envelope.error is not None:
        err = envelope.error
        return Control(False, "error", envelope.id, f"{err.code}: {err.msg}")
    if len(envelope.result):
        return Control(True, "result", envelope.id, bytes(envelope.result).decode())
    if len(envelope.data):
        body: bytes | str = bytes(envelope.data)
        envelope = _decode(_binance_envelope, body, "binance")
    else:
        body = frame
    if envelope.e is None:
        raise MalformedFrame(f"binance frame: neither an event nor a reply: {_head(frame)}")
    if envelope.e == "kline":
        return _binance_klines(body, precision_of)
    if envelope.e != "aggTrade":
        return Event(envelope.e, envelope.event_ms)
    agg = _decode(_binance_agg, body, "binance aggTrade")
    precision = precision_of(agg.symbol)
    if precision is None:
        return Event("aggTrade", agg.event_ms)
    return Trades(agg.symbol, [_agg_trade(agg, precision)], agg.event_ms)


def _binance_klines(body: bytes | str, precision_of: PrecisionOf) -> Message:
    """A 1m kline of a followed symbol (USD-M, cryptofeed_usdm_combined_2021-07-22.jsonl):
        {"e":"kline","E":1626992741424,"s":"CTKUSDT","k":{"t":1626992700000,
         "T":1626992759999,"s":"CTKUSDT","i":"1m","f":23961275,"L":23961322,"o":"1.01000",
         "c":"1.01100","h":"1.01100","l":"1.01000","v":"3917","n":48,"x":false,
         "q":"3957.89900","V":"1729","Q":"1748.01900","B":"0"}}
    """
    event = _decode(_binance_kline, body, "binance kline")
    k = event.kline
    precision = precision_of(event.symbol)
    if k.interval != "1m" or precision is None:
        return Event("kline", event.event_ms)
    if k.close_ms != k.open_ms + MINUTE_MS - 1 or k.open_ms % MINUTE_MS:
        raise MalformedFrame(f"binance kline {event.symbol}: t {k.open_ms}, T {k.close_ms}")
    row = (
        k.open_ms, k.open, k.high, k.low, k.close, k.volume, k.close_ms,
        k.quote_volume, k.trades, k.taker_base, k.taker_quote, "0",
    )  # fmt: skip
    try:
        candle = parse_kline_row(row, precision, closed=k.final)
    except BadValue as e:
        raise MalformedFrame(f"binance kline {event.symbol} {k.open_ms}: {e}") from e
    return Klines(event.symbol, [candle], event.event_ms)


def _agg_trade(agg: BinanceAggTrade, precision: Precision) -> Trade:
    try:
        return agg.trade(precision)
    except BadValue as e:
        raise MalformedFrame(f"binance aggTrade {agg.symbol} {agg.agg_id}: {e}") from e


# -- Bybit -------------------------------------------------------------------------------


class BybitTrade(msgspec.Struct, frozen=True):
    """One row of `publicTrade.<SYMBOL>` (Bybit v5 docs, websocket/public/trade)."""

    time_ms: int = msgspec.field(name="T")
    symbol: str = msgspec.field(name="s")
    side: str = msgspec.field(name="S")
    size: str = msgspec.field(name="v")
    price: str = msgspec.field(name="p")
    trade_id: str = msgspec.field(name="i")


class BybitKline(msgspec.Struct, frozen=True):
    """One element of `kline.<interval>.<SYMBOL>` (Bybit v5 docs, websocket/public/kline)."""

    start: int
    end: int
    interval: str
    open: str
    close: str
    high: str
    low: str
    volume: str
    turnover: str
    confirm: bool
    timestamp: int


class _BybitEnvelope(msgspec.Struct, frozen=True):
    """What tells Bybit frames apart: a topic push, or an op reply."""

    topic: str | None = None
    ts: int | None = None
    data: msgspec.Raw = _NONE
    op: str | None = None
    success: bool | None = None
    ret_msg: str = ""
    req_id: str | None = None


_bybit_envelope = msgspec.json.Decoder(_BybitEnvelope)
_bybit_trades = msgspec.json.Decoder(list[BybitTrade])
_bybit_klines = msgspec.json.Decoder(list[BybitKline])
_SIDES = {"Buy": False, "Sell": True}  # the taker's side → buyer_is_maker


def parse_bybit(frame: bytes | str, precision_of: PrecisionOf) -> Message:
    """Parse one Bybit v5 public frame.

    Trades (linear, cryptofeed_v5_linear_spot_2026-08-09.jsonl):
        {"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1786310819681,
         "data":[{"T":1786310819680,"s":"BTCUSDT","S":"Sell","v":"0.004",
         "p":"65114.20","L":"MinusTick","i":"a9188a0a-…","BT":false,"RPI":false,
         "seq":753843954913}]}
    Ack: {"success":true,"ret_msg":"","conn_id":"…","req_id":"","op":"subscribe"};
    pong: {"success":true,"ret_msg":"pong",…,"op":"ping"} (or "op":"pong").
    """
    envelope = _decode(_bybit_envelope, frame, "bybit")
    if envelope.topic is None:
        if envelope.op is None:
            raise MalformedFrame(f"bybit frame: neither a topic nor a reply: {_head(frame)}")
        op = "pong" if envelope.op in ("ping", "pong") else envelope.op
        ok = envelope.success is not False
        return Control(ok, op, envelope.req_id, envelope.ret_msg)
    kind, _, symbol = envelope.topic.partition(".")
    if kind == "kline" and symbol.startswith("1."):
        kind, symbol = "kline.1", symbol[2:]
    elif kind != "publicTrade":
        return Event(kind, envelope.ts)
    if not len(envelope.data) or envelope.ts is None:
        raise MalformedFrame(f"bybit {envelope.topic}: no data or ts: {_head(frame)}")
    precision = precision_of(symbol)
    if precision is None:
        return Event(kind, envelope.ts)
    if kind == "kline.1":
        klines = _decode(_bybit_klines, envelope.data, f"bybit {envelope.topic}")
        return Klines(symbol, [_bybit_candle(k, symbol, precision) for k in klines], envelope.ts)
    rows = _decode(_bybit_trades, envelope.data, f"bybit {envelope.topic}")
    return Trades(symbol, [_bybit_trade(row, symbol, precision) for row in rows], envelope.ts)


def _bybit_trade(row: BybitTrade, symbol: str, precision: Precision) -> Trade:
    maker = _SIDES.get(row.side)
    if maker is None or row.symbol != symbol:
        raise MalformedFrame(f"bybit trade {row.trade_id}: side {row.side!r}, symbol {row.symbol}")
    try:
        price = parse_units(row.price, precision.price)
        qty = parse_units(row.size, precision.base)
    except BadValue as e:
        raise MalformedFrame(f"bybit trade {symbol} {row.trade_id}: {e}") from e
    return Trade(row.trade_id, price, qty, row.time_ms, maker)


def _bybit_candle(k: BybitKline, symbol: str, precision: Precision) -> Candle:
    """A 1m candle as Bybit publishes it: no trade count nor taker volumes (None).
        {"start":1786310760000,"end":1786310819999,"interval":"1","open":"65119.9",
         "close":"65114.3","high":"65119.9","low":"65114.2","volume":"1.576",
         "turnover":"102627.995","confirm":false,"timestamp":1786310818440}
    """
    if k.end != k.start + MINUTE_MS - 1 or k.start % MINUTE_MS:
        raise MalformedFrame(f"bybit kline {symbol}: start {k.start}, end {k.end}")
    p = precision
    try:
        return Candle(
            open_time_ms=k.start,
            open=parse_units(k.open, p.price),
            high=parse_units(k.high, p.price),
            low=parse_units(k.low, p.price),
            close=parse_units(k.close, p.price),
            volume=parse_units(k.volume, p.base),
            close_time_ms=k.end,
            quote_volume=parse_units(k.turnover, p.quote),
            closed=k.confirm,
        )
    except BadValue as e:
        raise MalformedFrame(f"bybit kline {symbol} {k.start}: {e}") from e


# -- shared ------------------------------------------------------------------------------


def _decode(decoder: msgspec.json.Decoder[T], frame: bytes | str, what: str) -> T:
    try:
        return decoder.decode(frame)
    except msgspec.DecodeError as e:
        raise MalformedFrame(f"{what} frame: {e}: {_head(frame)}") from e


def _head(frame: bytes | str, limit: int = 200) -> str:
    text = frame if isinstance(frame, str) else bytes(frame).decode("utf-8", "replace")
    return text if len(text) <= limit else text[:limit] + "…"
