"""Which candles a read asks for: Binance's paging rules, as pure functions of the clock.

Binance pages klines two ways, and both our API and the Binance-compatible endpoints
follow them so that a client sees the same rows from candlevault as from the venue:

- with a start: the oldest `limit` candles opening in [start, end];
- without one: the newest `limit` opening at or before end.

`end` defaults to now and nothing opens after now, so a window that reaches now ends
with the forming candle. Open times are bucket opens of the timeframe (3d buckets are
anchored at the listing, months are calendar months), so a start inside a bucket begins
at the next one, as on Binance.
"""

from __future__ import annotations

from typing import NamedTuple

from candlevault.domain.errors import BadValue
from candlevault.domain.spans import SpanSet
from candlevault.domain.timeframes import (
    DAY_MS,
    GridKind,
    Timeframe,
    civil_from_days,
    days_from_civil,
)


class ReadWindow(NamedTuple):
    """Open times [first_ms, last_ms] (inclusive) of a read, at most `limit` candles;
    `newest`: keep the newest `limit` when there are more (no start was given)."""

    tf: Timeframe
    first_ms: int
    last_ms: int
    limit: int
    newest: bool
    forming_ms: int  # open time of the bucket forming at the read's `now`

    @property
    def empty(self) -> bool:
        """True when no candle can open in the window (it starts after its end)."""
        return self.first_ms > self.last_ms

    @property
    def reaches_forming(self) -> bool:
        """True when the forming candle is the window's last bucket."""
        return not self.empty and self.last_ms >= self.forming_ms

    @property
    def last_closed_ms(self) -> int:
        """Open time of the window's last closed bucket (< first_ms: none)."""
        if self.last_ms < self.forming_ms:
            return self.last_ms
        return (
            self.forming_ms - 1
            if self.tf.kind is GridKind.MONTH
            else self.forming_ms - self.tf.duration_ms
        )

    def minutes(self, inception_ms: int | None, now_ms: int) -> tuple[int, int]:
        """The 1m span [start, end) the window's candles are made of, up to the last
        closed minute: the open candle's closed minutes are part of it."""
        if self.reaches_forming:
            end = now_ms - now_ms % 60_000
        else:
            end = min(self.tf.next_open(self.last_ms, inception_ms), self.forming_ms)
        return self.first_ms, max(self.first_ms, end)


def resolve(
    tf: Timeframe,
    now_ms: int,
    *,
    start_ms: int | None,
    end_ms: int | None,
    limit: int,
    inception_ms: int | None = None,
) -> ReadWindow:
    """Turn a read's parameters into the open times it covers (see the module docstring)."""
    check_window(start_ms, end_ms)
    forming = tf.bucket_open(now_ms, inception_ms)
    end = now_ms if end_ms is None else min(end_ms, now_ms)
    last = tf.bucket_open(end, inception_ms)
    if start_ms is None:
        first = back(tf, last, limit - 1, inception_ms)
        return ReadWindow(tf, first, last, limit, True, forming)
    first = tf.bucket_open(start_ms, inception_ms)
    if first < start_ms:
        first = tf.next_open(first, inception_ms)
    if first <= last:
        last = min(last, forward(tf, first, limit - 1, inception_ms))
    return ReadWindow(tf, first, last, limit, False, forming)


def widen(window: ReadWindow, empty: SpanSet, count: int, inception_ms: int | None) -> ReadWindow:
    """Move a newest window's start back so that it holds `count` buckets that are not
    wholly inside confirmed-empty minutes (an exchange outage has no candles: Binance's
    newest `limit` reach past it), jumping over each outage at once; never before the
    listing."""
    if not window.newest or window.empty or not empty.overlaps(window.first_ms, window.forming_ms):
        return window
    tf = window.tf
    floor = None if inception_ms is None else tf.bucket_open(inception_ms, inception_ms)
    t, first, counted = window.last_ms, window.last_ms, 0
    while counted < count and (floor is None or t >= floor):
        outage = empty.span_at(t)
        if outage is not None and outage[1] >= tf.next_open(t, inception_ms):
            t = tf.bucket_open(outage[0] - 1, inception_ms)  # the bucket before the outage
            continue
        first, counted = t, counted + 1
        t = forward(tf, t, -1, inception_ms)
    return window._replace(first_ms=min(first, window.first_ms))


def check_window(start_ms: int | None, end_ms: int | None) -> None:
    """Refuse a window that ends before it starts."""
    if start_ms is not None and end_ms is not None and start_ms > end_ms:
        raise BadValue("window", f"{start_ms} > {end_ms}", "expected start_time <= end_time")


def back(tf: Timeframe, open_ms: int, n: int, inception_ms: int | None = None) -> int:
    """Return the open time `n` buckets before the bucket opening at `open_ms`."""
    return forward(tf, open_ms, -n, inception_ms)


def forward(tf: Timeframe, open_ms: int, n: int, inception_ms: int | None = None) -> int:
    """Return the open time `n` buckets after the bucket opening at `open_ms` (before,
    for a negative `n`); months by calendar arithmetic, not a walk."""
    if tf.kind is not GridKind.MONTH:
        return open_ms + n * tf.duration_ms
    year, month, _ = civil_from_days(open_ms // DAY_MS)
    months = year * 12 + month - 1 + n
    return days_from_civil(months // 12, months % 12 + 1, 1) * DAY_MS
