"""Bybit v5 market REST replies as msgspec types: decoded strictly, straight from the bytes.

Every reply is one envelope, HTTP 200 even for errors (https://bybit-exchange.github.io/
docs/v5/error), so the status is decoded first (`status_decoder`) and the `result` only
when `retCode` is 0 (an error's `result` is `{}`):

    {"retCode":0,"retMsg":"OK","result":{...},"retExtInfo":{},"time":1786310817197}

Shapes follow the recorded replies in ../shared/fixtures/bybit/rest and Bybit's pages:

- GET /v5/market/kline (https://bybit-exchange.github.io/docs/v5/market/kline):
  `result.list` newest first, each row 7 strings [start, open, high, low, close, volume,
  turnover], decimals with the fewest digits, e.g.
  `["1694649600000","19289.27","19321.5","18580.75","19265.49","414.689515",
  "7981068.41994112"]`. A row with 6 fields, a number where a string belongs or a start
  that is not all digits is refused whole, before any value is trusted. There is no
  close time, trade count or taker volume: `to_candle` leaves those absent (None).
- GET /v5/market/instruments-info (https://bybit-exchange.github.io/docs/v5/market/
  instrument): the fields candlevault reads; linear adds `launchTime` and pages with
  `nextPageCursor` (`""` on the last page), spot has no such key at all.
- GET /v5/market/time (https://bybit-exchange.github.io/docs/v5/market/time):
  `{"timeSecond":"1694667737","timeNano":"1694667737126471019"}`.

`retExtInfo` is optional: the recorded testnet kline replies have none.
"""

from __future__ import annotations

from typing import Annotated, Generic, TypeVar

import msgspec

from candlevault.domain.candles import Candle
from candlevault.domain.decimals import Precision, parse_units

MINUTE_MS = 60_000
Digits = Annotated[str, msgspec.Meta(pattern="^[0-9]+$")]  # epoch times as text
KlineRow = tuple[Digits, str, str, str, str, str, str]
R = TypeVar("R")


class Status(msgspec.Struct, frozen=True, rename="camel"):
    """The envelope without its result: enough to tell success from a refusal."""

    ret_code: int
    ret_msg: str
    time: int


class Envelope(msgspec.Struct, Generic[R], frozen=True, rename="camel"):
    """A successful reply: the status and the endpoint's `result`."""

    ret_code: int
    ret_msg: str
    result: R
    time: int
    ret_ext_info: dict[str, object] | None = None


class KlineResult(msgspec.Struct, frozen=True):
    """`result` of /v5/market/kline: the symbol, its category and rows, newest first."""

    symbol: str
    category: str
    rows: list[KlineRow] = msgspec.field(name="list")


class PriceFilter(msgspec.Struct, frozen=True, rename="camel"):
    """An instrument's price step (its decimals are the klines' price decimals)."""

    tick_size: str


class LotSizeFilter(msgspec.Struct, frozen=True, rename="camel"):
    """An instrument's quantity step: `basePrecision` on spot, `qtyStep` on linear."""

    base_precision: str | None = None
    qty_step: str | None = None


class Instrument(msgspec.Struct, frozen=True, rename="camel"):
    """What candlevault reads of one instrument."""

    symbol: str
    status: str
    base_coin: str
    quote_coin: str
    price_filter: PriceFilter
    lot_size_filter: LotSizeFilter
    launch_time: Digits | None = None  # linear only
    contract_type: str | None = None  # linear only: LinearPerpetual, LinearFutures


class InstrumentsResult(msgspec.Struct, frozen=True, rename="camel"):
    """`result` of /v5/market/instruments-info: one page of instruments."""

    category: str
    rows: list[Instrument] = msgspec.field(name="list")
    next_page_cursor: str | None = None  # absent on spot, "" on the last linear page


class TimeResult(msgspec.Struct, frozen=True, rename="camel"):
    """`result` of /v5/market/time."""

    time_second: Digits
    time_nano: Digits


status_decoder = msgspec.json.Decoder(Status)
kline_decoder = msgspec.json.Decoder(Envelope[KlineResult])
instruments_decoder = msgspec.json.Decoder(Envelope[InstrumentsResult])
time_decoder = msgspec.json.Decoder(Envelope[TimeResult])


def to_candle(row: KlineRow, precision: Precision) -> Candle:
    """Build a 1m candle from a kline row; raise `BadValue` on a malformed decimal.

    The close time is open + 59,999 ms, as the venue's WebSocket `end` says; the trade
    count and taker-buy volumes Bybit does not publish stay None, never zero.
    """
    p, b, q = precision.price, precision.base, precision.quote
    start = int(row[0])
    return Candle(
        open_time_ms=start,
        open=parse_units(row[1], p),
        high=parse_units(row[2], p),
        low=parse_units(row[3], p),
        close=parse_units(row[4], p),
        volume=parse_units(row[5], b),
        close_time_ms=start + MINUTE_MS - 1,
        quote_volume=parse_units(row[6], q),
    )
