"""The candle reads answered without FastAPI's per-request machinery: the hot path.

A hot read is ~30 µs of our own work; FastAPI's routing, parameter validation and
dependency solving cost several times that per request (the serve benchmark: 2,700
req/s through the route against ~8,500 for a bare endpoint returning the same bytes).
So this ASGI middleware answers `GET /api/v1/market/candles/{symbol}/{timeframe}`,
`/api/v3/klines` and `/fapi/v1/klines` itself: it splits the path, parses the few query
parameters by hand (with the same refusals as the documented routes: 422 naming the
parameter, domain errors as `{"detail"}`, Binance's own codes on its routes) and calls
the same functions the routes call (`market.read_response`, `binance.klines_response`).
Everything else goes to FastAPI, whose routes also document these three in OpenAPI.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qsl, unquote

import orjson
from fastapi import FastAPI, HTTPException
from fastapi.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from candlevault.api.errors import json_error, status_of
from candlevault.api.routes.binance import SPOT_MAX_LIMIT, USDM_MAX_LIMIT, klines_response
from candlevault.api.routes.market import read_response
from candlevault.domain.errors import CandlevaultError
from candlevault.domain.venues import Venue
from candlevault.service.reader import Strategy

log = logging.getLogger(__name__)
CANDLES = "/api/v1/market/candles/"
KLINES = {
    "/api/v3/klines": (Venue.BINANCE, SPOT_MAX_LIMIT),
    "/fapi/v1/klines": (Venue.BINANCE_USDM, USDM_MAX_LIMIT),
}
MAX_LIMIT = 1500
STRATEGIES = {s.value: s for s in Strategy}


class Invalid(Exception):
    """A query parameter FastAPI would refuse with 422."""

    def __init__(self, name: str, kind: str, msg: str, value: str) -> None:
        super().__init__(msg)
        self.detail = [{"type": kind, "loc": ["query", name], "msg": msg, "input": value}]


class FastReads:
    """ASGI middleware in front of the app (see the module docstring)."""

    def __init__(self, app: ASGIApp, root: FastAPI) -> None:
        self.app = app
        self.root = root

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer a candle read, or pass the request on."""
        if scope["type"] == "http" and scope["method"] == "GET":
            path: str = scope["path"]
            if path.startswith(CANDLES) or path in KLINES:
                response = await self._answer(path, scope)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _answer(self, path: str, scope: Scope) -> Response:
        query = dict(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True))
        runtime = self.root.state.runtime
        try:
            if path in KLINES:
                venue, max_limit = KLINES[path]
                return await klines_response(query, runtime, venue, max_limit)
            parts = path[len(CANDLES) :].split("/")
            if len(parts) != 2 or not all(parts):
                return json_error(404, "Not Found")
            symbol, timeframe = (unquote(p) for p in parts)
            return await read_response(
                runtime,
                symbol,
                timeframe,
                query.get("venue"),
                _limit(query.get("limit")),
                query.get("start_time"),
                query.get("end_time"),
                _strategy(query.get("cache_strategy")),
            )
        except Invalid as e:
            body = orjson.dumps({"detail": e.detail})
            return Response(body, 422, media_type="application/json")
        except CandlevaultError as e:
            return _domain(e)
        except HTTPException as e:
            return json_error(e.status_code, str(e.detail), dict(e.headers or {}))
        except Exception as e:  # a bug: say so in a line, never a traceback to the client
            log.exception("unexpected error on %s", path)
            return json_error(500, f"internal error: {type(e).__name__}")


def _limit(text: str | None) -> int:
    if text is None:
        return 500
    try:
        value = int(text)
    except ValueError:
        raise Invalid(
            "limit",
            "int_parsing",
            "Input should be a valid integer, unable to parse string as an integer",
            text,
        ) from None
    if value < 1:
        raise Invalid(
            "limit", "greater_than_equal", "Input should be greater than or equal to 1", text
        )
    if value > MAX_LIMIT:
        raise Invalid(
            "limit", "less_than_equal", f"Input should be less than or equal to {MAX_LIMIT}", text
        )
    return value


def _strategy(text: str | None) -> Strategy:
    if text is None:
        return Strategy.AUTO
    found = STRATEGIES.get(text)
    if found is None:
        names = ", ".join(f"'{s}'" for s in STRATEGIES)
        raise Invalid("cache_strategy", "enum", f"Input should be {names}", text)
    return found


def _domain(error: CandlevaultError) -> Response:
    headers: dict[str, Any] | None = None
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        headers = {"Retry-After": str(max(1, round(retry_after)))}
    return json_error(status_of(error), str(error), headers)
