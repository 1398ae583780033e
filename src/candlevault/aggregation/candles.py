"""Lower-timeframe candles -> higher-timeframe candles, exactly as Binance builds them.

The rule the recorded exchange data shows (../shared/fixtures/README.md):
- open = first open, close = last close, high = max, low = min, volumes, quote
  volumes, trade counts and taker-buy volumes summed, close time = next open - 1 ms;
- zero-volume sub-candles (which Binance emits flat at the previous close) take no part
  in open/high/low/close, though their zero volumes are still summed; a bucket of only
  zero-volume sub-candles is itself flat at the previous close;
- an exchange outage is *missing* rows, not zero-volume rows: nothing is invented.

A bucket is `complete` when every sub-interval from max(bucket open, the symbol's
inception) to its close is present (and itself complete) or lies in a known outage;
otherwise it is flagged incomplete rather than passed off as whole. Hence a symbol's
first 1w/1M bucket and the day of an outage are complete, as the exchange serves them.
A field that any sub-candle lacks (None: the venue does not publish it) is None.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from itertools import pairwise

from candlevault.domain.candles import Candle
from candlevault.domain.errors import BadRequest
from candlevault.domain.timeframes import M1, GridKind, Timeframe

Outage = tuple[int, int]
"""A half-open [start_ms, end_ms) span in which the exchange had no data at all."""


def aggregate(
    candles: Iterable[Candle],
    target: Timeframe,
    *,
    source: Timeframe = M1,
    inception_ms: int | None = None,
    outages: Sequence[Outage] = (),
    now_ms: int | None = None,
) -> list[Candle]:
    """Aggregate `source` candles (any order, duplicates allowed) into `target` buckets.

    `inception_ms` (the symbol's first candle) is needed for 3d buckets and makes the
    first bucket complete from the listing on. A bucket is `closed` when all its
    sub-candles are and its time is over: `now_ms` says when that is; without it, only
    a complete bucket counts as over.
    """
    if not source.divides(target):
        raise BadRequest(f"{target.code} candles cannot be built from {source.code} candles")
    rows = _sorted_unique(candles)
    spans = merge_outages(outages)
    out: list[Candle] = []
    start = 0
    while start < len(rows):
        bucket = target.bucket_open(rows[start].open_time_ms, inception_ms)
        next_open = target.next_open(bucket, inception_ms)
        end = start + 1
        while end < len(rows) and rows[end].open_time_ms < next_open:
            end += 1
        group = rows[start:end]
        sub_first = (
            bucket
            if inception_ms is None
            else max(bucket, source.bucket_open(inception_ms, inception_ms))
        )
        complete = _accounted(group, source, sub_first, next_open, spans)
        # Without a clock, only a complete bucket is known to be over.
        over = next_open <= now_ms if now_ms is not None else complete
        closed = over and all(c.closed for c in group)
        out.append(_combine(group, bucket, next_open - 1, closed, complete))
        start = end
    return out


def _sorted_unique(candles: Iterable[Candle]) -> list[Candle]:
    """Sort by open time; a repeated open time must be the same candle."""
    rows = list(candles)
    if all(a.open_time_ms < b.open_time_ms for a, b in pairwise(rows)):
        return rows
    by_open: dict[int, Candle] = {}
    for candle in rows:
        seen = by_open.setdefault(candle.open_time_ms, candle)
        if seen != candle:
            raise BadRequest(f"two different candles share open time {candle.open_time_ms}")
    return [by_open[t] for t in sorted(by_open)]


def merge_outages(outages: Sequence[Outage]) -> list[Outage]:
    """Return outages sorted with overlapping or touching spans merged."""
    merged: list[Outage] = []
    for lo, hi in sorted(outages):
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        elif lo < hi:
            merged.append((lo, hi))
    return merged


def in_outage(spans: list[Outage], lo: int, hi: int) -> bool:
    """True when [lo, hi) lies wholly inside one outage span."""
    i = bisect_right(spans, (lo, 1 << 62)) - 1
    return i >= 0 and spans[i][0] <= lo and hi <= spans[i][1]


def _accounted(
    group: list[Candle], source: Timeframe, first: int, next_open: int, spans: list[Outage]
) -> bool:
    """True when every sub-interval from `first` is present (and complete) or dark."""
    if not all(c.complete for c in group):
        return False
    opens = [c.open_time_ms for c in group if c.open_time_ms >= first]
    if source.kind is not GridKind.FIXED:  # only 3d -> 3d or 1M -> 1M: one sub-interval
        return bool(opens) or in_outage(spans, first, next_open)
    step, origin = source.duration_ms, source.origin_ms
    expected = count_within(first, next_open, step, origin)
    dark = sum(count_within(max(first, lo), min(next_open, hi), step, origin) for lo, hi in spans)
    dark -= sum(1 for t in opens if in_outage(spans, t, t + step))
    return len(opens) + dark >= expected


def count_within(lo: int, hi: int, step: int, origin: int) -> int:
    """Count the intervals [t, t + step) of the grid (origin + k·step) inside [lo, hi)."""
    first = lo + (origin - lo) % step
    return max(0, (hi - first) // step)


def _combine(
    group: list[Candle], open_ms: int, close_ms: int, closed: bool, complete: bool
) -> Candle:
    traded = [c for c in group if c.volume] or None
    if traded is None:
        flat = group[0].open  # every sub-candle is flat at the previous close
        o = h = lo = c = flat
    else:
        o, c = traded[0].open, traded[-1].close
        h = max(x.high for x in traded)
        lo = min(x.low for x in traded)
    return Candle(
        open_time_ms=open_ms,
        open=o,
        high=h,
        low=lo,
        close=c,
        volume=sum(x.volume for x in group),
        close_time_ms=close_ms,
        quote_volume=sum(x.quote_volume for x in group),
        trades=_sum_optional([x.trades for x in group]),
        taker_buy_base=_sum_optional([x.taker_buy_base for x in group]),
        taker_buy_quote=_sum_optional([x.taker_buy_quote for x in group]),
        closed=closed,
        complete=complete,
    )


def _sum_optional(values: list[int | None]) -> int | None:
    total = 0
    for value in values:
        if value is None:
            return None
        total += value
    return total


def forming_candle(
    stored: Candle | None,
    minute: Candle | None,
    target: Timeframe,
    *,
    inception_ms: int | None = None,
    complete: bool = False,
) -> Candle | None:
    """Return the open `target` candle: its bucket's stored part (derived from the closed
    minutes so far; ignored if it is another bucket's) folded with the forming minute.

    The same rule as a closed bucket's, so the open candle becomes the closed one
    without a jump; `complete` is the caller's knowledge (the ledger's) that every minute
    of the bucket before the forming one is present or a known outage."""
    anchor = minute if minute is not None else stored
    if anchor is None:
        return None
    bucket = target.bucket_open(anchor.open_time_ms, inception_ms)
    minutes = [] if minute is None else [minute]
    return extend_bucket(
        stored, minutes, target, bucket, inception_ms=inception_ms, closed=False, complete=complete
    )


def extend_bucket(
    stored: Candle | None,
    minutes: Sequence[Candle],
    target: Timeframe,
    bucket: int,
    *,
    inception_ms: int | None,
    closed: bool,
    complete: bool,
) -> Candle | None:
    """Fold the `target` bucket opening at `bucket`: its stored part (ignored if it is
    another bucket's) and the later 1m `minutes` of it (ascending), by the one rule."""
    next_open = target.next_open(bucket, inception_ms)
    group = [c for c in (stored,) if c is not None and c.open_time_ms == bucket]
    group += [c for c in minutes if bucket <= c.open_time_ms < next_open]
    if not group:
        return None
    close_ms = target.close_time(bucket, inception_ms)
    return _combine(group, bucket, close_ms, closed=closed, complete=complete)
