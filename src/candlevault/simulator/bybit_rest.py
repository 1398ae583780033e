"""Bybit v5 market REST on the simulator: time, instruments-info, kline and recent-trade.

Every reply is Bybit's envelope with string values, HTTP 200 even for errors, which
carry a non-zero `retCode` (clients must raise on it):

    {"retCode":0,"retMsg":"OK","result":{...},"retExtInfo":{},"time":1786310817197}
    {"retCode":10001,"retMsg":"Not supported symbols","result":{},"retExtInfo":{},"time":...}

Which klines a query gets (Bybit's window semantics, with their sources) and how rows
are rendered once and cached is `simulator.bybit_klines`; instruments' shapes are
`simulator.bybit_instruments`.

Error wordings, each as recorded from the real API: "Not supported symbols" (ccxt bybit.py
exceptions map, recorded 2024-09; mirumirumi/ro-soku src/exchange/bybit.rs for kline) and
"Invalid period!" (ro-soku, kline); "params error: Category is invalid" (JKorf/Bybit.Net
issue #229, kline); "params error: symbol invalid" with `result` `{"category":"",
"list":[]}` (VictorFrWu/bybit-java-api issue #60, recent-trade). 10001 is "Request
parameter error" on https://bybit-exchange.github.io/docs/v5/error. For a bad `limit`,
`start`, `end` or `cursor` no recorded reply was found; they follow the same
"params error: <field> invalid" form.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Final
from urllib.parse import parse_qs, unquote

import orjson
from aiohttp import web

from candlevault.domain.decimals import format_units
from candlevault.domain.errors import BadValue
from candlevault.domain.timeframes import from_bybit_code
from candlevault.domain.trades import Trade
from candlevault.domain.venues import Venue
from candlevault.simulator.bybit_instruments import linear_instrument, spot_instrument, symbol_id
from candlevault.simulator.bybit_klines import kline_opens, kline_rows
from candlevault.simulator.faults import RequestFault, corrupt_kline_row
from candlevault.simulator.http import Endpoint, Reply, VenueError
from candlevault.simulator.instruments import Listing
from candlevault.simulator.market import MINUTE_MS, VenueMarket
from candlevault.simulator.world import SimWorld

# Categories the simulator lists; "inverse" is a real category with nothing listed here.
CATEGORIES: Final[dict[str, Venue | None]] = {
    "spot": Venue.BYBIT_SPOT,
    "linear": Venue.BYBIT_LINEAR,
    "inverse": None,
}
KLINE_LIMIT: Final = (200, 1000)  # (default, max): docs/v5/market/kline
INSTRUMENTS_LIMIT: Final = (500, 1000)  # linear only; "Spot does not support pagination"
TRADES_LIMIT: Final = {Venue.BYBIT_SPOT: (60, 60), Venue.BYBIT_LINEAR: (500, 1000)}
PARAMS_ERROR: Final = 10001
TRADE_LOOKBACK_MS: Final = 86_400_000  # how far back recent-trade looks on a quiet symbol
# Spot execIds are numeric strings of this size ("2100000000007764263" in the docs);
# linear ones are UUID v5 ("a9188a0a-82bc-50de-..." in the recorded publicTrade frames).
SPOT_EXEC_ID_BASE: Final = 2_100_000_000_000_000_000
EXEC_ID_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, "candlevault-simulator/bybit/execId")
SEQ_BASE: Final = 100_000_000_000


def ledger_venue(request: web.Request) -> str:
    """Return the ledger venue of a request: its category (Bybit defaults to linear)."""
    return "bybit-spot" if request.query.get("category") == "spot" else "bybit-linear"


def exec_id(venue: Venue, symbol: str, trade_id: int) -> str:
    """Return Bybit's execId of a trade: a numeric string on spot, a UUID v5 on linear."""
    if venue is Venue.BYBIT_SPOT:
        return str(SPOT_EXEC_ID_BASE + trade_id)
    return str(uuid.uuid5(EXEC_ID_NAMESPACE, f"{symbol}:{trade_id}"))


# -- envelope and parameters ----------------------------------------------------------


