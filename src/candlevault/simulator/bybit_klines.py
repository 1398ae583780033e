"""Which klines a Bybit `/v5/market/kline` query gets, and their rows, rendered once.

The window, which clients' pagination depends on. Bybit's page says only "Sort in
reverse by startTime" (https://bybit-exchange.github.io/docs/v5/market/kline); the rest
is what the venue is seen to do:

- `start` and `end` bound the candles' start times, inclusive, and with both given the
  reply holds the *newest* `limit` of them. Bybit's own examples: `index-price-kline
  ?interval=1&start=1670601600000&end=1670608800000&limit=2` returns the candles of
  1670608800000 and 1670608740000; `mark-price-kline` with `limit=1` returns the one at
  `end` (docs/v5/market/index-kline, mark-kline); `kline` with `start` 16:00 and `end`
  18:00 returns 16:00, 17:00 and 18:00 (docs/v5/market/kline).
- With `start` alone the reply holds the *oldest* `limit` from `start`, and an unaligned
  `start` brings the candle that contains it. ccxt's bybit.py `fetch_ohlcv` sends only
  `start` and `limit`, and its `paginate` walks `start` *forwards*
  (`fetch_paginated_call_deterministic`); ccxt PR #29402 (for issue #26736) aligns
  `start` up because "bybit returns the candle that contains `start`"; an empirical
  write-up of the endpoint found `start` far in the past with `limit=1` gives the first
  candle ever listed. (So ccxt's `paginate` with `until`, which sends `start` *and*
  `end` on every page, gets the newest page again each time: that is Bybit's doing.)
- Without `start`, the newest `limit` up to `end` (default now), the forming candle
  first; nothing before the listing (an empty list, not an error).

Closed candles never change, so each one's JSON row is rendered once and kept in the
shared `rowcache`. The forming candle is rebuilt on every request, from the closed sub-buckets that
`KlineView` memoises (days for 1W and 1M, hours for 2h to 1D) plus the forming one, so
a month's forming candle does not re-read 31 days of minutes each time.
"""

from __future__ import annotations

import orjson

from candlevault.domain.candles import Candle
from candlevault.domain.decimals import Precision, format_units
from candlevault.domain.timeframes import M1, GridKind, Timeframe
from candlevault.simulator.klines import KlineView
from candlevault.simulator.rowcache import EMPTY, row_cache


def kline_opens(
    view: KlineView,
    tf: Timeframe,
    *,
    now_ms: int,
    start_ms: int | None,
    end_ms: int | None,
    limit: int,
) -> list[int]:
    """Return the open times Bybit serves for a query, newest first: with `start_ms`
    alone the oldest `limit` from the candle containing it, otherwise the newest `limit`
    up to `end_ms` (default now), never before the listing nor after now."""
    listed = view.market.listing.listed_ms
    floor = tf.bucket_open(listed, listed)
    low = floor if start_ms is None else max(floor, tf.bucket_open(start_ms, listed))
    high = now_ms if end_ms is None else min(end_ms, now_ms)
    if high < low:
        return []
    forward = start_ms is not None and end_ms is None
    if tf.kind is GridKind.FIXED:  # an arithmetic progression: no per-candle calendar
        step = tf.duration_ms
        if forward:
            return list(reversed(range(low, high + 1, step)[:limit]))
        return list(range(tf.bucket_open(high), low - 1, -step)[:limit])
    out: list[int] = []
    t = low if forward else tf.bucket_open(high, listed)
    while low <= t <= high and len(out) < limit:
        out.append(t)
        t = tf.next_open(t, listed) if forward else tf.bucket_open(t - 1, listed)
    return out[::-1] if forward else out


def kline_rows(view: KlineView, tf: Timeframe, opens: list[int], now_ms: int) -> list[bytes]:
    """Return the JSON rows of the klines at `opens` (newest first): closed ones from the
    cache, rendering only those not seen before, and the forming one afresh."""
    listing = view.market.listing
    precision = listing.precision
    out: list[bytes] = []
    if opens and opens[0] == tf.bucket_open(now_ms, listing.listed_ms):
        forming = view.bucket(tf, opens[0], now_ms)
        if forming is not None:
            out.append(render_kline(forming, precision))
        opens = opens[1:]
    cache = row_cache(view, tf)
    for t in opens:
        row = cache.get(t)
        if row is None:
            closed = view.market.minute(t) if tf is M1 else view.bucket(tf, t, now_ms)
            row = EMPTY if closed is None else render_kline(closed, precision)
            cache.put(t, row)
        if row:
            out.append(row)
    return out


def render_kline(candle: Candle, precision: Precision) -> bytes:
    """Return a candle as Bybit's JSON row of 7 strings, decimals without trailing zeros:
    `["1694649600000","19289.27","19321.5","18580.75","19265.49","414.689515","7981068.41994112"]`
    (start, open, high, low, close, volume, turnover)."""
    p, b, q = precision.price, precision.base, precision.quote
    return orjson.dumps(
        [
            str(candle.open_time_ms),
            format_units(candle.open, p, False),
            format_units(candle.high, p, False),
            format_units(candle.low, p, False),
            format_units(candle.close, p, False),
            format_units(candle.volume, b, False),
            format_units(candle.quote_volume, q, False),
        ]
    )
