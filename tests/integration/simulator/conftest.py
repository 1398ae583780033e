"""Binance endpoint fixtures: a paused world at a fixed time, served on 127.0.0.1:0.

`binance_sim` is one such world with the defaults; `binance_sim_factory` starts more,
with `SimConfig` fields as keywords. Sim time stands still unless a test moves it
(`world.clock.step`/`set`), and the rate limiters read a fake wall clock that moves
only when a test says so, so limits and bans are deterministic too.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestServer
from multidict import CIMultiDictProxy

from candlevault.domain.times import parse_time_ms
from candlevault.simulator.binance_rest import ENDPOINTS
from candlevault.simulator.world import SimConfig, SimWorld
from tests.integration.simulator.support import app_for
from tests.support.fake_wall import FakeWall

BINANCE_START_MS = parse_time_ms("2024-01-15T12:34:56.789Z")  # mid-minute: a candle forms
BINANCE_WALL_S = 1_705_276_815.0  # 15 s into a wall-clock minute


@dataclass(frozen=True)
class Served:
    """One reply, read whole: status, headers as sent, body."""

    status: int
    headers: CIMultiDictProxy[str]
    raw_headers: tuple[tuple[bytes, bytes], ...]
    content_type: str
    body: bytes


@dataclass
class BinanceSim:
    """A running simulator world with the Binance endpoints, and a client session on it."""

    world: SimWorld
    wall: FakeWall
    session: aiohttp.ClientSession

    async def get(self, path: str, params: Mapping[str, str | int] | None = None) -> Served:
        """GET `path` and read the whole reply."""
        query = {k: str(v) for k, v in (params or {}).items()}
        async with self.session.get(path, params=query) as response:
            body = await response.read()
            return Served(
                response.status,
                response.headers,
                response.raw_headers,
                response.content_type,
                body,
            )

    async def json(self, path: str, params: Mapping[str, str | int] | None = None) -> Any:
        """GET `path`; fail unless it answers 200; return the decoded body."""
        served = await self.get(path, params)
        assert served.status == 200, served.body
        return orjson.loads(served.body)


StartBinance = Callable[..., Awaitable[BinanceSim]]


@pytest.fixture
async def binance_sim_factory() -> AsyncIterator[StartBinance]:
    """Start the Binance endpoints of a new paused world (SimConfig fields as keywords)."""
    async with contextlib.AsyncExitStack() as stack:

        async def start(**config: Any) -> BinanceSim:
            config.setdefault("start_ms", BINANCE_START_MS)
            wall = FakeWall(BINANCE_WALL_S)
            world = SimWorld(SimConfig(**config), wall=wall)
            world.clock.pause()
            server = TestServer(app_for(world, ENDPOINTS), host="127.0.0.1", port=0)
            await stack.enter_async_context(server)
            session = aiohttp.ClientSession(base_url=str(server.make_url("/")))
            await stack.enter_async_context(session)
            return BinanceSim(world, wall, session)

        yield start


@pytest.fixture
async def binance_sim(binance_sim_factory: StartBinance) -> BinanceSim:
    """A Binance simulator at 2024-01-15T12:34:56.789Z, paused."""
    return await binance_sim_factory()
