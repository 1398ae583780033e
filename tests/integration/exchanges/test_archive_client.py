"""The archive client against the simulator's data.binance.vision on a real socket.

A verified file must hold exactly the candles the same simulator serves over REST, so an
archive import and a REST bootstrap store the same thing. Faults are switched on in the
world; retries are driven by an injected sleep that moves the (paused) sim clock, so a
dark window ends without the test waiting for anything.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from candlevault.domain.candles import Candle, parse_kline_row
from candlevault.domain.columns import columns_from
from candlevault.domain.decimals import Precision
from candlevault.domain.errors import ExchangeRejected, ExchangeUnavailable
from candlevault.domain.timeframes import H1, HOUR_MS, M1, MINUTE_MS, Timeframe
from candlevault.domain.times import parse_time_ms
from candlevault.domain.venues import Venue
from candlevault.exchanges.binance.archive import ArchiveRef, Market
from candlevault.exchanges.binance.archive_client import (
    BinanceArchiveClient,
    Missing,
    Rejected,
    Verified,
)
from candlevault.simulator.server import SimServer
from candlevault.simulator.world import SimConfig, SimWorld

NOW = parse_time_ms("2025-01-20T00:00Z")
SOL_LISTED = parse_time_ms("2024-11-30T20:00Z")  # overridden here: November ends 4 h later
VENUES: dict[Market, Venue] = {"spot": Venue.BINANCE, "um": Venue.BINANCE_USDM}
REST_PATHS: dict[Market, str] = {"spot": "/api/v3/klines", "um": "/fapi/v1/klines"}


@dataclass
class Sim:
    """A running simulator, a session on it, and the sleeps the client asked for."""

    world: SimWorld
    url: str
    session: aiohttp.ClientSession
    slept: list[float] = field(default_factory=list)
    step_ms: int = 0  # how far each injected sleep moves the sim clock

    def client(self, url: str | None = None, **options: Any) -> BinanceArchiveClient:
        async def sleep(seconds: float) -> None:
            self.slept.append(seconds)
            self.world.clock.step(self.step_ms)

        return BinanceArchiveClient(
            self.session, url or self.url, sleep=sleep, jitter=lambda: 0.5, **options
        )

    def listing(self, ref: ArchiveRef) -> tuple[Precision, int]:
        view = self.world.view(VENUES[ref.market], ref.symbol)
        assert view is not None
        return view.market.listing.precision, view.market.listing.listed_ms

    async def rest_klines(self, ref: ArchiveRef) -> list[Candle]:
        """The simulator's REST klines opening in `ref`'s span, paged 1000 at a time."""
        precision, _ = self.listing(ref)
        out: list[Candle] = []
        start = ref.start_ms
        while True:
            params = {"symbol": ref.symbol, "interval": ref.interval.code, "limit": "1000",
                      "startTime": str(start), "endTime": str(ref.end_ms - 1)}  # fmt: skip
            async with self.session.get(self.url + REST_PATHS[ref.market], params=params) as r:
                assert r.status == 200, await r.text()
                rows = orjson.loads(await r.read())
            out += [parse_kline_row(row, precision) for row in rows]
            if len(rows) < 1000:
                return out
            start = out[-1].open_time_ms + 1


@pytest.fixture
async def sim() -> AsyncIterator[Sim]:
    world = SimWorld(SimConfig(seed=5, start_ms=NOW, listed=(("SOLUSDT", SOL_LISTED),)))
    world.clock.pause()
    async with SimServer(world) as server, aiohttp.ClientSession() as session:
        yield Sim(world, server.url, session)


def ref_of(market: Market, symbol: str, tf: Timeframe, when: str) -> ArchiveRef:
    """The daily file of 'YYYY-MM-DD' or the monthly file of 'YYYY-MM'."""
    if len(when) == len("YYYY-MM"):
        return ArchiveRef(market, symbol, tf, "monthly", date.fromisoformat(f"{when}-01"))
    return ArchiveRef(market, symbol, tf, "daily", date.fromisoformat(when))


async def verify(sim: Sim, ref: ArchiveRef, **options: Any) -> Verified | Missing | Rejected:
    precision, listed = sim.listing(ref)
    return await sim.client().fetch_verified(ref, precision, listed, **options)


# -- verified files equal REST --------------------------------------------------------


@pytest.mark.parametrize(
    ("ref", "rows", "unit", "header"),
    [
        (ref_of("spot", "BTCUSDT", M1, "2025-01-15"), 1440, "us", False),
        (ref_of("um", "ETHUSDT", M1, "2024-12-31"), 1440, "ms", True),
        (ref_of("spot", "SOLUSDT", M1, "2024-11"), 240, "ms", False),  # the listing month
        (ref_of("um", "BTCUSDT", H1, "2024-12"), 744, "ms", True),
    ],
)
async def test_a_verified_file_holds_exactly_the_rest_klines(
    sim: Sim, ref: ArchiveRef, rows: int, unit: str, header: bool
) -> None:
    outcome = await verify(sim, ref)
    assert isinstance(outcome, Verified), outcome
    assert (len(outcome.columns), outcome.parsed.unit, outcome.parsed.header) == (
        rows,
        unit,
        header,
    )
    assert list(outcome.columns.candles()) == await sim.rest_klines(ref)
    assert sim.slept == []


async def test_files_that_do_not_exist_are_missing(sim: Sim) -> None:
    for ref in (
        ref_of("spot", "SOLUSDT", M1, "2024-11-29"),  # before the listing
        ref_of("spot", "BTCUSDT", M1, "2025-01-19"),  # published at 06:00 tomorrow
        ref_of("spot", "BTCUSDT", M1, "2025-01"),  # the month is not over
        ref_of("um", "NEOETH", M1, "2025-01-02"),  # not listed on USD-M
    ):
        client = sim.client()
        assert await client.fetch(ref) is None
        assert await client.fetch_checksum(ref) is None
        precision = Precision(8, 8, 8)
        assert await client.fetch_verified(ref, precision, 0) == Missing(ref)
    hidden = ref_of("spot", "ETHUSDT", M1, "2025-01-07")
    sim.world.faults.update({"archive_missing": [hidden.zip_name]})
    assert await verify(sim, hidden) == Missing(hidden)
    sim.world.faults.update({"archive_missing": []})
    assert isinstance(await verify(sim, hidden), Verified)
    assert sim.slept == []  # a missing key is an answer, not a failure


# -- rejected files, and the recovery once the file is good ---------------------------

DAY_FILE = ref_of("spot", "ETHUSDT", M1, "2025-01-07")


async def test_a_truncated_download_is_rejected_by_its_checksum(sim: Sim) -> None:
    sim.world.faults.update({"archive_truncated": 1.0})
    outcome = await verify(sim, DAY_FILE)
    assert isinstance(outcome, Rejected)
    assert outcome.kind == "checksum"
    assert outcome.reason.startswith("checksum mismatch")
    sim.world.faults.update({"archive_truncated": 0.0})
    assert isinstance(await verify(sim, DAY_FILE), Verified)


async def test_a_wrong_checksum_is_rejected(sim: Sim) -> None:
    sim.world.faults.update({"archive_bad_checksum": 1.0})
    outcome = await verify(sim, DAY_FILE)
    assert isinstance(outcome, Rejected)
    assert outcome.kind == "checksum"
    assert "checksum mismatch" in outcome.reason


async def test_a_disagreeing_file_is_caught_only_against_rest(sim: Sim) -> None:
    rest = columns_from(await sim.rest_klines(DAY_FILE))
    sim.world.faults.update({"archive_disagree": 1.0})
    # its checksum describes it and it is well formed: alone, it verifies
    assert isinstance(await verify(sim, DAY_FILE), Verified)
    outcome = await verify(sim, DAY_FILE, reference=rest)
    assert isinstance(outcome, Rejected)
    assert outcome.kind == "disagree"
    assert outcome.reason.count("volume") == 1
    sim.world.faults.update({"archive_disagree": 0.0})
    assert isinstance(await verify(sim, DAY_FILE, reference=rest), Verified)


async def test_a_file_with_an_outage_gap_fails_coverage(sim: Sim) -> None:
    # Binance's 2018-02-08 04:00 outage: the day's file holds only its first 4 hours
    ref = ref_of("spot", "ETHUSDT", M1, "2018-02-08")
    outcome = await verify(sim, ref)
    assert outcome == Rejected(
        ref,
        "coverage",
        "missing 1200 of 1440 rows: 2018-02-08T04:00:00Z..2018-02-08T23:59:00Z (1200)",
    )


async def test_a_file_that_does_not_parse_is_rejected(sim: Sim) -> None:
    ref = ref_of("um", "ETHUSDT", H1, "2025-01-02")
    _, listed = sim.listing(ref)
    stale = Precision(1, 3, 4)  # the contract now has a finer tick than the caller knows
    outcome = await sim.client().fetch_verified(ref, stale, listed)
    assert isinstance(outcome, Rejected)
    assert outcome.kind == "parse"
    assert outcome.reason.startswith("line 2: invalid decimal")


# -- retries --------------------------------------------------------------------------


async def test_a_5xx_is_retried_with_backoff_until_the_archive_is_back(sim: Sim) -> None:
    window = {"venue": "archive", "start_ms": NOW, "end_ms": NOW + HOUR_MS}
    sim.world.faults.update({"dark": [window]})  # 503 for the next sim hour
    sim.step_ms = 20 * MINUTE_MS
    outcome = await verify(sim, DAY_FILE)
    assert isinstance(outcome, Verified)
    assert len(outcome.columns) == 1440
    assert sim.slept == [0.375, 0.75, 1.5]  # 0.5 s doubling, jittered to 3/4 of each
    statuses = sim.world.stats.snapshot()["venues"]["archive"]["status"]
    assert (statuses["503"], statuses["200"]) == (3, 2)


async def test_retries_are_bounded_and_then_the_archive_is_unavailable(sim: Sim) -> None:
    window = {"venue": "archive", "start_ms": NOW, "end_ms": NOW + 100 * HOUR_MS}
    sim.world.faults.update({"dark": [window]})
    sim.step_ms = MINUTE_MS
    client = sim.client(attempts=6, max_delay_s=2.0)
    with pytest.raises(ExchangeUnavailable, match="HTTP 503"):
        await client.fetch(DAY_FILE)
    assert sim.slept == [0.375, 0.75, 1.5, 1.5, 1.5]  # capped at 2 s before jitter


async def test_connection_errors_are_retried_and_other_statuses_are_not(sim: Sim) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    with pytest.raises(ExchangeUnavailable, match="ClientConnectorError") as caught:
        await sim.client(closed, attempts=3).fetch(DAY_FILE)
    assert isinstance(caught.value.__cause__, aiohttp.ClientConnectionError)
    assert len(sim.slept) == 2
    sim.slept.clear()
    # a 404 that is not S3's NoSuchKey means a wrong base URL: said at once, not retried
    with pytest.raises(ExchangeRejected, match="HTTP 404"):
        await sim.client(sim.url + "/mirror").fetch(DAY_FILE)
    assert sim.slept == []


async def test_a_time_out_is_retried() -> None:
    calls: list[str] = []
    release = asyncio.Event()

    async def handler(request: web.Request) -> web.Response:
        calls.append(request.path)
        if len(calls) == 1:
            await release.wait()  # hold the first request past the client's time-out
        return web.Response(body=b"zip bytes")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    async with TestServer(app, host="127.0.0.1", port=0) as server, aiohttp.ClientSession() as s:
        client = BinanceArchiveClient(
            s, str(server.make_url("/")), sleep=sleep, jitter=lambda: 0.0,
            timeout=aiohttp.ClientTimeout(total=0.2),
        )  # fmt: skip
        try:
            assert await client.fetch(DAY_FILE) == b"zip bytes"
        finally:
            release.set()
    assert calls == ["/" + DAY_FILE.path] * 2
    assert slept == [0.25]
