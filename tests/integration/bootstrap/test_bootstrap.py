"""Bootstrap against the simulator over real sockets, into a real SQLite file: the full
history equals the market exactly, in the fewest requests, resumable, and outages and
bad replies end up in the ledger instead of in a loop."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from candlevault.bootstrap.gaps import scan
from candlevault.bootstrap.runner import AnomalyLog, Bootstrap, Progress
from candlevault.domain.candles import Candle
from candlevault.domain.coverage import Backoff
from candlevault.domain.errors import NotFound
from candlevault.domain.timeframes import D1, H1, M1
from candlevault.domain.venues import Venue
from candlevault.exchanges.clock import sim_clock
from candlevault.ingest.writer import Ingestor
from candlevault.storage.sqlite import SqliteStore
from tests.integration.exchanges.venues import START_MS, Sim, binance_client, running_sim

MINUTE = 60_000
DAY = 86_400_000
LISTED_MS = START_MS - START_MS % MINUTE - 3 * DAY + 17 * MINUTE  # three days of history
HISTORY = (START_MS - START_MS % MINUTE - LISTED_MS) // MINUTE  # closed minutes at START
V = Venue.BINANCE


@contextlib.asynccontextmanager
async def store_at(path: Path) -> AsyncIterator[SqliteStore]:
    store = await SqliteStore.open(path / "candles.sqlite3")
    try:
        yield store
    finally:
        await store.aclose()


def bootstrap(sim: Sim, store: SqliteStore, path: Path, **kw: object) -> Bootstrap:
    return Bootstrap(
        binance_client(sim), Ingestor(store), sim.clock, AnomalyLog(path / "a.jsonl"), **kw
    )  # type: ignore[arg-type]


def truth(sim: Sim) -> list[Candle]:
    market = sim.world.market(V, "BTCUSDT")
    assert market is not None
    return [c for c in market.candles(LISTED_MS, START_MS) if c.close_time_ms < START_MS]


async def kline_requests(sim: Sim) -> int:
    return int((await sim.stats())["venues"]["binance"]["requests"].get("/api/v3/klines", 0))


async def test_a_full_bootstrap_is_the_market_exactly_in_the_fewest_requests(
    tmp_path: Path,
) -> None:
    async with running_sim(listed=(("BTCUSDT", LISTED_MS),)) as sim, store_at(tmp_path) as store:
        progress = await bootstrap(sim, store, tmp_path).run("BTCUSDT")
        first = await kline_requests(sim)
        again = await bootstrap(sim, store, tmp_path).run("BTCUSDT")
        second = await kline_requests(sim) - first
        stored = list((await store.read(V, "BTCUSDT", M1)).candles())
        hours = await store.count(V, "BTCUSDT", H1)
        days = await store.count(V, "BTCUSDT", D1)
        coverage = await Ingestor(store).coverage(V, "BTCUSDT")
        expected = truth(sim)
    assert stored == expected
    assert len(expected) == HISTORY
    assert first == math.ceil(HISTORY / 1000) + 1  # + the inception probe (startTime=0)
    assert (progress.candles, progress.failed_windows) == (HISTORY, 0)
    assert second == 0  # nothing missing: nothing asked
    assert again.planned_requests == 0
    assert hours == math.ceil(HISTORY / 60) + 1  # derived, not fetched
    assert days == 4
    assert coverage.inception_ms == LISTED_MS
    assert coverage.checkpoint_ms == START_MS - START_MS % MINUTE


async def test_an_outage_is_recorded_as_confirmed_empty_and_never_asked_again(
    tmp_path: Path,
) -> None:
    dark = (LISTED_MS + DAY, LISTED_MS + DAY + 180 * MINUTE)
    config = {"listed": (("BTCUSDT", LISTED_MS),), "outages": (dark,)}
    async with running_sim(**config) as sim, store_at(tmp_path) as store:
        await bootstrap(sim, store, tmp_path).run("BTCUSDT")
        first = await kline_requests(sim)
        await bootstrap(sim, store, tmp_path).run("BTCUSDT")
        second = await kline_requests(sim) - first
        coverage = await Ingestor(store).coverage(V, "BTCUSDT")
        stored = list((await store.read(V, "BTCUSDT", M1)).candles())
        expected = truth(sim)
    assert stored == expected
    assert not any(dark[0] <= c.open_time_ms < dark[1] for c in stored)
    assert coverage.empty.to_pairs() == [list(dark)]
    assert second == 0


async def test_killed_midway_and_run_again_it_finishes_with_nothing_fetched_twice(
    tmp_path: Path,
) -> None:
    async with running_sim(listed=(("BTCUSDT", LISTED_MS),)) as sim, store_at(tmp_path) as store:
        two_done = asyncio.Event()

        def watch(progress: Progress) -> None:
            if progress.done_requests >= 2:
                two_done.set()

        run = asyncio.create_task(
            bootstrap(sim, store, tmp_path, concurrency=1, on_progress=watch).run("BTCUSDT")
        )
        await two_done.wait()
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run
        present = (await Ingestor(store).coverage(V, "BTCUSDT")).present.minutes
        first = await kline_requests(sim)
        resumed = await bootstrap(sim, store, tmp_path).run("BTCUSDT")
        second = await kline_requests(sim) - first
        stored = list((await store.read(V, "BTCUSDT", M1)).candles())
        expected = truth(sim)
    assert 2000 <= present < HISTORY  # the first run got somewhere, not everywhere
    assert stored == expected
    assert resumed.planned_requests == second == math.ceil((HISTORY - present) / 1000)


async def test_bad_replies_are_refused_recorded_and_filled_by_the_next_run(tmp_path: Path) -> None:
    async with running_sim(listed=(("BTCUSDT", LISTED_MS),)) as sim, store_at(tmp_path) as store:
        await sim.control("/_sim/faults", {"malformed": 0.6})
        faulty = await bootstrap(sim, store, tmp_path).run("BTCUSDT")
        stored_faulty = list((await store.read(V, "BTCUSDT", M1)).candles())
        failed = (await Ingestor(store).coverage(V, "BTCUSDT")).failed
        await sim.control("/_sim/faults", {"malformed": 0.0})
        now_retry = Backoff(base_ms=0, cap_ms=0)
        clean = await bootstrap(sim, store, tmp_path, backoff=now_retry).run("BTCUSDT")
        stored = list((await store.read(V, "BTCUSDT", M1)).candles())
        expected = truth(sim)
    assert faulty.failed_windows > 0
    assert failed
    assert set(stored_faulty) <= set(expected)  # nothing malformed was stored
    assert clean.planned_requests == faulty.failed_windows
    assert stored == expected


async def test_a_symbol_the_venue_does_not_list_is_not_found(tmp_path: Path) -> None:
    async with running_sim() as sim, store_at(tmp_path) as store:
        with pytest.raises(NotFound, match="NOPEUSDT"):
            await bootstrap(sim, store, tmp_path).run("NOPEUSDT")


async def test_after_candlevault_was_down_the_gap_is_found_and_filled_in_fewest_requests(
    tmp_path: Path,
) -> None:
    async with running_sim(listed=(("BTCUSDT", LISTED_MS),)) as sim, store_at(tmp_path) as store:
        await bootstrap(sim, store, tmp_path).run("BTCUSDT")
        await sim.control("/_sim/clock", {"action": "step", "ms": 2 * DAY})  # we were down
        sim.clock = await sim_clock(sim.session, f"{sim.server.url}/_sim/clock")
        before = await kline_requests(sim)
        ingestor = Ingestor(store)
        report = scan(await ingestor.coverage(V, "BTCUSDT"), sim.clock.now_ms())
        filled = await bootstrap(sim, store, tmp_path).run("BTCUSDT")
        after = scan(await ingestor.coverage(V, "BTCUSDT"), sim.clock.now_ms())
        requests = await kline_requests(sim) - before
        stored = await store.count(V, "BTCUSDT", M1)
    assert report is not None
    assert after is not None
    assert report.missing_minutes == 2 * 1440
    assert report.missing == [[START_MS - START_MS % MINUTE, report.end_ms]]
    assert report.requests_to_fill == requests == filled.planned_requests == 3
    assert after.missing == []
    assert stored == HISTORY + 2 * 1440
