"""Serving benchmark: hot and warm reads over HTTP against a bare floor, and a simulated day.

Every part runs in its own process on 127.0.0.1 (`bench.processes`): the simulator
(`candlevault sim`), candlevault (`candlevault serve`: uvicorn + httptools on uvloop,
configured by CANDLEVAULT_* variables, bootstrapped through its own background jobs),
the floor (`bench.floor`: FastAPI + uvicorn, same settings, answering prebuilt bytes)
and the load generator (`bench.loadgen`: raw uvloop protocol, keep-alive HTTP/1.1).
The simulator lists BTCUSDT and ETHUSDT from the bootstrap's start (`--listed`,
`CANDLEVAULT_BOOTSTRAP_SINCE`: the same few days), so every window a client asks for
is inside the bootstrapped history: with their real 2017 listings, a newest 500 of 1d,
1w or 1M reaches years before a few-day bootstrap and its first read would (rightly)
fetch those years from the exchange.

Figures 1-3 run with the simulator at speed 1, figure 4 with a fresh simulator and
service at `--speed` (default 240: the day in 6 wall minutes).

1. Hot: `GET /api/v1/market/candles/BTCUSDT/1m?limit=500` (~80 KB), served from the hot
   cache with the open candle last; one client, one request at a time: p50 and p99
   (targets <= 1 ms, <= 5 ms); 16 connections: requests/s (target >= 6,000 in-process
   cache; with `--redis URL`, >= 4,000 through Redis, under a unique key prefix whose
   keys are deleted afterwards).
2. The same loads against the floor, the same bytes of the same size: our latency and
   throughput as a ratio to it. It is also the load generator's own ceiling.
3. Warm: random 500-candle 1m windows (`start_time`) older than the 1m hot retention
   (24 h), answered by the SQLite store: p50 (target <= 3 ms).
4. A simulated day (speed 240: 24 h in 6 minutes; `--quick`: 4 sim hours): clients on
   8 connections poll the newest 500 of every timeframe of both symbols in a loop.
   From the service's `/api/v1/admin/cache/stats` (differences over the day) and the
   simulator's ledger (reset at the day's start): kline requests for closed candles
   (target 0; < 1 per symbol per day), forming refreshes apart (at most one per symbol
   per 3 s of exchange time, `CANDLEVAULT_FORMING_TTL_S`), the hot+warm ratio (target
   >= 99.9%), and the requests and weight (2 per spot klines request) the same client
   requests would have cost asked of the exchange directly, with the saving (>= 95%).
   The simulator's weight budget is scaled by the speed (6,000 a minute of sim time).
   Mind the compression: forming refreshes are bounded per sim second, client reads per
   wall second, so the faster the day runs, the fewer reads share each refresh and the
   lower the saving (at 720x each series is read every ~5 sim seconds and ~91% is
   saved; at 240x about every 2 s). In real time the same clients would share each
   refresh among thousands of reads.

Only figures are printed; nothing about timing is asserted. Run:

    .venv/bin/python -m bench.serve [--quick] [--redis redis://127.0.0.1:6379/15] [--speed 240]
    (full ~8 min, --quick ~1.5 min)
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import random
import secrets
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bench.processes import Server, candlevault, floor, load, simulator
from bench.serve_report import Row, day_rows, print_report, ratio, verdict
from candlevault.domain.times import parse_time_ms

START = "2024-01-15T00:00:00Z"
SYMBOLS = ("BTCUSDT", "ETHUSDT")
TIMEFRAMES = (
    *("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h"),
    *("6h", "8h", "12h", "1d", "3d", "1w", "1M"),
)
HOT = "/api/v1/market/candles/BTCUSDT/1m?limit=500"
MINUTE_MS, HOUR_MS, DAY_MS = 60_000, 3_600_000, 86_400_000
SPOT_WEIGHT_PER_MINUTE = 6000


@dataclass(frozen=True)
class Sizes:
    """How much each figure measures."""

    days: int  # bootstrapped history
    latency_requests: int
    throughput_s: float
    warm_requests: int
    sim_hours: float
    clients: int = 8


FULL = Sizes(3, 10_000, 10.0, 4_000, 24.0)
QUICK = Sizes(3, 2_000, 3.0, 800, 4.0)


class Service:
    """candlevault as the bench sees it: its process and its HTTP API."""

    def __init__(self, server: Server, http: aiohttp.ClientSession, token: str) -> None:
        self.server = server
        self.http = http
        self.auth = {"Authorization": f"Bearer {token}"}

    async def get(self, path: str, admin: bool = False) -> Any:
        """GET `path`, 200 expected; return the decoded JSON."""
        async with self.http.get(self.server.url + path, headers=self.auth if admin else None) as r:
            body = await r.read()
            if r.status != 200:
                raise RuntimeError(f"{path}: HTTP {r.status} {body[:300]!r}")
            return orjson.loads(body)

    async def ready(self, timeout_s: float = 300.0) -> list[dict[str, Any]]:
        """Wait for /healthz and for every symbol's bootstrap job to be done."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                health = await self.get("/healthz")
                jobs = (await self.get("/api/v1/admin/bootstrap/status", admin=True))["jobs"]
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
                continue
            boots = [j for j in jobs if j["kind"] == "bootstrap"]
            failed = [j for j in boots if j["state"] in ("failed", "cancelled")]
            if failed:
                raise RuntimeError(f"bootstrap failed: {failed}")
            done = {j["symbol"] for j in boots if j["state"] == "done"}
            if health["status"] == "ok" and done >= set(SYMBOLS):
                return boots
            await asyncio.sleep(0.1)
        raise TimeoutError("candlevault's bootstrap did not finish")

    async def stats(self) -> dict[str, Any]:
        """The service's own figures (`/api/v1/admin/cache/stats`)."""
        stats: dict[str, Any] = await self.get("/api/v1/admin/cache/stats", admin=True)
        return stats


