"""How many trades a second the real-time `CandleBuilder` folds on one core.

The builder's design puts all per-trade work on the open 1m accumulator (a range check,
a duplicate-id check, `CandleAccumulator.add`); higher timeframes are updated once per
closed minute and folded with the open minute only when read. This benchmark checks that
the design holds its target of >= 1,000,000 trades/s by timing:

1. `add` + `advance` with all 15 timeframes open (the default);
2. the same with 1m only, which shows what the higher timeframes cost (next to nothing
   per trade: only the per-minute close differs);
3. the bare `CandleAccumulator.add` loop, the floor any builder on it pays;
4. one `open_candles()` read of all 15 timeframes (lazy folding, per read not per trade).

Stream: BTCUSDT-like Binance spot trades from `random.Random(1)`: prices a random walk
of 0.01 ticks near 30,000.00, quantities in units of 0.00001 (0.00001 .. 0.5), 6,000
trades a minute (100/s) in arrival order, with `advance` called once per simulated
second as a stream supervisor would (the feed alive). Values are units of the 8-decimal
`BINANCE_SPOT` precision, so every sum is exact with no rounding.

Each figure is the best of several runs over a fresh builder (generation excluded).
Correctness is asserted, never timings: the closed 1m candles of run 1 equal
`fold_trades` per minute.

Run:  .venv/bin/python -m bench.builder [--quick]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bench.decimals import machine
from candlevault.aggregation import CandleAccumulator, fold_trades
from candlevault.aggregation.builder import CandleBuilder
from candlevault.domain.candles import Candle
from candlevault.domain.decimals import BINANCE_SPOT
from candlevault.domain.timeframes import M1, MINUTE_MS, TIMEFRAMES
from candlevault.domain.trades import Trade

TARGET_PER_S = 1_000_000
START_MS = 1_700_006_400_000  # 2023-11-15 00:00 UTC, a minute (and day) open
TRADES_PER_MINUTE = 6_000
TICK = 10**6  # 0.01 in units of 1e-8
STEP = 10**3  # 0.00001 in units of 1e-8


@dataclass(frozen=True)
class Stream:
    """Trades in arrival order, cut into one-second batches (each with its end time)."""

    trades: list[Trade]
    seconds: list[tuple[int, list[Trade]]]


def make_stream(minutes: int, rng: random.Random) -> Stream:
    """Generate `minutes` minutes of BTCUSDT-like trades, 100 a second."""
    per_second = TRADES_PER_MINUTE // 60
    price = 30_000 * 100 * TICK
    trades: list[Trade] = []
    seconds: list[tuple[int, list[Trade]]] = []
    for second in range(minutes * 60):
        at = START_MS + second * 1000
        batch: list[Trade] = []
        for offset in sorted(rng.randrange(1000) for _ in range(per_second)):
            price += rng.choice((-TICK, 0, 0, TICK))
            batch.append(
                Trade(
                    trade_id=len(trades) + len(batch) + 1,
                    price=price,
                    qty=rng.randint(1, 50_000) * STEP,
                    time_ms=at + offset,
                    buyer_is_maker=rng.random() < 0.5,
                )
            )
        trades.extend(batch)
        seconds.append((at + 1000, batch))
    return Stream(trades, seconds)


def feed(stream: Stream, builder: CandleBuilder) -> list[Candle]:
    """Feed every trade, advancing the clock once a second; return the closed candles."""
    add, advance = builder.add, builder.advance
    closed: list[Candle] = []
    for now, batch in stream.seconds:
        for trade in batch:
            add(trade)
        closed.extend(advance(now, now).candles)
    return closed


def bare_accumulator(stream: Stream) -> None:
    """The floor: every trade into one accumulator, nothing else."""
    add = CandleAccumulator(START_MS, BINANCE_SPOT).add
    for trade in stream.trades:
        add(trade)


def check(stream: Stream, closed: list[Candle]) -> None:
    """The builder's closed candles equal `fold_trades` per minute."""
    by_minute: dict[int, list[Trade]] = {}
    for trade in stream.trades:
        by_minute.setdefault(trade.time_ms - trade.time_ms % MINUTE_MS, []).append(trade)
    prev: int | None = None
    expected = []
    for minute in sorted(by_minute)[: len(closed)]:
        candle = fold_trades(
            by_minute[minute], open_time_ms=minute, precision=BINANCE_SPOT, prev_close=prev
        )
        assert candle is not None
        expected.append(candle)
        prev = candle.close
    assert closed == expected, "the builder disagrees with fold_trades"
    assert len(closed) >= len(by_minute) - 1  # all but the last, still within its grace


