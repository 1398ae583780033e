"""What candlevault's exact decimals cost against `decimal.Decimal`.

candlevault holds prices and volumes as Python ints scaled by a per-symbol `Precision`
(`parse_units` in, `format_units` out). This benchmark times, per operation and against
the obvious alternative of `Decimal` values built from the same exchange strings:

1. parsing one 8-decimal Binance string: `parse_units(s, 8)` vs `Decimal(s)`;
2. writing it back: `format_units(u, 8)` vs `format(d, "f")` and `str(d)`;
3. summing a day's 1440 quote volumes: `sum(ints)` vs `sum(decimals)`;
4. a 12-field kline row -> `Candle` (`parse_kline_row`) vs a struct of Decimals;
5. a candle -> kline row (`kline_row`) vs the same from the Decimal struct;
6. one day of 1m candles -> 1d: `aggregate` vs a plain Decimal fold, plus the same plain
   fold over ints, which isolates the representation from the extra work `aggregate`
   does (ordering, zero-volume candles, completeness).

It then shows whether sums stay exact at extreme magnitudes: ints always do; `Decimal`
in its default context keeps 28 significant digits, so it rounds once a total needs more.

Each figure is the best of several runs (`timeit.Timer.repeat`, min / number), so it is
the cost with warm caches and no GC pauses. Only correctness is asserted (round-trips,
both paths agreeing, `aggregate` reproducing Binance's own 1d row), never timings.

Data: the real Binance archive day ../shared/fixtures/binance/klines/ETHUSDT-1m-2022-08-14.csv
when present, else 1440 BTCUSDT-like candles from `random.Random(1)` (`--generated`
forces that).

Run:  .venv/bin/python -m bench.decimals [--quick] [--generated]
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import random
import timeit
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Context, Decimal, Inexact, localcontext
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from candlevault.aggregation import aggregate
from candlevault.domain.candles import Candle, kline_row, parse_kline_row
from candlevault.domain.decimals import BINANCE_SPOT, format_units, parse_units
from candlevault.domain.timeframes import D1, MINUTE_MS

SCALE = 8  # Binance spot writes every price and volume with 8 decimals
_KLINES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "binance" / "klines"
FIXTURE_1M = _KLINES / "ETHUSDT-1m-2022-08-14.csv"
FIXTURE_1D = _KLINES / "ETHUSDT-1d-2022-08.csv"
DAY_OPEN_MS = 1_660_435_200_000  # 2022-08-14T00:00Z, the fixture's day, for generated rows
INT64_MAX = 2**63 - 1

T = TypeVar("T")


class DecimalCandle(msgspec.Struct, frozen=True, gc=False):
    """The all-Decimal alternative to `Candle`: same fields, prices and volumes as Decimal."""

    open_time_ms: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    close_time_ms: int
    quote_volume: Decimal
    trades: int
    taker_buy_base: Decimal
    taker_buy_quote: Decimal
    closed: bool = True
    complete: bool = True


def parse_decimal_row(row: Sequence[str]) -> DecimalCandle:
    """Build a DecimalCandle from a Binance kline row, the obvious way."""
    if len(row) != 12:
        raise ValueError(f"expected 12 fields, got {len(row)}")
    return DecimalCandle(
        open_time_ms=int(row[0]),
        open=Decimal(row[1]),
        high=Decimal(row[2]),
        low=Decimal(row[3]),
        close=Decimal(row[4]),
        volume=Decimal(row[5]),
        close_time_ms=int(row[6]),
        quote_volume=Decimal(row[7]),
        trades=int(row[8]),
        taker_buy_base=Decimal(row[9]),
        taker_buy_quote=Decimal(row[10]),
    )


def decimal_row(c: DecimalCandle) -> list[int | str]:
    """Write a DecimalCandle as a Binance kline row (its Decimals keep 8 places)."""
    return [
        c.open_time_ms,
        format(c.open, "f"),
        format(c.high, "f"),
        format(c.low, "f"),
        format(c.close, "f"),
        format(c.volume, "f"),
        c.close_time_ms,
        format(c.quote_volume, "f"),
        c.trades,
        format(c.taker_buy_base, "f"),
        format(c.taker_buy_quote, "f"),
        "0",
    ]


def plain_fold(group: Sequence[Any], make: Callable[..., T]) -> T:
    """Fold candles in open-time order into one: first open, last close, max, min, sums."""
    first, last = group[0], group[-1]
    return make(
        open_time_ms=first.open_time_ms,
        open=first.open,
        high=max(c.high for c in group),
        low=min(c.low for c in group),
        close=last.close,
        volume=sum(c.volume for c in group),
        close_time_ms=last.close_time_ms,
        quote_volume=sum(c.quote_volume for c in group),
        trades=sum(c.trades for c in group),
        taker_buy_base=sum(c.taker_buy_base for c in group),
        taker_buy_quote=sum(c.taker_buy_quote for c in group),
    )


# --- data ---------------------------------------------------------------------------


def generated_rows(count: int, rng: random.Random) -> list[list[str]]:
    """Return `count` BTCUSDT-like 1m kline rows as archive CSV gives them (all strings).

    Prices move in 0.01 ticks around 60,000, base volumes have 5 decimals, quote
    volumes and taker-buy quote volumes use all 8, as Binance's do.
    """
    tick, lot = 10**6, 10**3  # 0.01 USDT and 0.00001 BTC, in units of 1e-8
    price = 60_000 * 10**8
    rows = []
    for i in range(count):
        open_ = price
        close = max(tick, open_ + rng.randint(-3000, 3000) * tick)
        high = max(open_, close) + rng.randint(0, 1500) * tick
        low = max(tick, min(open_, close) - rng.randint(0, 1500) * tick)
        volume = rng.randint(1, 20_000_000) * lot
        quote = volume * ((low + high) // 2) // 10**8 + rng.randrange(10**4)
        share = rng.random()
        open_ms = DAY_OPEN_MS + i * MINUTE_MS
        taker_base = int(volume * share) // lot * lot
        fields = (open_, high, low, close, volume)
        rows.append(
            [
                str(open_ms),
                *(format_units(u, SCALE) for u in fields),
                str(open_ms + MINUTE_MS - 1),
                format_units(quote, SCALE),
                str(rng.randint(50, 5000)),
                format_units(taker_base, SCALE),
                format_units(int(quote * share), SCALE),
                "0",
            ]
        )
        price = close
    return rows


@dataclass(frozen=True)
class Day:
    """A day of 1m kline rows, where they come from, and Binance's own 1d row if known."""

    source: str
    rows: list[list[str]]
    binance_1d: list[str] | None


