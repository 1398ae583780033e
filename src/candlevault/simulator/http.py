"""The contract between the simulator's endpoints and what every request goes through.

Each venue module declares `Endpoint`s: a path, the venue it belongs to, its weight
and a handler that turns a request into a `Reply` (or raises `VenueError` with the
venue's own error envelope). `wrap` puts each handler behind the same sequence a real
venue applies, so no endpoint can forget a step: a venue gone dark answers 503; the
rate limiter admits or refuses (Binance 429/418 with `Retry-After` and the weight
header, Bybit 403 and a lock-out); injected faults (5xx, slow, time-out, truncated
body, one malformed kline row) strike; the ledger counts what was asked and served.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

import orjson
from aiohttp import web

from candlevault.simulator.faults import NO_FAULT, RequestFault
from candlevault.simulator.world import SimWorld

Limiter = Literal["binance", "usdm", "bybit", "none"]
CANDLES = web.ResponseKey("candles", int)  # klines served, for the ledger


@dataclass(frozen=True, slots=True)
class Reply:
    """A successful answer; `candles` counts klines served, for the ledger."""

    body: bytes
    candles: int = 0
    content_type: str = "application/json"


class VenueError(Exception):
    """An error answered in the venue's own words (status and exact body)."""

    def __init__(self, status: int, body: object, content_type: str = "application/json") -> None:
        self.status = status
        self.body = body if isinstance(body, bytes) else orjson.dumps(body)
        self.content_type = content_type
        super().__init__(f"{status} {self.body[:200]!r}")


Handler = Callable[[SimWorld, web.Request, RequestFault], Awaitable[Reply]]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One REST endpoint of a venue.

    `venue` names the ledger entry (a function of the request where one path serves
    several venues, as Bybit's `category` does); `weight` is the request weight the
    venue documents (a function of the request where it depends on `limit`).
    """

    method: str
    path: str
    venue: str | Callable[[web.Request], str]
    limiter: Limiter
    handler: Handler
    weight: int | Callable[[web.Request], int] = 1


def wrap(
    world: SimWorld, endpoint: Endpoint
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Return the aiohttp handler that serves `endpoint` the way the venue would."""

    async def serve(request: web.Request) -> web.StreamResponse:
        venue = endpoint.venue if isinstance(endpoint.venue, str) else endpoint.venue(request)
        weight = endpoint.weight if isinstance(endpoint.weight, int) else endpoint.weight(request)
        headers: dict[str, str] = {}
        response = await _answer(world, endpoint, request, venue, weight, headers)
        response.headers.update(headers)
        # Weight counts whatever the answer, as the venue's own counter does.
        world.stats.record(venue, endpoint.path, response.status, weight, _candles(response))
        return response

    return serve


async def _answer(
    world: SimWorld,
    endpoint: Endpoint,
    request: web.Request,
    venue: str,
    weight: int,
    headers: dict[str, str],
) -> web.StreamResponse:
    if world.faults.is_dark(venue, world.now_ms()):
        return web.Response(status=503, text="Service Unavailable")
    refused = _admit(world, endpoint.limiter, request.remote or "?", weight, headers)
    if refused is not None:
        return refused
    fault = world.faults.decide(venue, endpoint.path) if endpoint.limiter != "none" else NO_FAULT
    if fault.kind == "error":
        return web.Response(status=fault.status or 500, text="Internal Server Error")
    if fault.kind in ("slow", "timeout"):
        await asyncio.sleep(fault.delay_ms / 1000)
        if fault.kind == "timeout":  # the client sees the connection drop, no reply
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=504)
    try:
        reply = await endpoint.handler(world, request, fault)
    except VenueError as e:
        return web.Response(status=e.status, body=e.body, content_type=e.content_type)
    body = fault.cut(reply.body) if fault.kind == "truncate" else reply.body
    response = web.Response(body=body, content_type=reply.content_type)
    response[CANDLES] = reply.candles
    return response


def _admit(
    world: SimWorld, limiter: Limiter, ip: str, weight: int, headers: dict[str, str]
) -> web.Response | None:
    """Apply the venue's rate limit; return the refusal, or None to serve."""
    if limiter == "bybit":
        verdict = world.bybit.admit(ip)
        if verdict.admitted:
            return None
        # Bybit documents no Retry-After: a locked-out client just waits out the 10 min.
        return web.Response(status=verdict.status, text=verdict.body)
    if limiter == "none":
        return None
    admission = (world.binance if limiter == "binance" else world.usdm).admit(ip, weight)
    headers.update(admission.headers(lower_case=limiter == "usdm"))
    if admission.admitted:
        return None
    return web.Response(
        status=admission.status, body=orjson.dumps(admission.body), content_type="application/json"
    )


def _candles(response: web.StreamResponse) -> int:
    count: int = response.get(CANDLES, 0)
    return count
