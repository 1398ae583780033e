"""How fast the exchange simulator serves what candlevault will ask of it.

The simulator must never be the bottleneck of a test or a benchmark (issue 4): a warm
1000-candle kline request should cost under a millisecond of one core (>= 1,000
requests/s), and a bootstrap, which reads every minute of a symbol's history once,
should get >= 200,000 candles/s. This script starts `candlevault sim` as its own
process (so the server has one core and this client, aiohttp, the other; everything
on 127.0.0.1, rate limits raised out of the way) and measures:

1. warm 1000-candle klines: `/api/v3/klines?symbol=BTCUSDT&interval=1m&startTime=S
   &limit=1000` over a fixed set of recent windows already requested once, several
   connections in flight: requests/s and candles/s;
2. the newest window (no `startTime`, so the forming candle is in it): requests/s;
3. a cold bootstrap read of Binance spot BTCUSDT from its listing (2017-08-17), paging
   as a bootstrap does (`startTime` = last open + 60000): one page at a time, and 4
   pages in flight on disjoint ranges (4 lanes from later years): candles/s;
4. the same cold read on Binance USD-M (`/fapi/v1/klines`, limit 1500, its maximum) and
   Bybit linear (`/v5/market/kline`, limit 1000, `start` walking forwards);
5. trades: paging `/api/v3/aggTrades` (`startTime` = last `T` + 1, `endTime` an hour
   on, limit 1000): aggTrades/s and the trades they cover; then, in this process, the
   market model's own rates, which say where a cold read spends its time: expanding a
   minute's trades (`VenueMarket.trades`, what the WebSocket streams will be fed from),
   generating 1m candles of fresh days (`VenueMarket.candles`) and rendering them as
   Binance JSON rows.

For each HTTP figure the server's ledger (`POST /_sim/stats/reset` before, `GET
/_sim/stats` after) is printed beside the client's own counts, and they must agree; the
CPU each side used over the run says which one was the limit (the server's is read from
/proc, so it shows "-" elsewhere). Only correctness is asserted, never timings: every
cold page has its full row count, ascending and contiguous except across the configured
outage (Binance's of 2018-02-08, which the full run crosses); warm replies are byte for
byte their first reading; aggTrades pages continue each other's trade ids; expanded
trades fold to exactly their minute's candle.

Run:  .venv/bin/python -m bench.simulator [--quick] [--connections N]
(about 45 s; --quick about 10 s, with figures only indicative).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO, Any

import aiohttp
import orjson

from bench.decimals import machine
from candlevault.aggregation import Outage, fold_trades
from candlevault.domain.candles import kline_row
from candlevault.domain.times import format_time_ms, parse_time_ms
from candlevault.domain.venues import Venue
from candlevault.simulator.binance_klines import binance_renderer
from candlevault.simulator.instruments import listing
from candlevault.simulator.market import VenueMarket
from candlevault.simulator.world import SimConfig, SimWorld

MINUTE_MS = 60_000
DAY_MS = 86_400_000
HOUR_MS = 3_600_000
SPOT, USDM, BYBIT = "/api/v3/klines", "/fapi/v1/klines", "/v5/market/kline"
SIM_ARGS = (
    *("--port", "0", "--seed", "1", "--symbols", "BTCUSDT,ETHUSDT"),
    *("--binance-weight", "100000000", "--usdm-weight", "100000000"),
    *("--bybit-limit", "100000000"),
)
OUTAGES: tuple[Outage, ...] = SimConfig().outages  # the sim's default: Binance only
WARM_WINDOWS = 16
LANES = 4
LANE_STARTS = ("2020-01-01", "2021-01-01", "2022-01-01", "2023-01-01")  # after the seq. run
FRESH_DAY = parse_time_ms("2019-06-01")  # in-process generation starts here
REQ_TARGET = 1_000.0
CANDLE_TARGET = 200_000.0


def listed_ms(venue: Venue) -> int:
    """Return when BTCUSDT opened on `venue` in the simulator."""
    found = listing(venue, "BTCUSDT")
    assert found is not None
    return found.listed_ms


@dataclass(frozen=True)
class Plan:
    """How much each figure reads: requests, pages (per lane for lanes), minutes, days."""

    warm_requests: int
    newest_requests: int
    cold_pages: int
    lane_pages: int
    usdm_pages: int
    bybit_pages: int
    agg_pages: int
    trade_minutes: int
    fresh_days: int


FULL = Plan(10_000, 5000, 1000, 250, 400, 700, 400, 1000, 60)
QUICK = Plan(800, 400, 80, 20, 40, 60, 40, 60, 7)


# --- the simulator process ----------------------------------------------------------


class Sim:
    """The simulator process seen from the bench: its base URL, ledger and CPU time."""

    def __init__(self, pid: int, base: str, session: aiohttp.ClientSession) -> None:
        self.pid = pid
        self.base = base
        self.session = session
        self._stat = Path(f"/proc/{pid}/stat")

    async def get(self, path: str) -> bytes:
        """GET `path` and return the body; anything but HTTP 200 is an error."""
        async with self.session.get(self.base + path) as response:
            body = await response.read()
            if response.status != 200:
                raise AssertionError(f"{path}: HTTP {response.status} {body[:200]!r}")
            return body

    async def status(self, path: str) -> tuple[int, bytes]:
        """GET `path` and return its status and body, whatever they are."""
        async with self.session.get(self.base + path) as response:
            return response.status, await response.read()

    async def now_ms(self) -> int:
        """Return the sim time (from `/_sim/clock`, which the ledger does not count)."""
        return int(orjson.loads(await self.get("/_sim/clock"))["time_ms"])

    async def reset(self) -> None:
        """Clear the simulator's ledger."""
        async with self.session.post(self.base + "/_sim/stats/reset") as response:
            assert response.status == 200, await response.text()

    async def ledger(self) -> dict[str, Any]:
        """Return the simulator's ledger, `{"venues": {...}, "ws": {...}}`."""
        return dict(orjson.loads(await self.get("/_sim/stats")))

    def cpu_s(self) -> float | None:
        """Return the CPU seconds the server has used (user + system), None off Linux."""
        try:
            fields = self._stat.read_text().rpartition(")")[2].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _read_urls(out: IO[str], timeout_s: float = 60.0) -> dict[str, str]:
    """Read the CANDLEVAULT_*_URL lines the simulator prints first (the clock's is last);
    give up after `timeout_s` (stopping the process then ends the reading thread)."""
    env: dict[str, str] = {}

    def read() -> None:
        for line in itertools.islice(out, 20):
            name, _, value = line.strip().partition("=")
            env[name] = value
            if name == "CANDLEVAULT_CLOCK_URL":
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout_s)
    return dict(env)


