"""A running simulator and candlevault's clients on it, for the cold layer's tests.

`running_sim` starts a whole `candlevault sim` world on 127.0.0.1:0 (every venue, the
archives and the controls), paused at `START_MS` unless told otherwise, and reads its
clock the way candlevault does (`/_sim/clock`). `binance_client` builds the real client
stack on it: `VenueHttp` with a real limiter, short retry delays so fault tests are fast.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from candlevault.domain.clock import AnchoredClock
from candlevault.domain.times import parse_time_ms
from candlevault.domain.venues import Venue
from candlevault.exchanges.binance.rest import BinanceRest
from candlevault.exchanges.clock import sim_clock
from candlevault.exchanges.http import Retry, VenueHttp
from candlevault.exchanges.ratelimit import USED_WEIGHT_HEADER, WeightLimiter
from candlevault.simulator.server import SimServer
from candlevault.simulator.world import SimConfig, SimWorld

START_MS = parse_time_ms("2024-01-15T12:34:56.789Z")  # mid-minute: a candle is forming
FAST_RETRY = Retry(attempts=3, base_s=0.001, cap_s=0.01)


@dataclass
class Sim:
    """A running simulator, a client session, and the exchange clock read from it."""

    world: SimWorld
    server: SimServer
    session: aiohttp.ClientSession
    clock: AnchoredClock

    async def control(self, path: str, body: dict[str, Any]) -> Any:
        """POST a control body (e.g. `/_sim/faults`); return the decoded reply."""
        async with self.session.post(self.server.url + path, data=orjson.dumps(body)) as r:
            assert r.status == 200, await r.text()
            return orjson.loads(await r.read())

    async def stats(self) -> Any:
        """Return the simulator's request ledger (`/_sim/stats`)."""
        async with self.session.get(self.server.url + "/_sim/stats") as reply:
            return orjson.loads(await reply.read())


@contextlib.asynccontextmanager
async def running_sim(*, paused: bool = True, **config: Any) -> AsyncIterator[Sim]:
    """Start a simulator world (SimConfig fields as keywords) and a session on it."""
    config.setdefault("start_ms", START_MS)
    world = SimWorld(SimConfig(**config))
    if paused:
        world.clock.pause()
    async with SimServer(world) as server, aiohttp.ClientSession() as session:
        clock = await sim_clock(session, f"{server.url}/_sim/clock")
        yield Sim(world, server, session, clock)


def binance_client(
    sim: Sim, venue: Venue = Venue.BINANCE, retry: Retry = FAST_RETRY
) -> BinanceRest:
    """The real Binance client stack (limiter, HTTP, client) on the simulator."""
    limiter = WeightLimiter()
    http = VenueHttp(
        sim.session,
        sim.server.url,
        limiter,
        venue.value,
        weight_header=USED_WEIGHT_HEADER,
        retry=retry,
    )
    return BinanceRest(venue, http, sim.clock, on_limits=limiter.set_limit)