def service_env(sim_env: dict[str, str], since_ms: int, token: str, **extra: str) -> dict[str, str]:
    """The CANDLEVAULT_* variables of a service on the simulator, bootstrapping from since."""
    return {
        **sim_env,
        "CANDLEVAULT_SYMBOLS": ",".join(SYMBOLS),
        "CANDLEVAULT_BOOTSTRAP_SINCE": str(since_ms),
        "CANDLEVAULT_ADMIN_TOKEN": token,
        **extra,
    }


def sim_args(speed: float, listed_ms: int) -> list[str]:
    """The simulator's arguments: START, both symbols listed at `listed_ms`, limits
    scaled by `speed` (the budget is per wall minute; 6,000 a minute of sim time)."""
    scale = max(1, round(speed))
    return [
        *("--seed", "1", "--symbols", ",".join(SYMBOLS), "--start", START, "--outages", "none"),
        *("--speed", str(speed), "--listed", ",".join(f"{s}={listed_ms}" for s in SYMBOLS)),
        *("--binance-weight", str(SPOT_WEIGHT_PER_MINUTE * scale)),
    ]


async def sample(service: Service, path: str) -> tuple[bytes, dict[str, Any]]:
    """One read's body and head, checked: 200 and no warning."""
    async with service.http.get(service.server.url + path) as reply:
        body = await reply.read()
        assert reply.status == 200, f"{path}: HTTP {reply.status} {body[:300]!r}"
    head = orjson.loads(body)
    assert not head["warnings"], head["warnings"]
    return body, head