@contextmanager
def sim_process() -> Iterator[tuple[int, str]]:
    """Start `candlevault sim` on a free loopback port; yield its pid and base URL;
    always stop it with SIGTERM and close its pipes."""
    with (
        tempfile.TemporaryFile("w+") as err,  # a file, so a chatty server never blocks
        subprocess.Popen(
            [sys.executable, "-m", "candlevault", "sim", *SIM_ARGS],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        ) as proc,
    ):
        try:
            assert proc.stdout is not None
            env = _read_urls(proc.stdout)
            base = env.get("CANDLEVAULT_BINANCE_REST_URL", "")
            assert base.startswith("http://127.0.0.1:"), f"sim did not start: {env}"
            yield proc.pid, base
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
            err.seek(0)
            problems = err.read()
        assert proc.returncode == 0, f"sim exited with {proc.returncode}: {problems[-2000:]}"


@asynccontextmanager
async def client(pid: int, base: str, connections: int) -> AsyncIterator[Sim]:
    """Open an aiohttp session to the simulator at `base`."""
    connector = aiohttp.TCPConnector(limit=connections)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        yield Sim(pid, base, session)


# --- measuring ----------------------------------------------------------------------


@dataclass(frozen=True)
class Counts:
    """What the client did in one run, and where the ledger should show it."""

    venue: str
    path: str
    requests: int
    rows: int
    rows_are_candles: bool = True  # the ledger counts candles, not aggTrades


Work = Callable[[], Awaitable[Counts]]