def _ok(world: SimWorld, result: bytes) -> bytes:
    time_ms = str(world.now_ms()).encode()
    return b'{"retCode":0,"retMsg":"OK","result":%b,"retExtInfo":{},"time":%b}' % (
        result,
        time_ms,
    )


def _refuse(world: SimWorld, message: str, result: object = None) -> VenueError:
    body = {
        "retCode": PARAMS_ERROR,
        "retMsg": message,
        "result": {} if result is None else result,
        "retExtInfo": {},
        "time": world.now_ms(),
    }
    return VenueError(200, body)


def _category(world: SimWorld, query: Mapping[str, str], default: str | None) -> str:
    category = query.get("category", default)
    if category is None or category not in CATEGORIES:
        raise _refuse(world, "params error: Category is invalid")
    return category


def _int_param(
    world: SimWorld, query: Mapping[str, str], name: str, bounds: tuple[int, int] | None = None
) -> int | None:
    text = query.get(name)
    if text is None or text == "":
        return None
    if not (text.isascii() and text.isdigit()):
        raise _refuse(world, f"params error: {name} invalid")
    value = int(text)
    if bounds is not None and not bounds[0] <= value <= bounds[1]:
        raise _refuse(world, f"params error: {name} invalid")
    return value


def _limit(world: SimWorld, query: Mapping[str, str], default_max: tuple[int, int]) -> int:
    value = _int_param(world, query, "limit", (1, default_max[1]))
    return default_max[0] if value is None else value


# -- GET /v5/market/time --------------------------------------------------------------


