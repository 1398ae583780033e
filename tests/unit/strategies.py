"""Hypothesis strategies for candle series and trades.

A series is drawn as a few structural choices (start, length, how often a minute is
missing, zero-volume or an outage) plus a seed that fills in prices and volumes: far
faster than drawing each of hundreds of candles, and still reproducible.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from hypothesis import strategies as st

from candlevault.domain.candles import Candle
from candlevault.domain.timeframes import MINUTE_MS
from candlevault.domain.trades import Trade

# 2017-01-01 .. 2037-01-01, in minutes since the epoch
FIRST_MINUTE = 24_720_480
LAST_MINUTE = 35_239_680


@dataclass(frozen=True)
class Series:
    candles: list[Candle]  # ascending, with gaps where a minute is missing
    outages: list[tuple[int, int]]  # minute-aligned, no candles inside
    missing: list[int]  # open times of minutes simply absent (not an outage)
    inception_ms: int


def minute_candle(
    rng: random.Random, open_ms: int, prev_close: int, zero: bool, with_optional: bool = True
) -> Candle:
    """One plausible 1m candle (or a flat zero-volume one at the previous close)."""
    if zero:
        o = h = lo = c = prev_close
        volume = quote = trades = taker_base = taker_quote = 0
    else:
        o = max(1, prev_close + rng.randint(-50, 50))
        c = max(1, o + rng.randint(-100, 100))
        h = max(o, c) + rng.randint(0, 60)
        lo = max(1, min(o, c) - rng.randint(0, 60))
        volume = rng.randint(1, 10**12)
        quote = volume * rng.randint(lo, h)
        trades = rng.randint(1, 5000)
        taker_base = rng.randint(0, volume)
        taker_quote = rng.randint(0, quote)
    return Candle(
        open_time_ms=open_ms,
        open=o,
        high=h,
        low=lo,
        close=c,
        volume=volume,
        close_time_ms=open_ms + MINUTE_MS - 1,
        quote_volume=quote,
        trades=trades if with_optional else None,
        taker_buy_base=taker_base if with_optional else None,
        taker_buy_quote=taker_quote if with_optional else None,
    )


@st.composite
def minute_series(draw: st.DrawFn, max_minutes: int = 3000, allow_gaps: bool = True) -> Series:
    """A 1m series from its inception: traded, zero-volume, missing and outage minutes."""
    first = draw(st.integers(FIRST_MINUTE, LAST_MINUTE)) * MINUTE_MS
    length = draw(st.integers(1, max_minutes))
    zero_share = draw(st.sampled_from([0.0, 0.05, 0.5, 0.95]))
    gap_share = draw(st.sampled_from([0.0, 0.01, 0.2])) if allow_gaps else 0.0
    outage_count = draw(st.integers(0, 3)) if allow_gaps else 0
    with_optional = draw(st.booleans())
    rng = random.Random(draw(st.integers(0, 2**32)))

    dark: set[int] = set()
    outages = []
    for _ in range(outage_count):
        lo = rng.randrange(1, length + 1)
        hi = min(length, lo + rng.randint(1, 400))
        outages.append((first + lo * MINUTE_MS, first + hi * MINUTE_MS))
        dark.update(range(lo, hi))
    candles: list[Candle] = []
    missing: list[int] = []
    prev_close = rng.randint(100, 10**9)
    for i in range(length):
        open_ms = first + i * MINUTE_MS
        if i in dark:
            continue
        if i and rng.random() < gap_share:
            missing.append(open_ms)
            continue
        candle = minute_candle(
            rng, open_ms, prev_close, i > 0 and rng.random() < zero_share, with_optional
        )
        candles.append(candle)
        prev_close = candle.close
    return Series(candles, [o for o in outages if o[0] < o[1]], missing, first)


@st.composite
def minute_trades(draw: st.DrawFn, open_ms: int = 0, max_trades: int = 60) -> list[Trade]:
    """Trades inside one minute, in venue order, prices and quantities in units."""
    count = draw(st.integers(0, max_trades))
    rng = random.Random(draw(st.integers(0, 2**32)))
    price = rng.randint(1, 10**10)
    trades = []
    for i in range(count):
        price = max(1, price + rng.randint(-1000, 1000))
        trades.append(
            Trade(
                trade_id=i + 1,
                price=price,
                qty=rng.randint(1, 10**9),
                time_ms=open_ms + i * (MINUTE_MS // max(count, 1)),
                buyer_is_maker=rng.random() < 0.5,
                count=rng.randint(1, 3),
            )
        )
    return trades


def minute_run(seed: int, n: int, start_ms: int, first_close: int = 1_000_000) -> list[Candle]:
    """`n` consecutive plausible 1m candles from `start_ms` (a tenth of them flat)."""
    rng = random.Random(seed)
    out, prev = [], first_close
    for i in range(n):
        candle = minute_candle(rng, start_ms + i * MINUTE_MS, prev, zero=rng.random() < 0.1)
        out.append(candle)
        prev = candle.close
    return out
