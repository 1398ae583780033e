"""Bootstrap from data.binance.vision files first (the simulator's), REST for the rest:
the same history as REST alone, in a fraction of the API weight, and refused files
fall back to REST."""

from __future__ import annotations

import math
from pathlib import Path

from candlevault.bootstrap.runner import AnomalyLog, Bootstrap
from candlevault.domain.candles import Candle
from candlevault.domain.timeframes import M1
from candlevault.domain.times import parse_time_ms
from candlevault.domain.venues import Venue
from candlevault.exchanges.binance.archive_client import BinanceArchiveClient
from candlevault.ingest.writer import Ingestor
from tests.integration.bootstrap.test_bootstrap import kline_requests, store_at
from tests.integration.exchanges.venues import START_MS, Sim, binance_client, running_sim

MINUTE = 60_000
LISTED_MS = parse_time_ms("2023-12-05T07:13:00Z")  # December's file holds fewer rows
HISTORY = (START_MS - START_MS % MINUTE - LISTED_MS) // MINUTE
V = Venue.BINANCE


def truth(sim: Sim) -> list[Candle]:
    market = sim.world.market(V, "BTCUSDT")
    assert market is not None
    return [c for c in market.candles(LISTED_MS, START_MS) if c.close_time_ms < START_MS]


def with_archives(sim: Sim, ingestor: Ingestor, path: Path) -> Bootstrap:
    archives = BinanceArchiveClient(sim.session, sim.server.url, sleep=_no_wait)
    return Bootstrap(
        binance_client(sim), ingestor, sim.clock, AnomalyLog(path / "a.jsonl"), archives=archives
    )


async def _no_wait(seconds: float) -> None:
    return None


async def test_archives_first_give_the_same_history_for_a_fraction_of_the_weight(
    tmp_path: Path,
) -> None:
    async with running_sim(listed=(("BTCUSDT", LISTED_MS),)) as sim, store_at(tmp_path) as store:
        progress = await with_archives(sim, Ingestor(store), tmp_path).run("BTCUSDT")
        requests = await kline_requests(sim)
        stored = list((await store.read(V, "BTCUSDT", M1)).candles())
        expected = truth(sim)
    assert stored == expected
    files = 1 + 14  # December 2023 as a monthly file, then 1-14 January as daily files
    assert progress.archive_files == files
    assert progress.archive_refused == []
    today = math.ceil((START_MS % 86_400_000) / MINUTE / 1000)  # 15 January so far, by REST
    assert requests == 1 + files + today  # inception probe, one spot check a file, REST
    assert requests < math.ceil(HISTORY / 1000) / 3


async def test_a_refused_file_is_reported_and_its_minutes_come_from_rest(tmp_path: Path) -> None:
    config = {"listed": (("BTCUSDT", LISTED_MS),)}
    async with running_sim(**config) as sim, store_at(tmp_path) as store:
        await sim.control("/_sim/faults", {"archive_bad_checksum": 1.0})
        progress = await with_archives(sim, Ingestor(store), tmp_path).run("BTCUSDT")
        stored = list((await store.read(V, "BTCUSDT", M1)).candles())
        expected = truth(sim)
    assert stored == expected
    assert progress.archive_files == 0
    assert len(progress.archive_refused) == 15
    assert all("checksum" in reason for _, reason in progress.archive_refused)
