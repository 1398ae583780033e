"""Which higher timeframes are built from which, and which buckets a write touches.

Every timeframe is derived from 1m, but not all from 1m directly: each is built from
the largest timeframe that divides it (5m from 1m, 15m from 5m, ... 1d from 12h, 3d, 1w
and 1M from 1d), so a day of 1m candles is read and aggregated about twice in total
instead of once per timeframe. 1m -> 5m -> 15m equals 1m -> 15m, completeness flags
included (a property the aggregation tests check), so the chain changes no result.
"""

from __future__ import annotations

from bisect import bisect_left

from candlevault.domain.timeframes import (
    D1,
    D3,
    H1,
    H2,
    H4,
    H6,
    H8,
    H12,
    M1,
    M3,
    M5,
    M15,
    M30,
    MO1,
    W1,
    Timeframe,
)

DERIVATION: tuple[tuple[Timeframe, Timeframe], ...] = (
    (M3, M1),
    (M5, M1),
    (M15, M5),
    (M30, M15),
    (H1, M30),
    (H2, H1),
    (H4, H2),
    (H6, H2),
    (H8, H4),
    (H12, H6),
    (D1, H12),
    (D3, D1),
    (W1, D1),
    (MO1, D1),
)
"""(target, source) in an order where every source is written before its targets."""


def touched(target: Timeframe, opens: list[int], inception_ms: int | None) -> list[int]:
    """Return the distinct bucket opens of `target` that candles opening at `opens`
    (ascending) fall in, ascending: one bisect per bucket, not a step per candle."""
    out: list[int] = []
    i = 0
    while i < len(opens):
        bucket = target.bucket_open(opens[i], inception_ms)
        out.append(bucket)
        i = bisect_left(opens, target.next_open(bucket, inception_ms), i)
    return out


def spans(target: Timeframe, buckets: list[int], inception_ms: int | None) -> list[tuple[int, int]]:
    """Group consecutive buckets into [first open, last close] spans to read at once."""
    out: list[tuple[int, int]] = []
    for open_ms in buckets:
        if out and out[-1][1] + 1 == open_ms:
            out[-1] = (out[-1][0], target.close_time(open_ms, inception_ms))
        else:
            out.append((open_ms, target.close_time(open_ms, inception_ms)))
    return out
