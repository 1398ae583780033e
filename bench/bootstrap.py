"""Bootstrap benchmark: requests, budget use, throughput, and ccxt side by side.

Against `candlevault sim` in its own process (loopback; the simulator's limits are the
real venues'), into a fresh SQLite file per run, Binance spot BTCUSDT:

1. requests: a bootstrap of N missing minutes sends ceil(N/1000) kline requests plus
   the inception probe; a second run sends none;
2. limits lifted (--binance-weight 10^9): 1m candles/s end to end, fetched, validated,
   stored with all 14 derived timeframes (target >= 200,000/s);
3. ccxt's `fetch_ohlcv`, paginated one request at a time with ccxt's own throttle (the
   way freqtrade's downloader does it), against candlevault's REST-only bootstrap and
   its archives-first bootstrap, for the same year of 1m history, same simulator, same
   limits: wall time and weight (target: archives >= 10x faster than ccxt); the
   archives run twice: first with the simulator building each file on request, then
   into a fresh store with the files built (as data.binance.vision serves them);
4. real limits (6000 weight a minute, full run only, ~80 s): the full BTCUSDT history
   with REST alone; the weight used in each whole wall-clock minute against the budget
   (target >= 90%) and the 429s (target 0), read from the simulator's own ledger;
5. full run only: the full BTCUSDT history archives first, its weight measured, against
   the weight ccxt's pagination spends on the same history (its request count times 2,
   plus exchangeInfo: deterministic, so computed rather than waited for); ten symbols'
   histories are about ten times the one measured (target: ten within ccxt's one).

Run:  .venv/bin/python -m bench.bootstrap [--quick]   (quick: 30 days, no run 4)
"""

from __future__ import annotations

import argparse
import asyncio
import math
import platform
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from tests.e2e.test_sim_cli import running_sim
from tests.integration.simulator.ccxt_support import binance_spot, point_at

from candlevault.bootstrap.runner import AnomalyLog, Bootstrap, Progress
from candlevault.domain.times import parse_time_ms
from candlevault.domain.venues import Venue
from candlevault.exchanges.binance.archive_client import BinanceArchiveClient
from candlevault.exchanges.binance.rest import BinanceRest
from candlevault.exchanges.clock import sim_clock
from candlevault.exchanges.http import VenueHttp
from candlevault.exchanges.ratelimit import USED_WEIGHT_HEADER, WeightLimiter
from candlevault.ingest.writer import Ingestor
from candlevault.storage.sqlite import FILE_NAME, SqliteStore

START = "2024-01-15T00:00:00Z"
MINUTE = 60_000
DAY = 86_400_000


@contextmanager
def simulator(*args: str) -> Iterator[dict[str, str]]:
    """`candlevault sim` in its own process at START; yield its CANDLEVAULT_* URLs."""
    with running_sim("--start", START, *args) as env:
        yield env


async def sim_json(session: aiohttp.ClientSession, url: str) -> Any:
    async with session.get(url) as reply:
        return orjson.loads(await reply.read())


@asynccontextmanager
async def ours(
    env: dict[str, str], tmp: Path, *, archives: bool = False, concurrency: int = 8
) -> AsyncIterator[tuple[Bootstrap, SqliteStore, aiohttp.ClientSession]]:
    """candlevault's bootstrap stack pointed at the simulator, into a fresh SQLite file."""
    base = env["CANDLEVAULT_BINANCE_REST_URL"]
    store = await SqliteStore.open(tmp / FILE_NAME)
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
            clock = await sim_clock(session, env["CANDLEVAULT_CLOCK_URL"])
            limiter = WeightLimiter()
            http = VenueHttp(session, base, limiter, "binance", weight_header=USED_WEIGHT_HEADER)
            client = BinanceRest(Venue.BINANCE, http, clock, on_limits=limiter.set_limit)
            archive = (
                BinanceArchiveClient(session, env["CANDLEVAULT_BINANCE_ARCHIVE_URL"])
                if archives
                else None
            )
            runner = Bootstrap(
                client,
                Ingestor(store),
                clock,
                AnomalyLog(tmp / "anomalies.jsonl"),
                concurrency=concurrency,
                archives=archive,
            )
            yield runner, store, session
    finally:
        await store.aclose()


