"""A window the exchange answers malformed the same way every time (off-grid rows around
an old maintenance) is recorded as an anomaly with its raw rows kept aside, and is not
asked again; the rest of the history is stored as usual. The "exchange" here is a small
aiohttp server on a real socket that answers exactly that, the way such history does."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from candlevault.bootstrap.runner import AnomalyLog, Bootstrap
from candlevault.domain.clock import AnchoredClock
from candlevault.domain.timeframes import M1
from candlevault.domain.venues import Venue
from candlevault.exchanges.binance.rest import BinanceRest
from candlevault.exchanges.http import Retry, VenueHttp
from candlevault.exchanges.ratelimit import USED_WEIGHT_HEADER, WeightLimiter
from candlevault.ingest.writer import Ingestor
from tests.integration.bootstrap.test_bootstrap import store_at

MINUTE = 60_000
LISTED = 1_600_000_000_000 - 1_600_000_000_000 % MINUTE
NOW = LISTED + 3000 * MINUTE + 30_000  # three windows of history, the fourth forming
BAD = LISTED + 1500 * MINUTE  # the second window holds an off-grid row, every time


def _row(t: int) -> list[Any]:
    return [t, "1.00000000", "1.00000000", "1.00000000", "1.00000000", "1.00000000",
            t + MINUTE - 1, "1.00000000", 1, "0.00000000", "0.00000000", "0"]  # fmt: skip


@pytest.fixture
async def exchange() -> AsyncIterator[tuple[str, list[int]]]:
    asked: list[int] = []

    async def klines(request: web.Request) -> web.Response:
        start = int(request.query["startTime"])
        limit = int(request.query["limit"])
        asked.append(start)
        end = min(int(request.query.get("endTime", NOW)), NOW)
        opens = [t for t in range(max(start, LISTED), end + 1, MINUTE)][:limit]
        rows = [_row(t) for t in opens]
        if any(t <= BAD < t + MINUTE * 1000 for t in opens[:1]):
            rows = [_row(t + 17 if t == BAD else t) for t in opens]  # the same, every time
        return web.json_response(rows, headers={"X-MBX-USED-WEIGHT-1M": "2"})

    async def info(_: web.Request) -> web.Response:
        body = {"rateLimits": [], "symbols": [{"symbol": "OLDUSDT", "status": "TRADING"}]}
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    app = web.Application()
    app.router.add_get("/api/v3/klines", klines)
    app.router.add_get("/api/v3/exchangeInfo", info)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", asked
    finally:
        await runner.cleanup()


async def test_a_persistent_anomaly_is_recorded_kept_aside_and_not_asked_again(
    exchange: tuple[str, list[int]], tmp_path: Path
) -> None:
    url, asked = exchange
    clock = AnchoredClock(NOW, 0.0, lambda: 0.0, paused=True)
    async with aiohttp.ClientSession() as session, store_at(tmp_path) as store:
        limiter = WeightLimiter()
        http = VenueHttp(
            session, url, limiter, "binance", weight_header=USED_WEIGHT_HEADER,
            retry=Retry(attempts=2, base_s=0.001, cap_s=0.001),
        )  # fmt: skip
        client = BinanceRest(Venue.BINANCE, http, clock)
        log = AnomalyLog(tmp_path / "anomalies.jsonl")
        ingestor = Ingestor(store)
        first = await Bootstrap(client, ingestor, clock, log, concurrency=1).run("OLDUSDT")
        asked_first = len(asked)
        second = await Bootstrap(client, ingestor, clock, log, concurrency=1).run("OLDUSDT")
        coverage = await ingestor.coverage(Venue.BINANCE, "OLDUSDT")
        stored = await store.count(Venue.BINANCE, "OLDUSDT", M1)
    kept = [orjson.loads(line) for line in (tmp_path / "anomalies.jsonl").read_text().splitlines()]
    assert first.anomalies == 1
    assert asked_first == 1 + 3 + 1  # inception, three windows, the malformed one again
    assert second.planned_requests == 0
    assert len(asked) == asked_first  # never asked again
    assert [[a.start_ms, a.end_ms] for a in coverage.anomalies] == [
        [LISTED + 1000 * MINUTE, LISTED + 2000 * MINUTE]
    ]
    assert stored == 2000  # the other two windows
    assert kept[0]["reason"] == f"open time {BAD + 17} off the 1m grid"
    assert kept[0]["rows"][0]["open_time_ms"] == BAD + 17
