"""`GET /api/v1/market/candles/{symbol}/{timeframe}`: the read path over HTTP.

The body is written from bytes: a small JSON head (orjson) and the rows joined as they
were prebuilt (`cache.rows.api_body`), so a hot read costs a lookup and a join.
"""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Query
from fastapi.responses import Response

from candlevault.api.deps import RuntimeDep, venue_or_default
from candlevault.api.schemas import CandlesBody, ErrorBody
from candlevault.cache.rows import FIELDS, api_body
from candlevault.domain.symbols import parse_symbol
from candlevault.domain.timeframes import timeframe_for_venue
from candlevault.domain.times import parse_time_ms
from candlevault.service.reader import ReadResult, Strategy
from candlevault.service.runtime import Runtime

router = APIRouter(prefix="/api/v1/market", tags=["market"])
_COLUMNS = orjson.dumps(list(FIELDS))


@router.get(
    "/candles/{symbol}/{timeframe}",
    response_class=Response,
    responses={
        200: {"model": CandlesBody, "description": "The candles"},
        400: {"model": ErrorBody, "description": "Bad timeframe, dates or window"},
        404: {"model": ErrorBody, "description": "Unknown venue, or a symbol it does not list"},
        422: {"description": "A parameter of the wrong type or out of range"},
        503: {"model": ErrorBody, "description": "The exchange is needed and unavailable"},
    },
    summary="Candles of a symbol, from the cheapest layer that has them",
)
async def candles(
    runtime: RuntimeDep,
    symbol: str,
    timeframe: str,
    venue: Annotated[str | None, Query(description="Venue; default: the configured one")] = None,
    limit: Annotated[int, Query(ge=1, le=1500, description="Candles at most")] = 500,
    start_time: Annotated[
        str | None, Query(description="First open time: ISO 8601 or epoch ms")
    ] = None,
    end_time: Annotated[
        str | None, Query(description="Last open time: ISO 8601 or epoch ms")
    ] = None,
    cache_strategy: Annotated[
        Strategy,
        Query(
            description="auto: hot, warm, open candle, then the exchange for what the ledger "
            "says is missing; force_fresh: fetch the window again and correct the layers; "
            "cache_only: never the exchange, report what is missing"
        ),
    ] = Strategy.AUTO,
) -> Response:
    """Return the candles opening in the window, as Binance pages them: with a start,
    the oldest `limit` from it; without, the newest `limit` up to the end (default now,
    the open candle last). (Served by `api.fast`, which parses these same parameters
    without FastAPI's per-request machinery; this route documents them.)"""
    return await read_response(
        runtime, symbol, timeframe, venue, limit, start_time, end_time, cache_strategy
    )


async def read_response(
    runtime: Runtime,
    symbol: str,
    timeframe: str,
    venue: str | None,
    limit: int,
    start_time: str | None,
    end_time: str | None,
    strategy: Strategy,
) -> Response:
    """Read and answer (the route's and the fast path's one implementation)."""
    chosen = venue_or_default(runtime, venue)
    result = await runtime.candles.read(
        chosen,
        parse_symbol(symbol),
        timeframe_for_venue(timeframe, chosen),
        start_ms=None if start_time is None else parse_time_ms(start_time),
        end_ms=None if end_time is None else parse_time_ms(end_time),
        limit=limit,
        strategy=strategy,
    )
    return Response(body(result), media_type="application/json")


def body(result: ReadResult) -> bytes:
    """Write a read's JSON body: the head, then the prebuilt rows."""
    window = result.window
    head = orjson.dumps(
        {
            "venue": result.venue.value,
            "symbol": result.symbol,
            "timeframe": result.tf.code,
            "start_time": None if window.empty else window.first_ms,
            "end_time": None if window.empty else window.last_ms,
            "count": len(result.rows),
            "layers": result.layers,
            "complete": result.complete,
            "missing": result.missing.to_pairs(),
            "empty": result.empty.to_pairs(),
            "open_candle": result.forming,
            "warnings": result.warnings,
        }
    )
    return b"".join(
        (head[:-1], b',"columns":', _COLUMNS, b',"candles":', api_body(result.rows), b"}")
    )