async def timed_bootstrap(
    env: dict[str, str], tmp: Path, **kw: Any
) -> tuple[Progress, float, dict[str, Any]]:
    """Bootstrap BTCUSDT once; return its progress, wall seconds and the sim's ledger."""
    async with ours(env, tmp, **kw) as (runner, _, session):
        base = env["CANDLEVAULT_BINANCE_REST_URL"]
        await session.post(f"{base}/_sim/stats/reset")
        start = time.perf_counter()
        progress = await runner.run("BTCUSDT")
        spent = time.perf_counter() - start
        stats = await sim_json(session, f"{base}/_sim/stats")
    return progress, spent, stats["venues"]["binance"]


async def ccxt_year(env: dict[str, str], since_ms: int, until_ms: int) -> tuple[int, float]:
    """ccxt's fetch_ohlcv, paginated one request at a time with its throttle on."""
    exchange = binance_spot()
    exchange.enableRateLimit = True
    point_at(exchange, env["CANDLEVAULT_BINANCE_REST_URL"])
    rows = 0
    start = time.perf_counter()
    try:
        await exchange.load_markets()
        since = since_ms
        while since < until_ms:
            page = await exchange.fetch_ohlcv("BTC/USDT", "1m", since=since, limit=1000)
            page = [r for r in page if r[0] < until_ms]
            if not page:
                break
            rows += len(page)
            since = int(page[-1][0]) + MINUTE
    finally:
        await exchange.close()
    return rows, time.perf_counter() - start


async def budget_run(env: dict[str, str], tmp: Path) -> tuple[Progress, list[int], int, float]:
    """The full history with the real limit; the weight spent in each wall minute window."""
    base = env["CANDLEVAULT_BINANCE_REST_URL"]
    marks: list[tuple[float, int]] = []
    async with ours(env, tmp, concurrency=16) as (runner, _, session):
        await session.post(f"{base}/_sim/stats/reset")

        async def sample() -> None:
            while True:
                stats = await sim_json(session, f"{base}/_sim/stats")
                marks.append((time.time(), stats["venues"]["binance"]["weight"]))
                await asyncio.sleep(0.05)

        # Start on a minute boundary: Binance's windows are wall-clock minutes, so the
        # first window is then a whole one, like every window before the last.
        await asyncio.sleep(60 - time.time() % 60)
        sampler = asyncio.create_task(sample())
        started = time.perf_counter()
        try:
            progress = await runner.run("BTCUSDT")
        finally:
            sampler.cancel()
        spent = time.perf_counter() - started
        stats = await sim_json(session, f"{base}/_sim/stats")
    per_minute = _window_weights(marks)
    return progress, per_minute, int(stats["venues"]["binance"]["status"]["429"]), spent