async def server_time(world: SimWorld, request: web.Request, fault: RequestFault) -> Reply:
    """Serve the sim time: `{"timeSecond":"1694667737","timeNano":"1694667737126000000"}`."""
    now = world.now_ms()
    result = {"timeSecond": str(now // 1000), "timeNano": str(now * 1_000_000)}
    return Reply(_ok(world, orjson.dumps(result)))


# -- GET /v5/market/kline -------------------------------------------------------------


async def kline(world: SimWorld, request: web.Request, fault: RequestFault) -> Reply:
    """Serve klines newest first, each row 7 strings (see `bybit_klines.render_kline`)."""
    query = request.query
    category = _category(world, query, default="linear")
    symbol = query.get("symbol", "")
    venue = CATEGORIES[category]
    view = world.view(venue, symbol) if venue is not None else None
    if venue is None or view is None:
        raise _refuse(world, "Not supported symbols")
    try:
        tf = from_bybit_code(query.get("interval", ""))
    except BadValue:
        raise _refuse(world, "Invalid period!") from None
    limit = _limit(world, query, KLINE_LIMIT)
    start = _int_param(world, query, "start")
    end = _int_param(world, query, "end")
    now = world.now_ms()
    opens = kline_opens(view, tf, now_ms=now, start_ms=start, end_ms=end, limit=limit)
    rows = kline_rows(view, tf, opens, now)
    if fault.kind == "malformed" and fault.malformed is not None and rows:
        i = fault.row_index(len(rows))
        broken = corrupt_kline_row(orjson.loads(rows[i]), fault.malformed, tf.duration_ms)
        rows[i] = orjson.dumps(broken)
    head = b'{"symbol":%b,"category":"%b","list":[' % (orjson.dumps(symbol), category.encode())
    return Reply(_ok(world, head + b",".join(rows) + b"]}"), candles=len(rows))


# -- GET /v5/market/recent-trade ------------------------------------------------------


async def recent_trade(world: SimWorld, request: web.Request, fault: RequestFault) -> Reply:
    """Serve the newest trades, newest first, as the docs show them:
    `{"execId":"2100000000007764263","symbol":"BTCUSDT","price":"16618.49",
    "size":"0.00012","side":"Buy","time":"1672052955758","isBlockTrade":false,...}`."""
    query = request.query
    category = _category(world, query, default=None)
    venue = CATEGORIES[category]
    symbol = query.get("symbol", "")
    market = world.market(venue, symbol) if venue is not None else None
    if venue is None or market is None:
        raise _refuse(world, "params error: symbol invalid", {"category": "", "list": []})
    limit = _limit(world, query, TRADES_LIMIT[venue])
    trades = newest_trades(market, world.now_ms(), limit)
    rows = [_trade_row(venue, market.listing, trade) for trade in trades]
    return Reply(_ok(world, orjson.dumps({"category": category, "list": rows})))


def newest_trades(market: VenueMarket, now_ms: int, limit: int) -> list[Trade]:
    """Return the market's newest `limit` trades printed by `now_ms`, newest first."""
    out: list[Trade] = []
    floor = max(market.listing.listed_ms, now_ms - TRADE_LOOKBACK_MS)
    t = now_ms - now_ms % MINUTE_MS
    while t >= floor and len(out) < limit:
        for trade in reversed(market.trades(t)):
            if trade.time_ms <= now_ms:
                out.append(trade)
                if len(out) == limit:
                    break
        t -= MINUTE_MS
    return out


def _trade_row(venue: Venue, listing: Listing, trade: Trade) -> dict[str, object]:
    # Linear writes trade prices and sizes at the contract's full scale ("65114.20",
    # "0.040"), spot without trailing zeros, as the recorded publicTrade frames show.
    fixed = venue is Venue.BYBIT_LINEAR
    trade_id = int(trade.trade_id)
    return {
        "execId": exec_id(venue, listing.symbol, trade_id),
        "symbol": listing.symbol,
        "price": format_units(trade.price, listing.precision.price, fixed),
        "size": format_units(trade.qty, listing.precision.base, fixed),
        "side": "Sell" if trade.buyer_is_maker else "Buy",
        "time": str(trade.time_ms),
        "isBlockTrade": False,
        "isRPITrade": False,
        "seq": str(SEQ_BASE + trade_id),
    }


# -- GET /v5/market/instruments-info --------------------------------------------------


async def instruments_info(world: SimWorld, request: web.Request, fault: RequestFault) -> Reply:
    """Serve the listed instruments in the recorded shapes (see `spot_instrument` and
    `linear_instrument`); linear pages with `nextPageCursor`, spot has no such key."""
    query = request.query
    category = _category(world, query, default=None)
    venue = CATEGORIES[category]
    found = world.listings(venue) if venue is not None else []
    symbol = query.get("symbol")
    if symbol is not None:
        found = [item for item in found if item.symbol == symbol]
    if query.get("status", "Trading") != "Trading":
        found = []  # every simulated instrument is trading
    if category == "spot":
        items = sorted(found, key=symbol_id)
        result = {"category": category, "list": [spot_instrument(item) for item in items]}
    else:
        page, cursor = _page(world, query, sorted(found, key=lambda item: item.symbol))
        listed = [linear_instrument(item) for item in page]
        result = {"category": category, "list": listed, "nextPageCursor": cursor}
    return Reply(_ok(world, orjson.dumps(result)))


def _page(
    world: SimWorld, query: Mapping[str, str], found: Sequence[Listing]
) -> tuple[Sequence[Listing], str]:
    """Cut one page from `found` (sorted by symbol) after the cursor's last symbol."""
    limit = _limit(world, query, INSTRUMENTS_LIMIT)
    first = 0
    cursor = query.get("cursor")
    if cursor:
        last = parse_qs(unquote(cursor)).get("last")
        if not last:
            raise _refuse(world, "params error: cursor invalid")
        first = sum(1 for item in found if item.symbol <= last[0])
    page = found[first : first + limit]
    if first + limit >= len(found) or not page:
        return page, ""
    return page, f"first%3D{page[0].symbol}%26last%3D{page[-1].symbol}"


ENDPOINTS: list[Endpoint] = [
    Endpoint("GET", "/v5/market/time", ledger_venue, "bybit", server_time),
    Endpoint("GET", "/v5/market/instruments-info", ledger_venue, "bybit", instruments_info),
    Endpoint("GET", "/v5/market/kline", ledger_venue, "bybit", kline),
    Endpoint("GET", "/v5/market/recent-trade", ledger_venue, "bybit", recent_trade),
]
"""Bybit's v5 market endpoints; each request weighs 1 against the per-IP limit."""
