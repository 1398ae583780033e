"""Binance-compatible market data: any Binance client can point at candlevault.

`/api/v3/klines` (spot) and `/fapi/v1/klines` (USD-M) take Binance's parameters, page
as Binance does (`service.windows`), end with the forming candle when the window reaches
now, and write rows byte for byte as Binance does (`cache.rows.binance_body`), from
candlevault's layers: cached candles cost no exchange weight. What clients ask before
klines is served too: `exchangeInfo` (the venue's own reply, cached, listing the symbols
candlevault holds), `ping` and `time` (the venue's clock as candlevault tracks it,
brought up on first use: never the local wall clock in its place).

Refusals are Binance's: HTTP 400 with `{"code", "msg"}` in its words (-1100 illegal
characters, -1102 mandatory parameter, -1120 invalid interval, -1121 invalid symbol,
-1130 invalid value; spot-api-docs `errors.md`), so a client's
own error mapping (ccxt's `BadSymbol`, ...) works unchanged. A window candlevault could
not complete (the exchange down for minutes it does not hold) is refused with -1001 and
HTTP 503, as Binance refuses when its backend is unavailable: a Binance client cannot see
our `complete: false`, and would take a short reply for the whole truth. A start after
the end is an empty list on spot and -1023 on USD-M, as the venues answer it (python-binance
PR #1165: "when fetching klines for future markets (not spot), Binance API returns an
error in such condition (-1023)").
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NamedTuple

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from candlevault.api.deps import RuntimeDep
from candlevault.api.schemas import BinanceErrorBody
from candlevault.cache.rows import binance_body
from candlevault.domain.errors import CandlevaultError, ExchangeError, NotFound
from candlevault.domain.timeframes import Timeframe, parse_timeframe, venue_timeframes
from candlevault.domain.venues import Venue
from candlevault.service.runtime import Runtime

_DIGITS = re.compile(r"[0-9]{1,20}")
_SYMBOL = re.compile(r"[A-Z0-9_\-.]{1,50}")
_UTC = frozenset({"0", "+0", "-0", "00:00", "+00:00", "-00:00", "0:00", "+0:00"})
JSON = "application/json"
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": BinanceErrorBody},
    503: {"model": BinanceErrorBody},
}
_UNAVAILABLE: dict[int | str, dict[str, Any]] = {503: {"model": BinanceErrorBody}}


class BinanceRefusal(Exception):
    """A request refused the way Binance refuses it."""

    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status, self.code, self.msg = status, code, msg

    def response(self) -> Response:
        """Return Binance's error body."""
        body = orjson.dumps({"code": self.code, "msg": self.msg})
        return Response(body, self.status, media_type=JSON)


def _illegal(name: str, legal: str) -> BinanceRefusal:
    msg = f"Illegal characters found in parameter '{name}'; legal range is '{legal}'."
    return BinanceRefusal(400, -1100, msg)


def _mandatory(query: Mapping[str, str], name: str) -> str:
    value = query.get(name)
    if not value:
        msg = f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
        raise BinanceRefusal(400, -1102, msg)
    return value


def _optional_int(query: Mapping[str, str], name: str) -> int | None:
    value = query.get(name)
    if value is None:
        return None
    if _DIGITS.fullmatch(value) is None:
        raise _illegal(name, "^[0-9]{1,20}$")
    return int(value)


def _interval(query: Mapping[str, str], venue: Venue) -> Timeframe:
    text = _mandatory(query, "interval")
    try:
        tf = parse_timeframe(text)
    except CandlevaultError:
        raise BinanceRefusal(400, -1120, "Invalid interval.") from None
    if tf not in venue_timeframes(venue) or tf.code != text:
        raise BinanceRefusal(400, -1120, "Invalid interval.")
    return tf


def _unavailable() -> BinanceRefusal:
    msg = "Internal error; unable to process your request. Please try again."
    return BinanceRefusal(503, -1001, msg)


class KlinesQuery(NamedTuple):
    """A klines request's parameters, checked as Binance checks them."""

    symbol: str
    tf: Timeframe
    start: int | None
    end: int | None
    limit: int


