"""Warm-store benchmark: bulk ingest with every derived timeframe, then reads.

What it measures (the targets are issue 5's):
- sustained bulk insert through `Ingestor.ingest` (1m upserted and all 14 higher
  timeframes derived and written): 1m candles/s, target >= 500,000;
- reads through the store API into `CandleColumns` (no object per candle): latest 500
  candles p50 <= 0.3 ms, a random 500-candle window p50 <= 0.5 ms, on a symbol with a
  ~5-million-row 1m history among ~10 million rows; once in the writing process (its
  chunk cache warm from the ingest, 256 MiB) and once in a read-only process's view
  (no cache: every read goes to a SQLite reader thread);
- database size per million 1m candles (derived timeframes included; WAL checkpointed).

Candles come from the simulator's market model (realistic values, any history); their
generation is not timed. Run:

    .venv/bin/python -m bench.store            # ~10 M rows: a few minutes
    .venv/bin/python -m bench.store --quick    # ~1 M rows
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from candlevault.domain.columns import columns_from
from candlevault.domain.timeframes import D1, M1
from candlevault.domain.venues import Venue
from candlevault.ingest.writer import Ingestor
from candlevault.simulator.world import SimConfig, SimWorld
from candlevault.storage.sqlite import FILE_NAME, SqliteStore

DAY_MS = 86_400_000
BATCH_DAYS = 10


async def ingest_history(
    ingestor: Ingestor, world: SimWorld, symbol: str, rows: int
) -> tuple[int, float]:
    """Ingest up to `rows` 1m candles of `symbol` from its listing; return (rows, seconds)."""
    market = world.market(Venue.BINANCE, symbol)
    assert market is not None
    listed = market.listing.listed_ms
    day = listed - listed % DAY_MS
    done, spent = 0, 0.0
    while done < rows:
        candles = market.candles(day, day + BATCH_DAYS * DAY_MS - 1)[: rows - done]
        day += BATCH_DAYS * DAY_MS
        if not candles:
            continue
        batch = columns_from(candles)
        start = time.perf_counter()
        await ingestor.ingest(Venue.BINANCE, symbol, batch, inception_ms=listed)
        spent += time.perf_counter() - start
        done += len(candles)
        print(f"\r  {symbol}: {done:,} rows, {done / spent:,.0f}/s", end="", file=sys.stderr)
    print(file=sys.stderr)
    return done, spent


async def timed_reads(
    store: SqliteStore, symbol: str, bounds: tuple[int, int], n: int
) -> dict[str, list[float]]:
    """Time `n` of each read; return the samples in ms."""
    rng = random.Random(1)
    first, last = bounds
    samples: dict[str, list[float]] = {
        "latest 500": [],
        "random 500 window": [],
        "1d, whole history": [],
    }
    for _ in range(n):
        t = time.perf_counter()
        latest = await store.latest(Venue.BINANCE, symbol, M1, 500)
        samples["latest 500"].append((time.perf_counter() - t) * 1000)
        assert len(latest) == 500
        start = rng.randrange(first, last - 600 * 60_000)
        t = time.perf_counter()
        window = await store.read(Venue.BINANCE, symbol, M1, start_ms=start, limit=500)
        samples["random 500 window"].append((time.perf_counter() - t) * 1000)
        assert len(window) == 500
    for _ in range(max(5, n // 50)):
        t = time.perf_counter()
        days = await store.read(Venue.BINANCE, symbol, D1)
        samples["1d, whole history"].append((time.perf_counter() - t) * 1000)
        assert len(days) > 0
    return samples


async def main(quick: bool) -> None:
    main_rows = 500_000 if quick else 5_000_000
    other_rows = 500_000 if quick else 5_000_000
    print(
        f"Python {platform.python_version()} | {platform.machine()} | SQLite "
        f"{__import__('sqlite3').sqlite_version}"
    )
    world = SimWorld(SimConfig(symbols=("BTCUSDT", "ETHUSDT"), outages=()))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / FILE_NAME
        store = await SqliteStore.open(path)
        try:
            ingestor = Ingestor(store)
            n1, s1 = await ingest_history(ingestor, world, "ETHUSDT", other_rows)
            n2, s2 = await ingest_history(ingestor, world, "BTCUSDT", main_rows)
            del world  # the market model's memory is the harness's, not the store's:
            gc.collect()  # let its garbage not stretch the reads' collections
            bounds = await store.bounds(Venue.BINANCE, "BTCUSDT", M1)
            assert bounds is not None
            await store.checkpoint()  # as a bootstrap does when it is done
            samples = await timed_reads(store, "BTCUSDT", bounds, 200 if quick else 1000)
        finally:
            await store.aclose()
        size = await asyncio.to_thread(_size, Path(tmp))
        reader = await SqliteStore.open(path, readonly=True)
        try:
            uncached = await timed_reads(reader, "BTCUSDT", bounds, 200 if quick else 1000)
        finally:
            await reader.aclose()
    rate = (n1 + n2) / (s1 + s2)
    print(f"\n1m rows: {n1 + n2:,} ({n2:,} BTCUSDT + {n1:,} ETHUSDT), with 14 derived timeframes")
    print(f"{'figure':<44} | {'result':>16} | target")
    print("-" * 45 + "+" + "-" * 18 + "+" + "-" * 24)
    print(
        f"{'bulk ingest, all timeframes written':<44} | {rate:>13,.0f} /s | >= 500,000/s: "
        f"{'met' if rate >= 500_000 else 'MISSED'} ({rate / 500_000:.2f}x)"
    )
    targets = {"latest 500": 0.3, "random 500 window": 0.5}
    labelled = [(f"{k} (cached)", k, v) for k, v in samples.items()]
    labelled += [(f"{k} (no cache)", k, v) for k, v in uncached.items()]
    for label, name, values in labelled:
        p50 = statistics.median(values)
        p99 = sorted(values)[int(len(values) * 0.99) - 1]
        target = targets.get(name)
        verdict = (
            ""
            if target is None
            else (f"p50 <= {target} ms: {'met' if p50 <= target else 'MISSED'}")
        )
        print(f"{label + ' p50 / p99':<44} | {p50:6.3f} / {p99:5.2f} ms | {verdict}")
    per_million = size / (n1 + n2) * 1e6 / 2**20
    print(f"{'database size per million 1m candles':<44} | {per_million:>12.1f} MiB |")


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="~1 M rows instead of ~10 M")
    asyncio.run(main(parser.parse_args().quick))
