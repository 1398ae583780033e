"""`/api/v3/exchangeInfo` and `/fapi/v1/exchangeInfo`: what each Binance venue lists.

The shapes copy recorded replies key for key and in the same order
(../shared/fixtures/binance/rest/api_v3_exchangeInfo_BTCUSDT_ETHUSDT_2021-10-22.json and
fapi_v1_exchangeInfo_2022-02-19.json), since clients such as ccxt read them by key and
some by position. What is the simulator's own is filled in from the listings: the
configured request-weight limit, each symbol's assets, tick and step (spot writes them
with 8 decimals, "0.01000000"; USD-M at the contract's precision, "0.10"), and USD-M's
`onboardDate` (the listing time). A symbol appears only from its listing on, as on the
exchange. Everything that describes trading rather than market data (order types,
commission precisions, notional filters, margin figures) is a fixed plausible value.

Spot accepts `symbol=BTCUSDT` or `symbols=["BTCUSDT","ETHUSDT"]` (no blanks; Binance
refuses those with -1100) and refuses an unknown symbol with -1121 (binance-spot-api-docs
rest-api.md: "If any symbol provided in either symbol or symbols do not exist, the
endpoint will throw an error.").
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import orjson
from aiohttp import web

from candlevault.domain.decimals import format_units
from candlevault.domain.venues import Venue
from candlevault.simulator.binance_params import (
    BAD_COMBINATION,
    DUPLICATE_SYMBOLS,
    INVALID_SYMBOL,
    SYMBOL_PATTERN,
    illegal,
    refuse,
    symbol_param,
)
from candlevault.simulator.faults import RequestFault
from candlevault.simulator.http import Reply
from candlevault.simulator.instruments import Listing
from candlevault.simulator.world import SimWorld

Json = dict[str, object]

_SYMBOLS = re.compile(rf'\[("{SYMBOL_PATTERN}"(,"{SYMBOL_PATTERN}")*)?\]')
SYMBOLS_RANGE = r'^\[("[\w\-._&&[^a-z]]{1,50}"(,"[\w\-._&&[^a-z]]{1,50}"){0,}){0,1}\]$'
_STABLE = frozenset({"USDT", "BUSD", "USDC", "FDUSD", "TUSD"})
_SPOT_ORDER_TYPES = ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"]
_USDM_ORDER_TYPES = [
    "LIMIT",
    "MARKET",
    "STOP",
    "STOP_MARKET",
    "TAKE_PROFIT",
    "TAKE_PROFIT_MARKET",
    "TRAILING_STOP_MARKET",
]
# USD-M's margin assets, as recorded: exchange-wide, not per symbol.
_USDM_ASSETS = [
    {"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-100"},
    {"asset": "BTC", "marginAvailable": True, "autoAssetExchange": "-0.00100000"},
    {"asset": "BNB", "marginAvailable": True, "autoAssetExchange": "-0.00100000"},
    {"asset": "ETH", "marginAvailable": True, "autoAssetExchange": "-0.00100000"},
    {"asset": "BUSD", "marginAvailable": True, "autoAssetExchange": "-100"},
]
PERPETUAL_DELIVERY_MS = 4133404800000  # 2100-12-25 08:00 UTC, Binance's "never" for perpetuals


async def spot_exchange_info(world: SimWorld, request: web.Request, fault: RequestFault) -> Reply:
    """Serve `GET /api/v3/exchangeInfo` (all symbols, or those asked for)."""
    listings = _asked(_listed(world, Venue.BINANCE), request.query)
    body = {
        "timezone": "UTC",
        "serverTime": world.now_ms(),
        "rateLimits": [
            _limit("REQUEST_WEIGHT", "MINUTE", 1, world.config.binance_weight_per_minute),
            _limit("ORDERS", "SECOND", 10, 50),
            _limit("ORDERS", "DAY", 1, 160000),
            _limit("RAW_REQUESTS", "MINUTE", 5, 6100),
        ],
        "exchangeFilters": [],
        "symbols": [_spot_symbol(item) for item in listings],
    }
    return Reply(orjson.dumps(body))


async def usdm_exchange_info(world: SimWorld, request: web.Request, fault: RequestFault) -> Reply:
    """Serve `GET /fapi/v1/exchangeInfo` (every perpetual listed by now)."""
    body = {
        "timezone": "UTC",
        "serverTime": world.now_ms(),
        "futuresType": "U_MARGINED",
        "rateLimits": [
            _limit("REQUEST_WEIGHT", "MINUTE", 1, world.config.usdm_weight_per_minute),
            _limit("ORDERS", "MINUTE", 1, 1200),
            _limit("ORDERS", "SECOND", 10, 300),
        ],
        "exchangeFilters": [],
        "assets": _USDM_ASSETS,
        "symbols": [_usdm_symbol(item) for item in _listed(world, Venue.BINANCE_USDM)],
    }
    return Reply(orjson.dumps(body))


def _listed(world: SimWorld, venue: Venue) -> list[Listing]:
    now = world.now_ms()
    return [item for item in world.listings(venue) if item.listed_ms <= now]


def _asked(listings: list[Listing], query: Mapping[str, str]) -> list[Listing]:
    """Return the listings named by `symbol` or `symbols`, in the order asked; all if neither."""
    if "symbol" in query and "symbols" in query:
        raise refuse(BAD_COMBINATION)
    if "symbol" in query:
        names = [symbol_param(query)]
    elif "symbols" in query:
        text = query["symbols"]
        if _SYMBOLS.fullmatch(text) is None:
            raise illegal("symbols", SYMBOLS_RANGE)
        names = [str(name) for name in orjson.loads(text)]
        if len(set(names)) != len(names):
            raise refuse(DUPLICATE_SYMBOLS)
    else:
        return listings
    by_name = {item.symbol: item for item in listings}
    if any(name not in by_name for name in names):
        raise refuse(INVALID_SYMBOL)
    return [by_name[name] for name in names]


def _limit(kind: str, interval: str, num: int, limit: int) -> Json:
    return {"rateLimitType": kind, "interval": interval, "intervalNum": num, "limit": limit}


def _spot_symbol(item: Listing) -> Json:
    """One spot symbol, keys in the recorded order."""
    return {
        "symbol": item.symbol,
        "status": "TRADING",
        "baseAsset": item.base,
        "baseAssetPrecision": 8,
        "quoteAsset": item.quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": _SPOT_ORDER_TYPES,
        "icebergAllowed": True,
        "ocoAllowed": True,
        "quoteOrderQtyMarketAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": True,
        "filters": _spot_filters(item),
        "permissions": ["SPOT", "MARGIN"],
    }


def _spot_filters(item: Listing) -> list[Json]:
    """Spot filters as recorded: every decimal written with 8 places."""
    p = item.precision

    def price(units: int) -> str:
        return format_units(units, p.price)

    def qty(units: int) -> str:
        return format_units(units, p.base)

    max_qty = max(item.step, 9000 * 10**p.base)
    min_notional = 10 * 10**p.quote if item.quote in _STABLE else 10 ** max(0, p.quote - 4)
    return [
        {
            "filterType": "PRICE_FILTER",
            "minPrice": price(item.tick),
            "maxPrice": price(item.tick * 10**8),
            "tickSize": price(item.tick),
        },
        {"filterType": "PERCENT_PRICE", "multiplierUp": "5", "multiplierDown": "0.2",
         "avgPriceMins": 5},
        {"filterType": "LOT_SIZE", "minQty": qty(item.step), "maxQty": qty(max_qty),
         "stepSize": qty(item.step)},
        {"filterType": "MIN_NOTIONAL", "minNotional": format_units(min_notional, p.quote),
         "applyToMarket": True, "avgPriceMins": 5},
        {"filterType": "ICEBERG_PARTS", "limit": 10},
        {"filterType": "MARKET_LOT_SIZE", "minQty": qty(0), "maxQty": qty(max_qty // 90),
         "stepSize": qty(0)},
        {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
        {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 5},
    ]  # fmt: skip


def _usdm_symbol(item: Listing) -> Json:
    """One USD-M perpetual, keys in the recorded order."""
    p = item.precision
    return {
        "symbol": item.symbol,
        "pair": item.symbol,
        "contractType": "PERPETUAL",
        "deliveryDate": PERPETUAL_DELIVERY_MS,
        "onboardDate": item.listed_ms,
        "status": "TRADING",
        "maintMarginPercent": "2.5000",
        "requiredMarginPercent": "5.0000",
        "baseAsset": item.base,
        "quoteAsset": item.quote,
        "marginAsset": item.quote,
        "pricePrecision": p.price,
        "quantityPrecision": p.base,
        "baseAssetPrecision": 8,
        "quotePrecision": 8,
        "underlyingType": "COIN",
        "underlyingSubType": [],
        "settlePlan": 0,
        "triggerProtect": "0.0500",
        "liquidationFee": "0.012500",
        "marketTakeBound": "0.05",
        "filters": _usdm_filters(item),
        "orderTypes": _USDM_ORDER_TYPES,
        "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
    }


def _usdm_filters(item: Listing) -> list[Json]:
    """USD-M filters as recorded: keys in USD-M's odd order, decimals at the contract's
    precision (tick "0.10", step "0.001"), whole limits without decimals ("1000")."""
    p = item.precision
    tick = format_units(item.tick, p.price)
    step = format_units(item.step, p.base)
    max_price = format_units(1_000_000 * 10**p.price, p.price)
    lot: Json = {"stepSize": step, "filterType": "LOT_SIZE", "maxQty": "1000", "minQty": step}
    return [
        {"minPrice": tick, "maxPrice": max_price, "filterType": "PRICE_FILTER", "tickSize": tick},
        lot,
        {**lot, "filterType": "MARKET_LOT_SIZE"},
        {"limit": 200, "filterType": "MAX_NUM_ORDERS"},
        {"limit": 10, "filterType": "MAX_NUM_ALGO_ORDERS"},
        {"notional": "10", "filterType": "MIN_NOTIONAL"},
        {"multiplierDown": "0.9500", "multiplierUp": "1.0500", "multiplierDecimal": "4",
         "filterType": "PERCENT_PRICE"},
    ]  # fmt: skip