def _klines_query(query: Mapping[str, str], venue: Venue, max_limit: int) -> KlinesQuery:
    symbol = _mandatory(query, "symbol")
    if _SYMBOL.fullmatch(symbol) is None:
        raise _illegal("symbol", r"^[\w\-._&&[^a-z]]{1,50}$")
    tf = _interval(query, venue)
    start, end = _optional_int(query, "startTime"), _optional_int(query, "endTime")
    limit = _optional_int(query, "limit")
    if limit is None:
        limit = 500
    elif not 1 <= limit <= max_limit:
        raise BinanceRefusal(400, -1130, "Data sent for parameter 'limit' is not valid.")
    zone = query.get("timeZone")
    if zone is not None and zone not in _UTC:
        raise BinanceRefusal(400, -1130, "Data sent for parameter 'timeZone' is not valid.")
    if start is not None and end is not None and start > end and venue is not Venue.BINANCE:
        raise BinanceRefusal(400, -1023, "Start time is greater than end time.")
    return KlinesQuery(symbol, tf, start, end, limit)


async def klines_response(
    query: Mapping[str, str], runtime: Runtime, venue: Venue, max_limit: int
) -> Response:
    """Answer a klines request (the route's and the fast path's one implementation)."""
    try:
        q = _klines_query(query, venue, max_limit)
        if q.start is not None and q.end is not None and q.start > q.end:
            return Response(b"[]", media_type=JSON)  # spot answers an empty list
        result = await runtime.candles.read(
            venue, q.symbol, q.tf, start_ms=q.start, end_ms=q.end, limit=q.limit
        )
    except BinanceRefusal as e:
        return e.response()
    except NotFound:
        return BinanceRefusal(400, -1121, "Invalid symbol.").response()
    except ExchangeError:
        return _unavailable().response()
    if not result.complete:
        return _unavailable().response()
    return Response(binance_body(result.rows), media_type=JSON)


async def _exchange_info(runtime: Runtime, venue: Venue) -> Response:
    try:
        catalog = await runtime.venues.catalog(venue)
    except ExchangeError:
        return _unavailable().response()
    if catalog.raw is None:
        return BinanceRefusal(503, -1001, "exchange info unavailable").response()
    held = set(runtime.held_symbols(venue))
    doc = orjson.loads(catalog.raw)
    doc["symbols"] = [s for s in doc.get("symbols", []) if s.get("symbol") in held]
    doc["serverTime"] = runtime.now_ms(venue)
    return Response(orjson.dumps(doc), media_type=JSON)


async def _server_time(runtime: Runtime, venue: Venue) -> Response:
    # Bring the venue up first: until its clock is known, Runtime.now_ms falls back to
    # the local wall clock, which is not the venue's (a simulator's may stand still).
    try:
        await runtime.venues.link(venue)
    except ExchangeError:
        return _unavailable().response()
    return Response(orjson.dumps({"serverTime": runtime.now_ms(venue)}), media_type=JSON)


def _router(prefix: str, venue: Venue, max_limit: int, tag: str) -> APIRouter:
    router = APIRouter(prefix=prefix, tags=[tag])

    @router.get("/klines", response_class=Response, responses=_ERRORS, summary="Klines (cached)")
    async def klines(request: Request, runtime: RuntimeDep) -> Response:
        """Binance's klines: `symbol`, `interval`, `startTime`, `endTime`, `limit`
        (default 500), rows byte-compatible with Binance's, served from candlevault."""
        return await klines_response(request.query_params, runtime, venue, max_limit)

    @router.get("/exchangeInfo", response_class=Response, summary="Exchange info")
    async def exchange_info(runtime: RuntimeDep) -> Response:
        """The venue's exchange info, listing the symbols candlevault holds."""
        return await _exchange_info(runtime, venue)

    @router.get("/ping", summary="Ping")
    async def ping() -> dict[str, object]:
        """Binance's connectivity test: `{}`."""
        return {}

    @router.get("/time", response_class=Response, responses=_UNAVAILABLE, summary="Server time")
    async def server_time(runtime: RuntimeDep) -> Response:
        """The venue's clock as candlevault tracks it: `{"serverTime": ms}`."""
        return await _server_time(runtime, venue)

    return router


SPOT_MAX_LIMIT, USDM_MAX_LIMIT = 1000, 1500
spot = _router("/api/v3", Venue.BINANCE, SPOT_MAX_LIMIT, "binance-compatible")
usdm = _router("/fapi/v1", Venue.BINANCE_USDM, USDM_MAX_LIMIT, "binance-usdm-compatible")