def best_s(run: Callable[[], object], repeat: int) -> float:
    """Return the best wall time of `repeat` runs, in seconds."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


@dataclass(frozen=True)
class Row:
    scenario: str
    count: int
    seconds: float

    @property
    def per_s(self) -> float:
        return self.count / self.seconds


def all_timeframes() -> CandleBuilder:
    """A builder of every timeframe whose feed started at the stream's first minute."""
    return CandleBuilder(BINANCE_SPOT, inception_ms=START_MS, start_ms=START_MS)


def measure(stream: Stream, repeat: int) -> tuple[list[Row], float]:
    """Time the scenarios; return the table and one open_candles() read in µs."""
    n = len(stream.trades)
    check(
        stream, feed(stream, CandleBuilder(BINANCE_SPOT, inception_ms=START_MS, start_ms=START_MS))
    )

    def all_tfs() -> None:
        feed(stream, CandleBuilder(BINANCE_SPOT, inception_ms=START_MS, start_ms=START_MS))

    def one_m() -> None:
        feed(stream, CandleBuilder(BINANCE_SPOT, timeframes=[M1], start_ms=START_MS))

    def floor() -> None:
        bare_accumulator(stream)

    rows = [
        Row(f"add+advance, all {len(TIMEFRAMES)} timeframes open", n, best_s(all_tfs, repeat)),
        Row("add+advance, 1m only", n, best_s(one_m, repeat)),
        Row(
            "bare CandleAccumulator.add (floor)",
            n,
            best_s(lambda: bare_accumulator(stream), repeat),
        ),
    ]
    builder = all_timeframes()
    feed(stream, builder)
    reads = 2_000
    read_s = best_s(lambda: [builder.open_candles() for _ in range(reads)], repeat)
    assert len(builder.open_candles()) == len(TIMEFRAMES)
    return rows, read_s / reads * 1e6


def render(rows: list[Row]) -> list[str]:
    """Return the table as aligned text lines."""
    head = ("scenario", "trades", "trades/s", "ns/trade", "target", "meets")
    cells = [
        (
            r.scenario,
            f"{r.count:,}",
            f"{r.per_s:,.0f}",
            f"{r.seconds / r.count * 1e9:.0f}",
            f"{TARGET_PER_S:,}",
            "yes" if r.per_s >= TARGET_PER_S else "NO",
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in [head, *cells]) for i in range(len(head))]
    lines = [
        " | ".join([row[0].ljust(widths[0])] + [row[i].rjust(widths[i]) for i in range(1, 6)])
        for row in [head, *cells]
    ]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.builder",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="fewer minutes, fewer repeats")
    args = parser.parse_args(argv)
    minutes, repeat = (20, 3) if args.quick else (120, 5)
    stream = make_stream(minutes, random.Random(1))
    print(
        f"Python {platform.python_version()} ({platform.python_implementation()})"
        f" | {machine()} | {os.cpu_count()} CPUs | {platform.system()} | one core"
    )
    print(
        f"stream: {len(stream.trades):,} BTCUSDT-like trades over {minutes} minutes"
        f" ({TRADES_PER_MINUTE:,}/minute), advance once a second; best of {repeat} runs"
    )
    print()
    rows, read_us = measure(stream, repeat)
    print("\n".join(render(rows)))
    print(f"open_candles() of all {len(TIMEFRAMES)} timeframes: {read_us:.1f} µs a read")


if __name__ == "__main__":
    main()