def load_day(generated: bool) -> Day:
    """Return the real fixture day if present (and not `generated`), else a generated one."""
    if generated or not FIXTURE_1M.is_file():
        rows = generated_rows(1440, random.Random(1))
        return Day(
            f"generated BTCUSDT-like 1m candles, random.Random(1), {len(rows)} rows", rows, None
        )
    with FIXTURE_1M.open(newline="") as f:
        rows = list(csv.reader(f))
    binance_1d = None
    if FIXTURE_1D.is_file():
        with FIXTURE_1D.open(newline="") as f:
            binance_1d = next((r for r in csv.reader(f) if r[0] == rows[0][0]), None)
    return Day(f"{FIXTURE_1M.name} (real Binance archive, {len(rows)} rows)", rows, binance_1d)


def check_correctness(day: Day, candles: list[Candle]) -> None:
    """Assert both paths read and write every row back to the exchange's exact text,
    and aggregate to the same 1d candle (Binance's own, when the fixture has it)."""
    dec_candles = [parse_decimal_row(r) for r in day.rows]
    for row, candle, dec in zip(day.rows, candles, dec_candles, strict=True):
        assert [str(x) for x in kline_row(candle, BINANCE_SPOT)] == row
        assert [str(x) for x in decimal_row(dec)] == row
        for text in row[1:6] + row[7:8] + row[9:11]:
            assert format_units(parse_units(text, SCALE), SCALE) == text
            assert format(Decimal(text), "f") == text
    ours = aggregate(candles, D1)
    assert len(ours) == 1
    ours_row = kline_row(ours[0], BINANCE_SPOT)
    assert decimal_row(plain_fold(dec_candles, DecimalCandle)) == ours_row
    if day.binance_1d is not None:
        assert [str(x) for x in ours_row] == day.binance_1d