@dataclass(frozen=True)
class Row:
    """One line of the table."""

    figure: str
    unit: str
    seconds: float
    rows: int
    client_cpu: float
    requests: int | None = None
    server_requests: int | None = None
    server_rows: int | None = None
    server_cpu: float | None = None
    target: tuple[str, float] | None = None  # ("req" or "rows", per second)


async def measure(
    sim: Sim,
    figure: str,
    unit: str,
    work: Work,
    target: tuple[str, float] | None = None,
) -> Row:
    """Run `work` against a cleared ledger; check the ledger agrees with the client."""
    await sim.reset()
    server0, client0, t0 = sim.cpu_s(), time.process_time(), time.perf_counter()
    counts = await work()
    seconds = time.perf_counter() - t0
    client_cpu = time.process_time() - client0
    server1 = sim.cpu_s()
    venue = (await sim.ledger())["venues"][counts.venue]
    served = venue["requests"].get(counts.path, 0)
    candles = int(venue["candles"])
    assert served == counts.requests == sum(venue["requests"].values()), venue
    assert venue["status"]["200"] == counts.requests, venue
    assert candles == (counts.rows if counts.rows_are_candles else 0), venue
    server_cpu = None if server0 is None or server1 is None else server1 - server0
    return Row(
        figure,
        unit,
        seconds,
        counts.rows,
        client_cpu,
        counts.requests,
        served,
        candles if counts.rows_are_candles else None,
        server_cpu,
        target,
    )


def in_process(figure: str, unit: str, run: Callable[[], int]) -> Row:
    """Time `run` (which returns how many items it handled) in this process."""
    client0, t0 = time.process_time(), time.perf_counter()
    items = run()
    return Row(figure, unit, time.perf_counter() - t0, items, time.process_time() - client0)


async def in_flight(jobs: Sequence[Callable[[], Coroutine[Any, Any, int]]]) -> int:
    """Run the jobs concurrently; return the sum of their results."""
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(job()) for job in jobs]
    return sum(task.result() for task in tasks)


async def hammer(
    sim: Sim, paths: Sequence[str], workers: int, check: Callable[[str, bytes], int]
) -> int:
    """GET every path with `workers` requests in flight; return the sum of `check`s."""
    queue = iter(paths)  # shared: each worker takes the next path

    async def worker() -> int:
        return sum([check(path, await sim.get(path)) for path in queue])

    return await in_flight([worker] * workers)


# --- correctness --------------------------------------------------------------------


def check_minutes(opens: Sequence[int], start: int, count: int, outages: Sequence[Outage]) -> int:
    """Assert `count` open times from `start` on, a minute apart except where every
    missing minute is in an outage; return how many gaps they cross."""
    assert len(opens) == count, f"page from {start}: {len(opens)} rows, not {count}"
    gaps = 0
    for before, after in itertools.pairwise([start - MINUTE_MS, *opens]):
        if after - before == MINUTE_MS:
            continue
        assert after > before, f"not ascending at {after}"
        first, last = before + MINUTE_MS, after - MINUTE_MS  # the missing minutes
        assert any(lo <= first and last < hi for lo, hi in outages), f"gap {first}..{last}"
        gaps += 1
    return gaps


def check_binance_page(rows: list[list[Any]], start: int, count: int) -> int:
    """Check a Binance kline page read forward from `start`; return the gaps crossed."""
    assert all(len(r) == 12 and r[6] == r[0] + MINUTE_MS - 1 for r in rows), "bad row"
    return check_minutes([r[0] for r in rows], start, count, OUTAGES)


def check_bybit_page(body: bytes, start: int, count: int) -> int:
    """Check a Bybit kline page read forward from `start` (newest first); return the
    newest open time."""
    reply = orjson.loads(body)
    assert reply["retCode"] == 0, reply["retMsg"]
    rows = reply["result"]["list"]
    assert all(len(r) == 7 and isinstance(r[1], str) for r in rows), "bad row"
    opens = [int(r[0]) for r in reversed(rows)]
    check_minutes(opens, start, count, ())
    return opens[-1]


# --- figures over HTTP --------------------------------------------------------------


def klines_path(start: int | None, limit: int = 1000, path: str = SPOT) -> str:
    """Return a 1m BTCUSDT Binance klines request, from `start` or (None) the newest."""
    since = "" if start is None else f"&startTime={start}"
    return f"{path}?symbol=BTCUSDT&interval=1m{since}&limit={limit}"


