"""Bootstrap under the venue's real limits, on a wall clock that moves only when someone
waits on it (the simulator's limiter and ours read the same one): no 429 while the
budget is known, and a ban stops the run until it ends."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from candlevault.bootstrap.runner import AnomalyLog, Bootstrap
from candlevault.domain.clock import AnchoredClock
from candlevault.domain.errors import Banned
from candlevault.domain.timeframes import M1
from candlevault.domain.venues import Venue
from candlevault.exchanges.binance.rest import BinanceRest
from candlevault.exchanges.clock import sim_clock
from candlevault.exchanges.http import Retry, VenueHttp
from candlevault.exchanges.ratelimit import USED_WEIGHT_HEADER, WeightLimiter
from candlevault.ingest.writer import Ingestor
from candlevault.simulator.server import SimServer
from candlevault.simulator.world import SimConfig, SimWorld
from tests.integration.bootstrap.test_bootstrap import LISTED_MS, store_at, truth
from tests.integration.exchanges.venues import START_MS
from tests.support.fake_wall import FakeWall

V = Venue.BINANCE


@dataclass
class Limited:
    world: SimWorld
    server: SimServer
    session: aiohttp.ClientSession
    wall: FakeWall
    clock: AnchoredClock

    def client(self) -> BinanceRest:
        limiter = WeightLimiter(wall_ms=self.wall.ms, sleep=self.wall.sleep)
        http = VenueHttp(
            self.session,
            self.server.url,
            limiter,
            V.value,
            weight_header=USED_WEIGHT_HEADER,
            retry=Retry(attempts=3, sleep=self.wall.sleep, jitter=lambda: 0.5),
            wall_ms=lambda: int(self.wall.ms()),
        )
        return BinanceRest(V, http, self.clock, on_limits=limiter.set_limit)

    async def stats(self) -> Any:
        async with self.session.get(self.server.url + "/_sim/stats") as reply:
            return orjson.loads(await reply.read())["venues"]["binance"]


@contextlib.asynccontextmanager
async def limited(weight_per_minute: int) -> AsyncIterator[Limited]:
    wall = FakeWall()
    config = SimConfig(
        start_ms=START_MS,
        listed=(("BTCUSDT", LISTED_MS),),
        binance_weight_per_minute=weight_per_minute,
    )
    world = SimWorld(config, wall=wall)
    world.clock.pause()
    async with SimServer(world) as server, aiohttp.ClientSession() as session:
        clock = await sim_clock(session, f"{server.url}/_sim/clock")
        yield Limited(world, server, session, wall, clock)


def runner(sim: Limited, ingestor: Ingestor, path: Path) -> Bootstrap:
    return Bootstrap(sim.client(), ingestor, sim.clock, AnomalyLog(path / "a.jsonl"))


async def test_a_budget_smaller_than_the_history_is_waited_out_with_no_429(
    tmp_path: Path,
) -> None:
    async with limited(weight_per_minute=24) as sim, store_at(tmp_path) as store:
        before = sim.wall.t
        await runner(sim, Ingestor(store), tmp_path).run("BTCUSDT")
        waited = sim.wall.t - before
        stats = await sim.stats()
        stored = list((await store.read(V, "BTCUSDT", M1)).candles())
    assert stored == truth(sim)  # type: ignore[arg-type]
    assert stats["status"]["429"] == 0
    assert stats["status"]["418"] == 0
    assert stats["weight"] > 24  # more than one window's worth ...
    assert waited >= 30  # ... so the limiter waited for the next window


async def test_a_ban_stops_the_run_until_it_ends_then_the_next_run_finishes(
    tmp_path: Path,
) -> None:
    async with limited(weight_per_minute=6000) as sim, store_at(tmp_path) as store:
        hammer = f"{sim.server.url}/api/v3/exchangeInfo"
        for _ in range(400):  # another program on our IP ignores its 429s: a 418 ban
            async with sim.session.get(hammer) as reply:
                if reply.status == 418:
                    break
        assert reply.status == 418
        ingestor = Ingestor(store)
        with pytest.raises(Banned) as banned:
            await runner(sim, ingestor, tmp_path).run("BTCUSDT")
        assert banned.value.retry_after is not None
        sim.wall.t += banned.value.retry_after + 1  # the ban runs out
        await runner(sim, ingestor, tmp_path).run("BTCUSDT")
        stored = list((await store.read(V, "BTCUSDT", M1)).candles())
    assert stored == truth(sim)  # type: ignore[arg-type]
