"""Binance spot (`/api/v3`) and USD-M (`/fapi/v1`) market-data REST, as `ENDPOINTS`.

Each handler answers with the venue's exact shapes (see the recordings in
../shared/fixtures/binance/rest/): kline rows of 12 (ints for the times and the trade
count, strings for the rest, "0" last; spot with 8 decimals, USD-M at the contract's
precision), aggTrades `{"a","p","q","f","l","T","m","M"}` (USD-M without "M"), recent
trades `{"id","price","qty","quoteQty","time","isBuyerMaker","isBestMatch"}`. Request
validation and error wordings live in `binance_params`, exchange info in
`binance_info`, the trade views in `binance_trades`, kline rows (and their cache) in
`binance_klines`.

Weights are the documented ones: spot klines 2, aggTrades 4, trades 25, exchangeInfo 20,
ping and time 1; USD-M klines by `limit` (1 below 100, 2 below 500, 5 up to 1000, 10
above: developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/
Kline-Candlestick-Data), aggTrades 20, the rest 1.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson
from aiohttp import web

from candlevault.domain.decimals import format_units
from candlevault.domain.errors import BadValue
from candlevault.domain.timeframes import parse_timeframe
from candlevault.domain.venues import Venue
from candlevault.simulator.binance_info import spot_exchange_info, usdm_exchange_info
from candlevault.simulator.binance_klines import kline_rows
from candlevault.simulator.binance_params import (
    BAD_COMBINATION,
    INVALID_INTERVAL,
    ErrorBody,
    limit_param,
    listed_view,
    mandatory,
    optional_int,
    refuse,
    symbol_param,
)
from candlevault.simulator.binance_trades import (
    AggTrade,
    aggs_backward,
    aggs_forward,
    aggs_from_id,
    recent_trades,
)
from candlevault.simulator.faults import RequestFault, corrupt_kline_row
from candlevault.simulator.http import Endpoint, Handler, Reply
from candlevault.simulator.instruments import Listing
from candlevault.simulator.world import SimWorld

SPOT_KLINES_MAX = 1000
USDM_KLINES_MAX = 1500
TRADES_MAX = 1000
DEFAULT_LIMIT = 500
AGG_WINDOW_MS = 3_600_000
TOO_WIDE: ErrorBody = {"code": -1127, "msg": "More than 1 hours between startTime and endTime."}


async def ping(world: SimWorld, request: web.Request, fault: RequestFault) -> Reply:
    """Serve `/api/v3/ping` and `/fapi/v1/ping`: `{}`."""
    return Reply(b"{}")


async def server_time(world: SimWorld, request: web.Request, fault: RequestFault) -> Reply:
    """Serve `/api/v3/time` and `/fapi/v1/time`: the sim time, `{"serverTime": ms}`."""
    return Reply(orjson.dumps({"serverTime": world.now_ms()}))


def klines(venue: Venue, max_limit: int) -> Handler:
    """Return the `klines` handler of `venue`.

    Binance documents (binance-spot-api-docs rest-api.md and developers.binance.com
    ".../rest-api/market-data-endpoints", "Kline/Candlestick data"; the USD-M page
    alike): "Klines are uniquely identified by their open time", `limit` "Default 500;
    max 1000" (USD-M 1500), and "If startTime and endTime are not sent, the most recent
    klines are returned". So `startTime` and `endTime` bound the *open* time, both
    inclusive, and the reply holds the oldest `limit` candles from `startTime`, or
    without it the newest `limit` up to `endTime` (or now), the last one forming, its
    close time in the future. An unaligned `startTime` is taken as sent: the reply
    starts at the first candle opening at or after it, never at the one containing it
    (ccxt pages on with `startTime = last open + 1` and would otherwise repeat a row per
    page). A window before the listing is `[]`, not an error.
    """

    async def handle(world: SimWorld, request: web.Request, fault: RequestFault) -> Reply:
        query = request.query
        symbol = symbol_param(query)
        interval = mandatory(query, "interval")
        start = optional_int(query, "startTime")
        end = optional_int(query, "endTime")
        limit = limit_param(query, DEFAULT_LIMIT, max_limit)
        view = listed_view(world, venue, symbol)
        try:
            tf = parse_timeframe(interval)
        except BadValue:
            raise refuse(INVALID_INTERVAL) from None
        rows = kline_rows(view, tf, now_ms=world.now_ms(), start_ms=start, end_ms=end, limit=limit)
        if fault.kind == "malformed" and fault.malformed is not None and rows:
            i = fault.row_index(len(rows))
            row = orjson.loads(rows[i])
            rows[i] = orjson.dumps(corrupt_kline_row(row, fault.malformed, tf.duration_ms))
        return Reply(b"[" + b",".join(rows) + b"]", candles=len(rows))

    return handle


def agg_trades(venue: Venue, *, best_match: bool) -> Handler:
    """Return the `aggTrades` handler of `venue` (spot rows carry "M", USD-M's do not).

    Parameters as documented (binance-spot-api-docs rest-api.md, "Compressed/Aggregate
    trades list"): `fromId` "to get aggregate trades from INCLUSIVE", `startTime` and
    `endTime` bound `T`, both inclusive, at most one hour apart when both are sent
    (else -1127); `startTime` alone reads forward to now; `endTime` alone gives the
    newest `limit` at or before it (ccxt pages backwards that way); nothing gives the
    newest `limit`. `fromId` together with a time is refused with -1128 ("Combination
    of optional parameters invalid."): our choice where the docs are silent (the 2018
    server refused even a lone startTime or endTime that way).
    """

    async def handle(world: SimWorld, request: web.Request, fault: RequestFault) -> Reply:
        query = request.query
        symbol = symbol_param(query)
        from_id = optional_int(query, "fromId")
        start = optional_int(query, "startTime")
        end = optional_int(query, "endTime")
        limit = limit_param(query, DEFAULT_LIMIT, TRADES_MAX)
        if from_id is not None and (start is not None or end is not None):
            raise refuse(BAD_COMBINATION)
        if start is not None and end is not None and end - start > AGG_WINDOW_MS:
            raise refuse(TOO_WIDE)
        market = listed_view(world, venue, symbol).market
        now = world.now_ms()
        if from_id is not None:
            aggs = aggs_from_id(market, now, from_id=from_id, limit=limit)
        elif start is not None:
            aggs = aggs_forward(market, now, start_ms=start, end_ms=end, limit=limit)
        else:
            aggs = aggs_backward(market, now, end_ms=now if end is None else end, limit=limit)
        return Reply(orjson.dumps([_agg_row(a, market.listing, best_match) for a in aggs]))

    return handle


def _agg_row(agg: AggTrade, listing: Listing, best_match: bool) -> dict[str, object]:
    """`{"a":26129,"p":"0.01633102","q":"4.70443515","f":27781,"l":27781,"T":1498793709153,
    "m":true,"M":true}` (spot; USD-M sends the same without "M")."""
    p = listing.precision
    row: dict[str, object] = {
        "a": agg.agg_id,
        "p": format_units(agg.price, p.price, p.fixed),
        "q": format_units(agg.qty, p.base, p.fixed),
        "f": agg.first_id,
        "l": agg.last_id,
        "T": agg.time_ms,
        "m": agg.buyer_is_maker,
    }
    if best_match:
        row["M"] = True
    return row


async def spot_trades(world: SimWorld, request: web.Request, fault: RequestFault) -> Reply:
    """Serve `GET /api/v3/trades`: the newest `limit` trades, oldest first.

    `{"id":28457,"price":"4.00000100","qty":"12.00000000","quoteQty":"48.000012",
    "time":1499865549590,"isBuyerMaker":true,"isBestMatch":true}`; `quoteQty` is
    price × qty, exact at the quote precision since tick × step is.
    """
    query = request.query
    symbol = symbol_param(query)
    limit = limit_param(query, DEFAULT_LIMIT, TRADES_MAX)
    market = listed_view(world, Venue.BINANCE, symbol).market
    p = market.listing.precision
    div = 10 ** (p.price + p.base - p.quote)
    rows = [
        {
            "id": t.trade_id,
            "price": format_units(t.price, p.price, p.fixed),
            "qty": format_units(t.qty, p.base, p.fixed),
            "quoteQty": format_units(t.price * t.qty // div, p.quote, p.fixed),
            "time": t.time_ms,
            "isBuyerMaker": t.buyer_is_maker,
            "isBestMatch": True,
        }
        for t in recent_trades(market, world.now_ms(), limit)
    ]
    return Reply(orjson.dumps(rows))


def usdm_klines_weight(request: web.Request) -> int:
    """Return the weight of a USD-M klines request: 1, 2, 5 or 10 by `limit`."""
    text = request.query.get("limit", "")
    limit = int(text) if text.isascii() and text.isdigit() else DEFAULT_LIMIT
    return 1 if limit < 100 else 2 if limit < 500 else 5 if limit <= 1000 else 10


def _spot(path: str, handler: Handler, weight: int | Callable[[web.Request], int]) -> Endpoint:
    return Endpoint("GET", path, Venue.BINANCE.value, "binance", handler, weight)


def _usdm(path: str, handler: Handler, weight: int | Callable[[web.Request], int]) -> Endpoint:
    return Endpoint("GET", path, Venue.BINANCE_USDM.value, "usdm", handler, weight)


ENDPOINTS: list[Endpoint] = [
    _spot("/api/v3/ping", ping, 1),
    _spot("/api/v3/time", server_time, 1),
    _spot("/api/v3/exchangeInfo", spot_exchange_info, 20),
    _spot("/api/v3/klines", klines(Venue.BINANCE, SPOT_KLINES_MAX), 2),
    _spot("/api/v3/aggTrades", agg_trades(Venue.BINANCE, best_match=True), 4),
    _spot("/api/v3/trades", spot_trades, 25),
    _usdm("/fapi/v1/ping", ping, 1),
    _usdm("/fapi/v1/time", server_time, 1),
    _usdm("/fapi/v1/exchangeInfo", usdm_exchange_info, 1),
    _usdm("/fapi/v1/klines", klines(Venue.BINANCE_USDM, USDM_KLINES_MAX), usdm_klines_weight),
    _usdm("/fapi/v1/aggTrades", agg_trades(Venue.BINANCE_USDM, best_match=False), 20),
]
"""Every Binance endpoint the simulator serves, for `http.wrap`."""