async def warm_windows(sim: Sim) -> dict[str, bytes]:
    """Read fixed recent windows once each (warming the server's cache); return each
    path's reply, checked."""
    now = await sim.now_ms()
    newest_closed = now - now % MINUTE_MS - 1000 * MINUTE_MS
    starts = [newest_closed - k * 1000 * MINUTE_MS for k in range(WARM_WINDOWS)]
    first = {klines_path(start): await sim.get(klines_path(start)) for start in starts}
    for start, body in zip(starts, first.values(), strict=True):
        check_binance_page(orjson.loads(body), start, 1000)
    return first


async def warm_klines(sim: Sim, first: dict[str, bytes], requests: int, workers: int) -> Counts:
    """Read the warm windows `requests` times in all, `workers` in flight."""
    paths = list(first)

    def same(path: str, body: bytes) -> int:
        assert body == first[path], f"{path}: the reply changed"
        return 1000

    rows = await hammer(sim, [paths[i % len(paths)] for i in range(requests)], workers, same)
    return Counts("binance", SPOT, requests, rows)


async def newest_klines(sim: Sim, requests: int, workers: int) -> Counts:
    """Read the newest 1000 (forming candle last) `requests` times, in flight."""
    path = klines_path(None)

    def thousand(_: str, body: bytes) -> int:
        count = body.count(b"],[") + 1  # rows hold no lists, so this splits rows
        assert count == 1000, f"{count} rows"
        assert body.startswith(b"[[")
        assert body.endswith(b"]]")
        return count

    rows = await hammer(sim, [path] * requests, workers, thousand)
    before = await sim.now_ms()
    last = orjson.loads(await sim.get(path))
    assert last[-1][6] >= before, "the newest row is not the forming candle"
    check_binance_page(last, last[0][0], 1000)
    return Counts("binance", SPOT, requests + 1, rows + len(last))


async def binance_lane(
    sim: Sim, path: str, start: int, pages: int, limit: int, gaps: list[int] | None = None
) -> int:
    """Page forward from `start` as a bootstrap does; return the candles read (and add
    to `gaps` the start of each page that crossed an outage)."""
    rows_read = 0
    for _ in range(pages):
        rows = orjson.loads(await sim.get(klines_path(start, limit, path)))
        if check_binance_page(rows, start, limit) and gaps is not None:
            gaps.append(start)
        rows_read += len(rows)
        start = rows[-1][0] + MINUTE_MS
    return rows_read


async def bybit_lane(sim: Sim, start: int, pages: int) -> int:
    """Page Bybit linear forward from `start` (`start` = newest open + 1 min)."""
    for _ in range(pages):
        path = f"{BYBIT}?category=linear&symbol=BTCUSDT&interval=1&start={start}"
        start = check_bybit_page(await sim.get(f"{path}&limit=1000"), start, 1000) + MINUTE_MS
    return pages * 1000


async def agg_trades(sim: Sim, start: int, pages: int, trades: list[int]) -> Counts:
    """Page aggTrades forward an hour's window at a time; add the trades each page
    covers to `trades`."""
    aggs = 0
    next_id: int | None = None
    for _ in range(pages):
        window = f"startTime={start}&endTime={start + HOUR_MS}&limit=1000"
        rows = orjson.loads(await sim.get(f"/api/v3/aggTrades?symbol=BTCUSDT&{window}"))
        assert len(rows) == 1000, f"{len(rows)} aggTrades from {start}"
        for row in rows:
            assert next_id is None or row["f"] == next_id, f"trade ids skip at {row['f']}"
            assert start <= row["T"] <= start + HOUR_MS
            assert row["a"] == row["f"] <= row["l"]
            next_id = row["l"] + 1
        aggs += len(rows)
        trades.append(rows[-1]["l"] - rows[0]["f"] + 1)
        start = rows[-1]["T"] + 1
    return Counts("binance", "/api/v3/aggTrades", pages, aggs, rows_are_candles=False)