def _window_weights(marks: list[tuple[float, int]]) -> list[int]:
    """Weight spent in each wall-clock minute window the run reached, but the last
    (where the run ended: nothing was left to ask for); the run starts on a boundary."""
    if not marks:
        return []
    spent: dict[int, int] = {}
    before = 0
    for t, w in marks:
        window = int(t // 60)
        spent[window] = spent.get(window, 0) + w - before
        before = w
    return [spent[k] for k in sorted(spent)[:-1]]


async def main(quick: bool) -> None:
    days = 30 if quick else 365
    listed = parse_time_ms(START) - days * DAY
    listed_arg = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(listed / 1000))
    minutes = days * 1440
    print(f"Python {platform.python_version()} | {platform.machine()} | {days} days of 1m")
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        with simulator(
            "--binance-weight", "1000000000", "--listed", f"BTCUSDT={listed_arg}"
        ) as env:
            lifted, lifted_s, lifted_stats = await timed_bootstrap(env, tmp / "a")
            async with ours(env, tmp / "a") as (runner, _, session):
                base = env["CANDLEVAULT_BINANCE_REST_URL"]
                await session.post(f"{base}/_sim/stats/reset")
                again = await runner.run("BTCUSDT")
                again_stats = (await sim_json(session, f"{base}/_sim/stats"))["venues"]["binance"]
        with simulator("--listed", f"BTCUSDT={listed_arg}") as env:
            ccxt_rows, ccxt_s = await ccxt_year(env, listed, parse_time_ms(START))
            _, rest_s, rest_stats = await timed_bootstrap(env, tmp / "b")
            arch, arch_s, arch_stats = await timed_bootstrap(env, tmp / "c", archives=True)
            # data.binance.vision serves stored files; the simulator builds each on first
            # request (~0.5 s a month) and then keeps it: time a second run on the same
            # simulator, into a fresh store, to see candlevault's side of the same work.
            _, static_s, _ = await timed_bootstrap(env, tmp / "c2", archives=True)
        budget: tuple[Progress, list[int], int, float] | None = None
        full: tuple[Progress, float, dict[str, Any]] | None = None
        if not quick:
            with simulator() as env:
                budget = await budget_run(env, tmp / "d")
            with simulator("--binance-weight", "1000000000") as env:
                full = await timed_bootstrap(env, tmp / "e", archives=True)
    klines = lifted_stats["requests"].get("/api/v3/klines", 0)
    print("\nfigure | result | target")
    print(
        f"kline requests for {minutes:,} missing minutes | {klines} | "
        f"ceil(N/1000) + 1 = {math.ceil(minutes / 1000) + 1}"
    )
    print(
        f"second run: kline requests | {again_stats['requests'].get('/api/v3/klines', 0)} "
        f"(planned {again.planned_requests}) | 0"
    )
    rate = lifted.candles / lifted_s
    print(
        f"limits lifted: end to end into SQLite | {rate:,.0f} candles/s | >= 200,000: "
        f"{'met' if rate >= 200_000 else 'MISSED'}"
    )
    print(f"ccxt fetch_ohlcv, paginated, throttled | {ccxt_s:.1f} s for {ccxt_rows:,} candles | ")
    print(
        f"candlevault REST only | {rest_s:.1f} s, {rest_stats['weight']} weight | "
        f"{ccxt_s / rest_s:.1f}x faster than ccxt"
    )
    print(
        f"candlevault archives + REST | {arch_s:.1f} s, {arch_stats['weight']} weight, "
        f"{arch.archive_files} files | {ccxt_s / arch_s:.1f}x faster than ccxt "
        f"(target >= 10x: {'met' if ccxt_s / arch_s >= 10 else 'MISSED'})"
    )
    print(
        f"the same, files already built (a static host, as data.binance.vision) | "
        f"{static_s:.1f} s | {ccxt_s / static_s:.1f}x faster than ccxt "
        f"(target >= 10x: {'met' if ccxt_s / static_s >= 10 else 'MISSED'})"
    )
    if full is not None:
        _ten_symbols(full)
    if budget is not None:
        progress, per_minute, refused, spent = budget
        shares = [w / 6000 for w in per_minute]
        overall = progress.weight / (6000 * spent / 60)
        met = shares and min(shares) >= 0.9 and refused == 0
        print(
            f"real limits: {progress.weight:,} weight in {spent:.1f} s = {overall:.0%} of "
            f"6,000 a minute over the whole run (first window included)"
        )
        print(
            f"real limits, full history: {progress.candles:,} candles | weight per minute window "
            f"before the last {per_minute} = {', '.join(f'{s:.0%}' for s in shares)}; "
            f"429s: {refused} | "
            f">= 90%, 0 429s: {'met' if met else 'MISSED'}"
        )


def _ten_symbols(full: tuple[Progress, float, dict[str, Any]]) -> None:
    progress, spent, stats = full
    minutes = progress.candles + progress.archive_candles + progress.empty_minutes
    ccxt_weight = 2 * math.ceil(minutes / 1000) + 20
    ours = stats["weight"]  # exchangeInfo, the inception probe, spot checks and REST
    print(
        f"full history, archives + REST | {ours:,} weight ({progress.archive_files} files, "
        f"{spent:.0f} s) | ccxt's pagination: {ccxt_weight:,} weight for the same "
        f"{minutes:,} minutes; ten symbols ~{10 * ours:,}: "
        f"{'met' if 10 * ours <= ccxt_weight else 'MISSED'}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="30 days, no real-limit run")
    asyncio.run(main(parser.parse_args().quick))