# --- timing -------------------------------------------------------------------------


@dataclass(frozen=True)
class Budget:
    """How long one timing run lasts at least, and how many runs the best is taken of."""

    run_s: float
    repeat: int


def best_ns(stmt: str, env: dict[str, Any], budget: Budget, per: int = 1) -> float:
    """Return the best-of-`repeat` time of `stmt` in ns, divided by `per` items it handles."""
    timer = timeit.Timer(stmt, globals=env)
    number = 1
    while timer.timeit(number) < budget.run_s / 2:  # calibrate, like Timer.autorange
        number *= 2
    return min(timer.repeat(repeat=budget.repeat, number=number)) / number * 1e9 / per


@dataclass(frozen=True)
class Row:
    """One line of the table: per-operation times of the int and the Decimal paths."""

    operation: str
    unit: str
    int_ns: float
    decimal_ns: float


# (operation, unit, per input candle?, int statement, Decimal statement); "µs" units are
# divided by 1000. Names are bound in `measure`; 8 is Binance spot's scale.
SPECS: list[tuple[str, str, bool, str, str]] = [
    ("parse {sample!r}", "ns", False, "parse_units(s, 8)", "Decimal(s)"),
    ('format back, vs format(d, "f")', "ns", False, "format_units(u, 8)", 'format(d, "f")'),
    ("format back, vs str(d)", "ns", False, "format_units(u, 8)", "str(d)"),
    ("sum of a day's {n} quote volumes", "µs/day", False, "sum(ints)", "sum(decs)"),
    (
        "kline row -> candle",
        "µs/candle",
        True,
        "for r in rows: parse_kline_row(r, BINANCE_SPOT)",
        "for r in rows: parse_decimal_row(r)",
    ),
    (
        "candle -> kline row",
        "µs/candle",
        True,
        "for c in candles: kline_row(c, BINANCE_SPOT)",
        "for c in dec_candles: decimal_row(c)",
    ),
    (
        "1m -> 1d: aggregate() vs plain fold",
        "ns/candle",
        True,
        "aggregate(candles, D1)",
        "plain_fold(dec_candles, DecimalCandle)",
    ),
    (
        "1m -> 1d: same plain fold, both",
        "ns/candle",
        True,
        "plain_fold(candles, Candle)",
        "plain_fold(dec_candles, DecimalCandle)",
    ),
]