async def check_limits(sim: Sim) -> None:
    """Assert the page sizes used are the venues' maxima: one more is refused."""
    status, _ = await sim.status(klines_path(listed_ms(Venue.BINANCE), 1001))
    assert status == 400, status
    status, _ = await sim.status(klines_path(listed_ms(Venue.BINANCE_USDM), 1501, USDM))
    assert status == 400, status
    path = f"{BYBIT}?category=linear&symbol=BTCUSDT&interval=1&limit=1001"
    assert orjson.loads(await sim.get(path))["retCode"] != 0


def counted(venue: str, path: str, requests: int, read: Callable[[], Awaitable[int]]) -> Work:
    """Return work that runs `read` (`requests` requests to `path`; it returns rows)."""

    async def work() -> Counts:
        return Counts(venue, path, requests, await read())

    return work


async def http_rows(sim: Sim, plan: Plan, workers: int) -> tuple[list[Row], list[str]]:
    """Measure every HTTP figure; return the rows and notes to print under them."""
    first = await warm_windows(sim)
    req = ("req", REQ_TARGET)
    table = [
        await measure(sim, f"warm 1000-candle klines, {workers} in flight", "candles",
                      partial(warm_klines, sim, first, plan.warm_requests, workers), req),
        await measure(sim, f"newest 1000 (forming last), {workers} in flight", "candles",
                      partial(newest_klines, sim, plan.newest_requests, workers), req),
    ]  # fmt: skip
    gaps: list[int] = []
    n = plan.lane_pages
    lanes = [partial(binance_lane, sim, SPOT, parse_time_ms(t), n, 1000) for t in LANE_STARTS]
    cold_reads = [
        ("cold spot from listing, 1 in flight", "binance", SPOT, plan.cold_pages,
         partial(binance_lane, sim, SPOT, listed_ms(Venue.BINANCE), plan.cold_pages, 1000, gaps)),
        (f"cold spot, {LANES} lanes in flight", "binance", SPOT, n * LANES,
         partial(in_flight, lanes)),
        ("cold USD-M (limit 1500), 1 in flight", "binance-usdm", USDM, plan.usdm_pages,
         partial(binance_lane, sim, USDM, listed_ms(Venue.BINANCE_USDM), plan.usdm_pages, 1500)),
        ("cold Bybit linear, 1 in flight", "bybit-linear", BYBIT, plan.bybit_pages,
         partial(bybit_lane, sim, listed_ms(Venue.BYBIT_LINEAR), plan.bybit_pages)),
    ]  # fmt: skip
    for figure, venue, path, requests, read in cold_reads:
        work = counted(venue, path, requests, read)
        table.append(await measure(sim, figure, "candles", work, ("rows", CANDLE_TARGET)))
    now = await sim.now_ms()
    start = now - now % HOUR_MS - DAY_MS
    covered: list[int] = []
    work = partial(agg_trades, sim, start, plan.agg_pages, covered)
    table.append(await measure(sim, "aggTrades pages, 1 in flight", "aggTrades", work))
    crossed = ", ".join(format_time_ms(t) for t in gaps) or "none in this range"
    return table, [
        f"aggTrades pages covered {sum(covered):,} trades: {sum(covered) / table[-1].seconds:,.0f}"
        " trades/s served (the ledger counts aggTrades requests, not their rows)",
        f"cold spot pages that crossed an outage (checked against the sim's): {crossed}",
    ]


# --- figures in process -------------------------------------------------------------


def expand_trades(market: VenueMarket, first: int, minutes: int) -> int:
    """Expand `minutes` consecutive minutes' trades; return how many trades."""
    return sum(len(market.trades(first + i * MINUTE_MS)) for i in range(minutes))


def check_expansion(market: VenueMarket, first: int) -> None:
    """Assert a few minutes' trades fold to exactly their candles."""
    for open_ms in range(first, first + 3 * MINUTE_MS, MINUTE_MS):
        folded = fold_trades(
            market.trades(open_ms),
            open_time_ms=open_ms,
            precision=market.listing.precision,
            prev_close=market.previous_close(open_ms),
        )
        assert folded == market.minute(open_ms), f"minute {open_ms} does not fold back"