async def hot_reads(
    service: Service, bare: Server | None, sizes: Sizes, label: str, target_rps: int
) -> list[Row]:
    """Figures 1 and 2: one client's latency, 16 connections' throughput, vs the floor."""
    for _ in range(50):  # the first reads load what the bootstrap did not
        _, head = await sample(service, HOT)
    assert head["count"] == 500, head["count"]
    assert "hot" in head["layers"], head["layers"]

    async def one(server: Server) -> dict[str, Any]:
        n = sizes.latency_requests
        return await load(server, [HOT], requests=n, warmup_requests=n // 10)

    async def many(server: Server) -> dict[str, Any]:
        s = sizes.throughput_s
        return await load(server, [HOT], connections=16, seconds=s, warmup_seconds=1.0)

    ours_1, ours_16 = await one(service.server), await many(service.server)
    base_1 = await one(bare) if bare else None
    base_16 = await many(bare) if bare else None
    size = ours_1["body_bytes"] / ours_1["requests"]
    what = f"hot 1m x500 ({size / 1000:.0f} KB, {'+'.join(head['layers'])}), {label}"
    rows = [
        _latency_row(f"{what}: 1 client {name}", key, target, ours_1, base_1)
        for name, key, target in (("p50", "p50_ms", 1.0), ("p99", "p99_ms", 5.0))
    ]
    rps = ours_16["req_per_s"]
    rows.append(
        Row(
            f"{what}: 16 connections",
            f"{rps:,.0f} req/s",
            floor=f"{base_16['req_per_s']:,.0f} req/s" if base_16 else "",
            ratio=ratio(rps, base_16["req_per_s"]) if base_16 else "",
            cpu=_cpu(ours_16),
            target=f">= {target_rps:,} req/s",
            verdict=verdict(rps >= target_rps),
            note=_spread(ours_16),
        )
    )
    if base_16 is not None:
        rows.append(
            Row(
                "  floor (bare endpoint, same bytes), 16 connections",
                f"{base_16['req_per_s']:,.0f} req/s",
                cpu=_cpu(base_16),
                note=f"{_spread(base_16)}; the load generator's ceiling",
            )
        )
    return rows


async def warm_reads(service: Service, sim_clock: str, listed_ms: int, sizes: Sizes) -> Row:
    """Figure 3: random 500-candle 1m windows older than the hot retention."""
    async with service.http.get(sim_clock) as reply:
        now = int(orjson.loads(await reply.read())["time_ms"])
    last = now - 25 * HOUR_MS - 500 * MINUTE_MS  # an hour clear of the 24 h retention
    rng = random.Random(5)
    starts = sorted({rng.randrange(listed_ms, last) // MINUTE_MS * MINUTE_MS for _ in range(2000)})
    targets = [f"/api/v1/market/candles/BTCUSDT/1m?limit=500&start_time={s}" for s in starts]
    for path in targets[:: len(targets) // 20]:
        _, head = await sample(service, path)
        assert head["count"] == 500, head["count"]
        assert head["layers"] == ["warm"], head["layers"]
    figures = await load(
        service.server,
        targets,
        requests=sizes.warm_requests,
        warmup_requests=sizes.warm_requests // 10,
        seed=1,
    )
    p50, p99 = figures["p50_ms"], figures["p99_ms"]
    hours = (last - listed_ms) / HOUR_MS
    return Row(
        f"warm 1m x500, random start ({len(starts):,} over {hours:.0f} h, > 25 h old): "
        "1 client p50",
        f"{p50:.3f} ms",
        "",
        "",
        _cpu(figures),
        "<= 3 ms",
        verdict(p50 <= 3.0),
        f"p99 {p99:.2f} ms",
    )


def _latency_row(
    figure: str, key: str, target: float, ours: dict[str, Any], floor: dict[str, Any] | None
) -> Row:
    value = ours[key]
    return Row(
        figure,
        f"{value:.3f} ms",
        floor=f"{floor[key]:.3f} ms" if floor else "",
        ratio=ratio(value, floor[key]) if floor else "",
        cpu=_cpu(ours),
        target=f"<= {target:g} ms",
        verdict=verdict(value <= target),
    )


def _spread(figures: dict[str, Any]) -> str:
    return f"p50 {figures['p50_ms']:.2f} / p99 {figures['p99_ms']:.2f} ms"


def _cpu(figures: dict[str, Any]) -> str:
    seconds = figures["seconds"]
    server = figures["server_cpu_s"]
    shown = "-" if server is None else f"{server / seconds:.0%}"
    return f"{shown} / {figures['client_cpu_s'] / seconds:.0%}"


async def first_part(sizes: Sizes, redis_url: str | None) -> list[Row]:
    """Figures 1 to 3 at speed 1, then figure 1 again through Redis if asked."""
    since = parse_time_ms(START) - sizes.days * DAY_MS
    token = secrets.token_hex(16)
    rows: list[Row] = []
    with (
        tempfile.TemporaryDirectory() as tmp_dir,
        simulator(*sim_args(1.0, since)) as (_, sim_env),
    ):
        tmp = Path(tmp_dir)
        env = service_env(sim_env, since, token)
        async with aiohttp.ClientSession() as http:
            with candlevault(tmp / "memory", env) as server:
                service = Service(server, http, token)
                await service.ready()
                body, _ = await sample(service, HOT)
                (tmp / "body.json").write_bytes(body)
                with floor(tmp / "body.json") as bare:
                    rows += await hot_reads(service, bare, sizes, "in-process cache", 6000)
                rows.append(
                    await warm_reads(service, sim_env["CANDLEVAULT_CLOCK_URL"], since, sizes)
                )
            if redis_url is not None:
                rows += await through_redis(http, tmp / "redis", env, token, redis_url, sizes)
    return rows


async def through_redis(
    http: aiohttp.ClientSession,
    data_dir: Path,
    env: dict[str, str],
    token: str,
    url: str,
    sizes: Sizes,
) -> list[Row]:
    """Figure 1 with Redis as the hot cache, under a prefix of its own, deleted after."""
    prefix = f"cvbench:{uuid.uuid4().hex[:12]}:"
    extra = {"CANDLEVAULT_REDIS_URL": url, "CANDLEVAULT_REDIS_PREFIX": prefix}
    try:
        with candlevault(data_dir, {**env, **extra}) as server:
            service = Service(server, http, token)
            await service.ready()
            engine = (await service.get("/healthz"))["hot_cache"]
            assert engine == "redis", engine
            return await hot_reads(service, None, sizes, "Redis", 4000)
    finally:
        deleted = await delete_keys(url, prefix)
        print(f"Redis: deleted {deleted:,} keys under {prefix}")


async def delete_keys(url: str, prefix: str) -> int:
    """Delete every key under `prefix` (SCAN + DEL, never a flush); return how many."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    deleted = 0
    try:
        batch = [key async for key in client.scan_iter(match=f"{prefix}*", count=1000)]
        for start in range(0, len(batch), 1000):
            deleted += await client.delete(*batch[start : start + 1000])
    finally:
        await client.aclose()
    return deleted


async def simulated_day(sizes: Sizes, speed: float) -> list[Row]:
    """Figure 4: a sim day of clients polling every timeframe, counted on both sides."""
    since = parse_time_ms(START) - sizes.days * DAY_MS
    token = secrets.token_hex(16)
    targets = [f"/api/v1/market/candles/{s}/{tf}?limit=500" for tf in TIMEFRAMES for s in SYMBOLS]
    with (
        tempfile.TemporaryDirectory() as tmp_dir,
        simulator(*sim_args(speed, since)) as (sim, sim_env),
    ):
        async with aiohttp.ClientSession() as http:
            env = service_env(sim_env, since, token)
            with candlevault(Path(tmp_dir), env) as server:
                service = Service(server, http, token)
                started = time.monotonic()
                boots = await service.ready()
                booted_s = time.monotonic() - started
                after_boot = await service.stats()
                # Sim time ran on during the bootstrap: the first reads bring those minutes.
                await load(server, targets, connections=sizes.clients, seconds=1.0, strict=False)
                before = await service.stats()
                await http.post(f"{sim.url}/_sim/stats/reset")
                sim_t0 = await _sim_now(http, sim_env)
                day = await load(
                    server,
                    targets,
                    connections=sizes.clients,
                    seconds=sizes.sim_hours * 3600 / speed,
                    strict=False,
                )
                sim_t1 = await _sim_now(http, sim_env)
                after = await service.stats()
                async with http.get(f"{sim.url}/_sim/stats") as reply:
                    ledger = orjson.loads(await reply.read())["venues"]["binance"]
    return day_rows(
        boots=boots,
        booted_s=booted_s,
        after_boot=after_boot,
        before=before,
        after=after,
        ledger=ledger,
        day=day,
        sim_ms=sim_t1 - sim_t0,
        speed=speed,
        symbols=len(SYMBOLS),
        clients=sizes.clients,
        series=len(targets),
    )


async def _sim_now(http: aiohttp.ClientSession, sim_env: dict[str, str]) -> int:
    async with http.get(sim_env["CANDLEVAULT_CLOCK_URL"]) as reply:
        return int(orjson.loads(await reply.read())["time_ms"])


async def main(quick: bool, redis_url: str | None, speed: float) -> None:
    sizes = QUICK if quick else FULL
    print(
        f"Python {platform.python_version()} | {platform.machine()} | "
        f"{__import__('os').cpu_count()} cores | {sizes.days} days bootstrapped"
    )
    rows = await first_part(sizes, redis_url)
    rows += await simulated_day(sizes, speed)
    print_report(rows)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="~1 minute: 4 sim hours")
    parser.add_argument("--redis", metavar="URL", help="also measure with Redis as the hot cache")
    parser.add_argument("--speed", type=float, default=240.0, help="sim speed of the day")
    args = parser.parse_args()
    asyncio.run(main(args.quick, args.redis, args.speed))
