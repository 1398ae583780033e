"""The rate limiters against the simulator on port 0, over real sockets.

The simulator and the limiter read one wall clock that runs SPEED times faster than real
time (both take it injected), so a one-minute Binance window passes in a second and
bans and lock-outs last seconds. The client in `send` is a plain aiohttp one doing what
the venue clients must: through the limiter, `observe` every reply, `pause` on a 429's
`Retry-After`, `ban` on a 418 or a 403, then try again.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
import pytest

from candlevault.domain.times import parse_time_ms
from candlevault.domain.venues import Venue
from candlevault.exchanges.ratelimit import (
    USED_WEIGHT_HEADER,
    RateLimiter,
    RollingLimiter,
    WeightLimiter,
    interval_ms,
)
from candlevault.exchanges.weights import request_weight
from candlevault.simulator.server import SimServer
from candlevault.simulator.world import SimConfig, SimWorld

SPEED = 60.0  # wall seconds per real second
MINUTE_S = 1_705_276_800.0  # 2024-01-15T00:00:00Z, the start of a wall-clock minute
IP = "127.0.0.1"
SPOT_KLINES = ("/api/v3/klines", {"symbol": "BTCUSDT", "interval": "1m", "limit": "5"})
BYBIT_KLINE = ("/v5/market/kline", {"category": "spot", "symbol": "BTCUSDT", "interval": "1"})
BANNED_UNTIL = re.compile(rb"banned until (\d+)")


class FastWall:
    """A wall clock running SPEED times faster than real time, from a settable origin."""

    def __init__(self, origin_s: float) -> None:
        self.set(origin_s)

    def set(self, origin_s: float) -> None:
        self._origin_s, self._t0 = origin_s, time.monotonic()

    def seconds(self) -> float:
        return self._origin_s + (time.monotonic() - self._t0) * SPEED

    def ms(self) -> float:
        return self.seconds() * 1000

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds / SPEED)


@dataclass(frozen=True)
class Reply:
    status: int
    used: int | None  # X-MBX-USED-WEIGHT-1M
    retry_after_s: float | None
    sent_ms: float
    replied_ms: float
    body: bytes


@dataclass
class Sim:
    world: SimWorld
    wall: FastWall
    session: aiohttp.ClientSession
    lockout_ms: float = 600_000.0
    replies: list[Reply] = field(default_factory=list)

    async def raw(self, path: str, params: dict[str, str] | None = None) -> int:
        """GET past any limiter: another process on the same IP."""
        async with self.session.get(path, params=params) as response:
            await response.read()
            return response.status

    async def ledger(self, venue: str) -> dict[str, Any]:
        async with self.session.get("/_sim/stats") as response:
            found: dict[str, Any] = orjson.loads(await response.read())["venues"][venue]
            return found


async def send(
    sim: Sim, limiter: RateLimiter, path: str, params: dict[str, str], weight: int
) -> Reply:
    """One request the way a venue client must make it; retried after a 429 or a ban."""
    while True:
        async with (
            limiter.sending(weight) as permit,
            sim.session.get(path, params=params) as response,
        ):
            body = await response.read()
            header = response.headers.get(USED_WEIGHT_HEADER)
            retry_after = response.headers.get("Retry-After")
            now = sim.wall.ms()
            # Block, then settle, with no await between: no waiter may slip in.
            if response.status == 429 and retry_after is not None:
                limiter.pause(float(retry_after))
            elif response.status == 418:
                found = BANNED_UNTIL.search(body)
                assert found is not None, body
                limiter.ban(int(found[1]))
            elif response.status == 403:
                limiter.ban(now + sim.lockout_ms)
            limiter.observe(int(header) if header else None, permit)
        used = int(header) if header else None
        wait = float(retry_after) if retry_after else None
        reply = Reply(response.status, used, wait, permit.sent_ms, now, body)
        sim.replies.append(reply)
        if reply.status == 200:
            return reply
        assert reply.status in (429, 418, 403), reply


StartSim = Callable[..., Awaitable[Sim]]


@pytest.fixture
async def start_sim() -> AsyncIterator[StartSim]:
    """Start a paused simulator world (SimConfig fields as keywords) on a fast wall clock."""
    async with contextlib.AsyncExitStack() as stack:

        async def start(**config: Any) -> Sim:
            wall = FastWall(MINUTE_S)
            start_ms = parse_time_ms("2024-01-15T12:00Z")
            world = SimWorld(SimConfig(start_ms=start_ms, **config), wall=wall.seconds)
            world.clock.pause()
            server = await stack.enter_async_context(SimServer(world))
            session = aiohttp.ClientSession(base_url=server.url)
            await stack.enter_async_context(session)
            return Sim(world, wall, session)

        yield start


def binance_limiter(sim: Sim, limit: int = 6000) -> WeightLimiter:
    return WeightLimiter(limit, wall_ms=sim.wall.ms, sleep=sim.wall.sleep)


def window_of(t_ms: float) -> int:
    return math.floor(t_ms / 60_000)


async def test_a_burst_of_klines_spends_each_window_whole_without_a_429(
    start_sim: StartSim,
) -> None:
    sim = await start_sim(binance_weight_per_minute=120)
    limiter = binance_limiter(sim)  # the documented default, until exchange info says
    sim.wall.set(MINUTE_S + 5)
    path = "/api/v3/exchangeInfo"
    await send(sim, limiter, path, {"symbol": "BTCUSDT"}, request_weight(Venue.BINANCE, path))
    info = orjson.loads(sim.replies[-1].body)
    weight = next(r for r in info["rateLimits"] if r["rateLimitType"] == "REQUEST_WEIGHT")
    limiter.set_limit(weight["limit"], interval_ms(weight["interval"], weight["intervalNum"]))

    cost = request_weight(Venue.BINANCE, SPOT_KLINES[0])
    await asyncio.gather(*(send(sim, limiter, *SPOT_KLINES, cost) for _ in range(200)))

    assert {r.status for r in sim.replies} == {200}
    ledger = await sim.ledger("binance")
    assert (ledger["status"]["429"], ledger["status"]["418"]) == (0, 0)
    assert ledger["weight"] == 20 + 200 * 2
    # The server's count per window: the highest header of a request sent and answered in
    # it. Work waited through every window but the last, so each must be (nearly) full.
    counted: dict[int, int] = {}
    for r in sim.replies:
        if window_of(r.sent_ms) == window_of(r.replied_ms) and r.used is not None:
            w = window_of(r.sent_ms)
            counted[w] = max(counted.get(w, 0), r.used)
    windows = range(window_of(sim.replies[0].sent_ms), window_of(sim.replies[-1].sent_ms))
    assert len(windows) >= 3
    assert all(counted.get(w, 0) >= 0.9 * 120 for w in windows), counted


async def test_a_429_is_waited_out_and_never_becomes_a_418(start_sim: StartSim) -> None:
    sim = await start_sim(binance_weight_per_minute=40)
    sim.wall.set(MINUTE_S + 10)
    assert [await sim.raw("/api/v3/exchangeInfo") for _ in range(2)] == [200, 200]  # 40 of 40
    limiter = binance_limiter(sim, 40)

    await asyncio.gather(*(send(sim, limiter, *SPOT_KLINES, 2) for _ in range(10)))

    refused = [r for r in sim.replies if r.status != 200]
    assert [r.status for r in refused] == [429]  # the probe found out; nobody else went
    assert refused[0].retry_after_s is not None
    resumed = min(r.sent_ms for r in sim.replies if r.status == 200)
    assert resumed >= refused[0].replied_ms + refused[0].retry_after_s * 1000
    assert window_of(resumed) == window_of(MINUTE_S * 1000) + 1
    ledger = await sim.ledger("binance")
    assert (ledger["status"]["200"], ledger["status"]["429"], ledger["status"]["418"]) == (
        12,
        1,
        0,
    )
    assert limiter.stats().pauses == 1


async def test_a_418_ban_stops_every_request_until_it_ends(start_sim: StartSim) -> None:
    sim = await start_sim(binance_weight_per_minute=40, ban_base_s=120.0)
    sim.wall.set(MINUTE_S + 10)
    statuses = [await sim.raw("/api/v3/exchangeInfo") for _ in range(4)]
    assert statuses == [200, 200, 429, 418]  # another process ignored its 429: IP banned
    limiter = binance_limiter(sim, 40)

    await asyncio.gather(*(send(sim, limiter, *SPOT_KLINES, 2) for _ in range(10)))

    banned = [r for r in sim.replies if r.status == 418]
    assert len(banned) == 1  # only the probe met the ban
    found = BANNED_UNTIL.search(banned[0].body)
    assert found is not None
    until_ms = int(found[1])
    assert until_ms >= (MINUTE_S + 10 + 120) * 1000 - 1000
    served = [r for r in sim.replies if r.status == 200]
    assert len(served) == 10
    assert min(r.sent_ms for r in served) >= until_ms
    ledger = await sim.ledger("binance")
    assert (ledger["status"]["418"], ledger["status"]["429"]) == (2, 1)
    assert limiter.stats().bans == 1


async def test_bybit_fills_its_rolling_window_and_never_gets_a_403(start_sim: StartSim) -> None:
    sim = await start_sim(bybit_requests_per_5s=20)
    limiter = RollingLimiter(wall_ms=sim.wall.ms, sleep=sim.wall.sleep)
    limiter.set_limit(20)  # what this IP may send; Bybit publishes no figure to read
    peaks: list[int] = []

    async def one() -> None:
        await send(sim, limiter, *BYBIT_KLINE, 1)
        peaks.append(sim.world.bybit.used(IP))  # the simulator's own count, now

    started = sim.wall.ms()
    await asyncio.gather(*(one() for _ in range(70)))
    elapsed_s = (sim.wall.ms() - started) / 1000

    assert {r.status for r in sim.replies} == {200}
    ledger = await sim.ledger("bybit-spot")
    assert ledger["status"]["200"] == 70
    assert ledger["status"].get("403", 0) == 0
    assert max(peaks) == 20  # the window was used whole
    # Four batches of 20 need three whole windows waited (an upper bound would time the
    # machine, not the limiter: it flaked under load at 60x speed).
    assert elapsed_s >= 15


async def test_bybit_lock_out_is_waited_out_whole(start_sim: StartSim) -> None:
    sim = await start_sim(bybit_requests_per_5s=20, bybit_lockout_s=30.0)
    sim.lockout_ms = 30_000.0
    statuses = [await sim.raw(*BYBIT_KLINE) for _ in range(21)]
    assert statuses == [200] * 20 + [403]  # another process on the IP: locked out
    limiter = RollingLimiter(20, wall_ms=sim.wall.ms, sleep=sim.wall.sleep)

    await asyncio.gather(*(send(sim, limiter, *BYBIT_KLINE, 1) for _ in range(5)))

    first_refusal_ms = min(r.replied_ms for r in sim.replies if r.status == 403)
    later = [r for r in sim.replies if r.sent_ms > first_refusal_ms]
    assert [r.status for r in later] == [200] * 5  # nothing went during the lock-out
    assert all(r.sent_ms >= first_refusal_ms + sim.lockout_ms for r in later)
    assert limiter.stats().bans >= 1
    ledger = await sim.ledger("bybit-spot")
    assert (ledger["status"]["200"], ledger["status"]["403"]) == (25, 6)