def measure(day: Day, budget: Budget) -> list[Row]:
    """Time every operation of SPECS on the day's rows."""
    rows = day.rows
    candles = [parse_kline_row(r, BINANCE_SPOT) for r in rows]
    dec_candles = [parse_decimal_row(r) for r in rows]
    check_correctness(day, candles)
    sample = rows[len(rows) // 2][7]  # a mid-day quote volume
    d = Decimal(sample).quantize(Decimal(1).scaleb(-SCALE))  # keeps the exchange's 8 places
    assert format(d, "f") == str(d) == sample
    env: dict[str, Any] = {
        **globals(),
        "s": sample,
        "u": parse_units(sample, SCALE),
        "d": d,
        "rows": rows,
        "candles": candles,
        "dec_candles": dec_candles,
        "ints": [c.quote_volume for c in candles],
        "decs": [c.quote_volume for c in dec_candles],
    }
    table = []
    for operation, unit, per_candle, ours, theirs in SPECS:
        per = len(rows) if per_candle else 1
        scale = 1e3 if unit.startswith("µs") else 1.0
        table.append(
            Row(
                operation.format(sample=sample, n=len(rows)),
                unit,
                best_ns(ours, env, budget, per) / scale,
                best_ns(theirs, env, budget, per) / scale,
            )
        )
    return table


# --- exactness ----------------------------------------------------------------------

# (label, how many values, their magnitude in units of 1e-8): values are drawn uniformly
# in [magnitude / 2, magnitude * 3 / 2) with every one of the 8 decimals significant.
EXACTNESS_CASES: list[tuple[str, int, int]] = [
    ("month of 1m BTCUSDT quote volumes, ~1e12 USDT each", 44_640, 10**20),
    ("meme-coin day of 1m volumes, ~1e13 coins each", 1440, 10**21),
    ("past any venue: a day of ~1e18 coins each", 1440, 10**26),
]


def _as_units(total: Decimal) -> int:
    return parse_units(format(total, "f"), SCALE)


def exactness_line(label: str, count: int, magnitude: int) -> str:
    """Sum `count` generated values both ways and say whether each total is exact."""
    rng = random.Random(1)
    texts = [
        format_units(rng.randrange(magnitude // 2, magnitude * 3 // 2), SCALE) for _ in range(count)
    ]
    int_total = sum(parse_units(t, SCALE) for t in texts)
    decimals = [Decimal(t) for t in texts]
    with localcontext(Context(prec=200, traps=[Inexact])):  # wide enough, and proves it
        reference = _as_units(sum(decimals, Decimal(0)))
    with localcontext(Context()) as ctx:  # Decimal's default context: 28 digits
        decimal_total = sum(decimals, Decimal(0))
        rounded = bool(ctx.flags[Inexact]) or _as_units(decimal_total) != reference
    digits = len(str(reference))
    return (
        f"  {label}: {count:,} values, total {reference:.2e} units ({digits} digits"
        f"{', > int64' if reference > INT64_MAX else ''})"
        f" | int: {'exact' if int_total == reference else 'ROUNDED'}"
        f" | Decimal (28 digits): {'ROUNDED' if rounded else 'exact'}"
    )


# --- report -------------------------------------------------------------------------


def machine() -> str:
    """Return the CPU model (platform.processor, else /proc/cpuinfo, else the arch)."""
    name = platform.processor()
    cpuinfo = Path("/proc/cpuinfo")
    if not name and cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                name = line.partition(":")[2].strip()
                break
    return name or platform.machine()


def _num(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def render(table: list[Row]) -> list[str]:
    """Return the table as aligned text lines."""
    head = ("operation", "unit", "int (ours)", "Decimal", "ratio")
    cells = [
        (r.operation, r.unit, _num(r.int_ns), _num(r.decimal_ns), f"{r.decimal_ns / r.int_ns:.2f}")
        for r in table
    ]
    widths = [max(len(row[i]) for row in [head, *cells]) for i in range(len(head))]
    lines = []
    for row in [head, *cells]:
        left = [row[i].ljust(widths[i]) for i in range(2)]
        right = [row[i].rjust(widths[i]) for i in range(2, len(head))]
        lines.append(" | ".join(left + right))
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark and print the table and the exactness lines."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.decimals",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="shorter runs, fewer repeats")
    parser.add_argument("--generated", action="store_true", help="ignore the fixture day")
    args = parser.parse_args(argv)
    budget = Budget(run_s=0.01, repeat=3) if args.quick else Budget(run_s=0.1, repeat=7)
    day = load_day(args.generated)
    print(
        f"Python {platform.python_version()} ({platform.python_implementation()}),"
        f" msgspec {msgspec.__version__} | {machine()} | {os.cpu_count()} CPUs"
        f" | {platform.system()}"
    )
    print(f"data: {day.source}")
    print(
        f"best of {budget.repeat} runs of >= {budget.run_s:g} s each;"
        " ratio = Decimal / int (above 1: ints faster)"
    )
    print()
    print("\n".join(render(measure(day, budget))))
    print(
        f'str(d) is not a safe writer: str(Decimal("0.00000010")) == {str(Decimal("0.00000010"))!r}'
    )
    print()
    print(
        "exactness of sums at 8 decimals (units = 1e-8). Decimal's default context keeps 28"
        f" significant digits, so it rounds once a total passes 1e28 units (1e{28 - SCALE} coins):"
    )
    for label, count, magnitude in EXACTNESS_CASES:
        print(exactness_line(label, count, magnitude))


if __name__ == "__main__":
    main()
