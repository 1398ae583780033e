"""Binance's REST replies as msgspec types: decoded strictly, straight from the bytes.

Shapes follow the recorded replies in ../shared/fixtures/binance/rest and Binance's docs
(spot: https://developers.binance.com/docs/binance-spot-api-docs/rest-api/market-data-endpoints,
USD-M: .../derivatives/usds-margined-futures/market-data/rest-api). A kline row, e.g.

    [1705276800000, "42587.96000000", "42626.00000000", "42459.80000000",
     "42485.10000000", "913.04577000", 1705280399999, "38838380.45968840", 36373,
     "428.41018000", "18222924.10154050", "0"]

decodes only if it has exactly these 12 fields of these types: a row with a missing
field, a number where a string belongs or a float time is refused whole, with msgspec's
reason (which names the row and field), before any value is trusted. aggTrades rows
are objects, decoded by key (`AggTradeRow`), with the same strictness of types.
"""

from __future__ import annotations

import msgspec

from candlevault.domain.decimals import Precision, parse_units
from candlevault.domain.errors import BadValue
from candlevault.domain.trades import Trade

KlineRow = tuple[int, str, str, str, str, str, int, str, int, str, str, str]
klines_decoder = msgspec.json.Decoder(list[KlineRow])


class RateLimit(msgspec.Struct, frozen=True, rename="camel"):
    """One entry of exchangeInfo's rateLimits."""

    rate_limit_type: str
    interval: str
    interval_num: int
    limit: int


class SymbolEntry(msgspec.Struct, frozen=True, rename="camel"):
    """What candlevault reads of a symbol in exchangeInfo (USD-M adds the precisions
    its klines are written with and the listing time)."""

    symbol: str
    status: str
    price_precision: int | None = None
    quantity_precision: int | None = None
    onboard_date: int | None = None
    contract_type: str | None = None


class ExchangeInfo(msgspec.Struct, frozen=True, rename="camel"):
    """GET /api/v3/exchangeInfo and /fapi/v1/exchangeInfo, the parts used."""

    rate_limits: list[RateLimit]
    symbols: list[SymbolEntry]


class ServerTime(msgspec.Struct, frozen=True, rename="camel"):
    """GET /api/v3/time and /fapi/v1/time."""

    server_time: int


class AggTradeRow(msgspec.Struct, frozen=True):
    """One row of GET /api/v3/aggTrades and /fapi/v1/aggTrades ("Compressed/Aggregate
    trades list"), by key; e.g. (spot, api_v3_aggTrades_BTCUSDT_2021-10-22.json)

        {"a": 966492862, "p": "60759.60000000", "q": "0.00841000", "f": 1111480471,
         "l": 1111480471, "T": 1634944096633, "m": false, "M": true}

    USD-M rows lack "M". Ids and the time must be JSON ints, `m` a JSON bool, price and
    quantity strings: a float price, a string id or a missing key refuses the reply.
    """

    agg_id: int = msgspec.field(name="a")
    price: str = msgspec.field(name="p")
    qty: str = msgspec.field(name="q")
    first_id: int = msgspec.field(name="f")
    last_id: int = msgspec.field(name="l")
    time_ms: int = msgspec.field(name="T")
    buyer_is_maker: bool = msgspec.field(name="m")
    best_match: bool | None = msgspec.field(name="M", default=None)

    def trade(self, precision: Precision) -> Trade:
        """The row as a `Trade` (count = l - f + 1, the fills it stands for); raise
        `BadValue` for l < f, or a price or quantity that is negative or does not parse
        at the symbol's precision."""
        if self.last_id < self.first_id:
            raise BadValue("aggTrade f..l", [self.first_id, self.last_id], "expected f <= l")
        price = parse_units(self.price, precision.price)
        qty = parse_units(self.qty, precision.base)
        if price < 0 or qty < 0:
            raise BadValue("aggTrade price and quantity", [self.price, self.qty], "negative")
        count = self.last_id - self.first_id + 1
        return Trade(self.agg_id, price, qty, self.time_ms, self.buyer_is_maker, count)


exchange_info_decoder = msgspec.json.Decoder(ExchangeInfo)
agg_trades_decoder = msgspec.json.Decoder(list[AggTradeRow])
server_time_decoder = msgspec.json.Decoder(ServerTime)

INTERVAL_MS = {"SECOND": 1_000, "MINUTE": 60_000, "HOUR": 3_600_000, "DAY": 86_400_000}