def model_rows(plan: Plan) -> list[Row]:
    """Measure the market model in this process: trades, candles, rendering."""
    world = SimWorld(SimConfig(symbols=("BTCUSDT",)))
    market = world.market(Venue.BINANCE, "BTCUSDT")
    assert market is not None
    now = world.now_ms()
    first = now - now % DAY_MS - DAY_MS  # yesterday, whole days of recent minutes
    for day in range(first, first + plan.trade_minutes * MINUTE_MS, DAY_MS):
        market.day(day)  # build the summaries first: only the expansion is timed
    check_expansion(market, first)
    end = FRESH_DAY + plan.fresh_days * DAY_MS - 1
    candles: list[Any] = []

    def generate() -> int:
        candles.extend(market.candles(FRESH_DAY, end))
        return len(candles)

    render = binance_renderer(market.listing.precision)
    rows = [
        in_process("market: expand recent minutes' trades", "trades",
                   lambda: expand_trades(market, first, plan.trade_minutes)),
        in_process(f"market: 1m candles of {plan.fresh_days} fresh days", "candles", generate),
        in_process("render candle -> Binance JSON row", "rows",
                   lambda: len([render(c) for c in candles])),
    ]  # fmt: skip
    assert len(candles) == plan.fresh_days * 1440  # no outage in these days
    assert render(candles[0]) == orjson.dumps(kline_row(candles[0], market.listing.precision))
    return rows


# --- report -------------------------------------------------------------------------


def _n(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _pair(client: int | None, server: int | None, counted: bool = True) -> str:
    if client is None:
        return "-"
    return f"{client:,} / {_n(server) if counted else 'n/a'}"


def _verdict(row: Row) -> str:
    if row.target is None:
        return ""
    kind, goal = row.target
    rate = (row.requests or 0) / row.seconds if kind == "req" else row.rows / row.seconds
    unit = "req/s" if kind == "req" else "candles/s"
    return f"{goal:,.0f} {unit}: {'met' if rate >= goal else 'MISSED'}, {rate / goal:.2f}x"


def _cells(row: Row) -> tuple[str, ...]:
    per_s = None if row.requests is None else row.requests / row.seconds
    server = "-" if row.server_cpu is None else f"{row.server_cpu / row.seconds:.0%}"
    return (
        row.figure,
        _pair(row.requests, row.server_requests),
        _pair(row.rows, row.server_rows, row.server_rows is not None or row.requests is None),
        row.unit,
        f"{row.seconds:.2f}",
        _n(per_s),
        _n(row.rows / row.seconds),
        server,
        f"{row.client_cpu / row.seconds:.0%}",
        _verdict(row),
    )


def render(rows: list[Row]) -> list[str]:
    """Return the table as aligned text lines."""
    head = ("figure", "requests client / server", "items client / server", "items", "s",
            "req/s", "items/s", "srv CPU", "cli CPU", "target")  # fmt: skip
    cells = [_cells(r) for r in rows]
    widths = [max(len(row[i]) for row in [head, *cells]) for i in range(len(head))]
    left = {0, 3, 9}
    lines = [
        " | ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in
                   enumerate(zip(row, widths, strict=True))).rstrip()
        for row in [head, *cells]
    ]  # fmt: skip
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return lines


async def run(pid: int, base: str, plan: Plan, connections: int) -> tuple[list[Row], list[str]]:
    """Check the page limits, then measure every HTTP figure."""
    async with client(pid, base, connections) as sim:
        await check_limits(sim)
        return await http_rows(sim, plan, connections)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.simulator",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="fewer requests and pages")
    parser.add_argument("--connections", type=int, default=8, help="warm requests in flight")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    print(
        f"Python {platform.python_version()} ({platform.python_implementation()}),"
        f" aiohttp {aiohttp.__version__} | {machine()} | {os.cpu_count()} CPUs"
        f" | {platform.system()}"
    )
    print(f"server: {sys.executable} -m candlevault sim {' '.join(SIM_ARGS)}")
    print("client: aiohttp in this process; items client / server: the ledger must agree")
    print()
    with sim_process() as (pid, base):
        rows, notes = asyncio.run(run(pid, base, plan, args.connections))
    rows += model_rows(plan)
    print("\n".join(render(rows)))
    print("\n".join(notes))
    print(
        "srv CPU / cli CPU: each process's CPU time over the run's wall time;"
        " near 100% marks the side that was the limit"
    )


if __name__ == "__main__":
    main()
