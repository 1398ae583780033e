"""Binance kline replies as JSON bytes: rows rendered once per closed bucket, then reused.

A 1000-candle reply must cost about a millisecond (the benchmark asks for >= 1000 such
requests a second on one core). Rendering a row through `kline_row` and orjson costs
~5 µs, the pre-compiled %-format below ~2 µs, a dictionary hit ~0.1 µs; and walking
`KlineView` costs ~1 µs a bucket above 1m. So on the fixed grids (1m ... 1w) a reply is
read from a cache of rendered rows keyed by open time, walking the grid itself, and
`KlineView` is asked only for what the cache lacks (then remembered). A reply is
`b"[" + b",".join(rows) + b"]"`.

Why this is safe: the market is a pure function of the seed, so a bucket whose close
time has passed never changes; a closed bucket with no candle (an outage, before the
listing) is remembered as empty. The forming bucket is never cached by open time: its
row is kept only under the key (bucket, current minute, trades printed so far in it),
which fixes its content, so repeated requests within one minute's quiet spells cost no
re-folding. Setting the clock back is harmless: what is closed by the new `now` was
closed before too.

Caches are bounded and approximately LRU at dictionary speed: two generations, a hit in
the old one is promoted, and when the young one is full it becomes the old one. Each
keeps the last 50,000 to 100,000 rows (35 to 70 days of 1m, ~40 MB); a window partly
known is completed run by run, so only the unknown rows cost a trip to the market. They
hang off the `KlineView` weakly, one per interval, so they go when the world goes.

Measured (one core, loopback, client in another process, 1000-row 1m replies): ~2,400
requests/s warm, whether the same window, the newest (forming candle included) or
random windows within the last 30 days; ~130 pages/s cold, bound by the market's
generation (~180,000 candles/s) and rendering (~2 µs a row).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from functools import lru_cache

import orjson

from candlevault.domain.candles import Candle, kline_row
from candlevault.domain.decimals import Precision
from candlevault.domain.timeframes import GridKind, Timeframe
from candlevault.domain.trades import Trade
from candlevault.simulator.binance_trades import minute_trades
from candlevault.simulator.klines import KlineView
from candlevault.simulator.market import MINUTE_MS
from candlevault.simulator.rowcache import EMPTY, RowCache, row_cache

Render = Callable[[Candle], bytes]


def kline_rows(
    view: KlineView,
    tf: Timeframe,
    *,
    now_ms: int,
    start_ms: int | None,
    end_ms: int | None,
    limit: int,
) -> list[bytes]:
    """Return the rows of a Binance klines reply, as `KlineView.window` pages them."""
    cache = row_cache(view, tf)
    if tf.kind is not GridKind.FIXED:  # 3d and 1M: a few hundred buckets at most
        return _calendar(view, tf, cache, now_ms, start_ms, end_ms, limit)
    if start_ms is not None:
        return _forward(view, tf, cache, now_ms, start_ms, end_ms, limit)
    # The newest `limit`: read forward from `limit` buckets back; a gap (an outage)
    # leaves that short, and then only KlineView's backward walk is right.
    upto = now_ms if end_ms is None else min(end_ms, now_ms)
    first = tf.bucket_open(upto) - (limit - 1) * tf.duration_ms
    rows = _forward(view, tf, cache, now_ms, first, end_ms, limit)
    if len(rows) == limit or first <= view.market.listing.listed_ms:
        return rows
    window = view.window(tf, now_ms=now_ms, start_ms=None, end_ms=end_ms, limit=limit)
    return _rendered(view, cache, window, now_ms)


def _forward(
    view: KlineView,
    tf: Timeframe,
    cache: RowCache,
    now: int,
    start: int,
    end_ms: int | None,
    limit: int,
) -> list[bytes]:
    """The oldest `limit` rows opening in [start, end]: closed buckets from the cache,
    each run of unknown ones from the view (then cached), the forming one last."""
    dur = tf.duration_ms
    end = now if end_ms is None else min(end_ms, now)
    first = max(start, tf.bucket_open(view.market.listing.listed_ms))
    t = tf.bucket_open(first)
    if t < first:
        t += dur
    last_closed = min(end, now - dur)  # a bucket opening after now - dur is forming
    rows: list[bytes] = []
    while True:
        found, t = _cached(cache, t, last_closed, dur, limit - len(rows))
        rows += found
        if t > end or len(rows) >= limit:
            return rows
        if t > last_closed:  # only the forming bucket is left
            row = _forming(view, tf, cache, now, t)
            return [*rows, row] if row else rows
        run_end = _unknown_until(cache, t, min(last_closed, t + (limit - len(rows) - 1) * dur), dur)
        t = _fill(view, tf, cache, now, t, run_end, rows, limit)


def _unknown_until(cache: RowCache, t: int, last: int, dur: int) -> int:
    """Return the last open (up to `last`) of the run of unknown buckets from `t`."""
    while t + dur <= last and cache.get(t + dur) is None:
        t += dur
    return t


def _fill(
    view: KlineView,
    tf: Timeframe,
    cache: RowCache,
    now: int,
    t: int,
    last: int,
    rows: list[bytes],
    limit: int,
) -> int:
    """Read the closed buckets opening in [t, last] from the view into `rows` and the
    cache (empty ones too); return the next open to read."""
    want = limit - len(rows)
    window = view.window(tf, now_ms=now, start_ms=t, end_ms=last, limit=want)
    covered = window[-1].open_time_ms if len(window) == want else last
    opened = {c.open_time_ms for c in window}
    for empty in range(t, covered + 1, tf.duration_ms):
        if empty not in opened:
            cache.put(empty, EMPTY)
    rows += _rendered(view, cache, window, now)
    return covered + tf.duration_ms


def _cached(cache: RowCache, t: int, last: int, dur: int, limit: int) -> tuple[list[bytes], int]:
    """Read cached rows of closed buckets from `t` on (up to `last`, `limit` rows) until
    one is unknown; return them and the first open not read."""
    rows: list[bytes] = []
    young, old = cache.young, cache.old  # `cache.get` inlined: this loop is the hot path
    while t <= last and len(rows) < limit:
        row = young.get(t)
        if row is None:
            row = old.get(t)
            if row is None:
                break
            young[t] = row
        if row:
            rows.append(row)
        t += dur
    return rows, t


def _calendar(
    view: KlineView,
    tf: Timeframe,
    cache: RowCache,
    now: int,
    start: int | None,
    end_ms: int | None,
    limit: int,
) -> list[bytes]:
    """3d and 1M: closed buckets from the view (its own memo keeps them), the forming
    one through `_forming`, which re-folds its (up to 44,000) minutes only when a trade
    has printed since the last request."""
    end = now if end_ms is None else min(end_ms, now)
    forming_open = tf.bucket_open(now, view.market.listing.listed_ms)
    in_window = forming_open <= end and (start is None or start <= forming_open)
    forming = _forming(view, tf, cache, now, forming_open) if in_window else EMPTY
    closed_end = min(end, forming_open - 1)
    if start is None:
        want = limit - 1 if forming else limit
        closed = view.window(tf, now_ms=now, start_ms=None, end_ms=closed_end, limit=want)
    else:
        closed = view.window(tf, now_ms=now, start_ms=start, end_ms=closed_end, limit=limit)
    rows = _rendered(view, cache, closed, now)
    if forming and len(rows) < limit:
        rows.append(forming)
    return rows


def _rendered(view: KlineView, cache: RowCache, candles: list[Candle], now: int) -> list[bytes]:
    """Render candles, remembering closed ones (close time passed) and reusing known rows."""
    render = binance_renderer(view.market.listing.precision)
    out: list[bytes] = []
    for candle in candles:
        if candle.close_time_ms >= now:
            out.append(render(candle))
            continue
        row = cache.get(candle.open_time_ms)
        if not row:
            row = render(candle)
            cache.put(candle.open_time_ms, row)
        out.append(row)
    return out


def _forming(view: KlineView, tf: Timeframe, cache: RowCache, now: int, open_ms: int) -> bytes:
    """Return the forming bucket's row (EMPTY if it has no candle), reusing the last one
    while no trade has printed since: (bucket, minute, trades printed) fixes the row."""
    minute = now - now % MINUTE_MS
    printed = bisect.bisect_right(minute_trades(view.market, minute), now, key=_time)
    key = (open_ms, minute, printed)
    if cache.forming is not None and cache.forming[0] == key:
        return cache.forming[1]
    window = view.window(tf, now_ms=now, start_ms=open_ms, end_ms=None, limit=1)
    row = binance_renderer(view.market.listing.precision)(window[0]) if window else EMPTY
    cache.forming = (key, row)
    return row


def _time(trade: Trade) -> int:
    return trade.time_ms


@lru_cache(maxsize=64)
def binance_renderer(precision: Precision) -> Render:
    """Return a function that writes a candle as the compact JSON of its Binance row,
    byte for byte what `orjson.dumps(kline_row(candle, precision))` writes."""
    scales = (precision.price, precision.base, precision.quote)
    if not precision.fixed or 0 in scales:  # rare (e.g. whole-contract sizes): the plain way
        return lambda candle: orjson.dumps(kline_row(candle, precision))
    p, b, q = (10**s for s in scales)
    price, base, quote = (f'"%d.%0{s}d"' for s in scales)
    template = f'[%d,{price},{price},{price},{price},{base},%d,{quote},%d,{base},{quote},"0"]'

    def render(c: Candle) -> bytes:
        tb = c.taker_buy_base or 0
        tq = c.taker_buy_quote or 0
        values = (
            c.open_time_ms,
            c.open // p, c.open % p, c.high // p, c.high % p,
            c.low // p, c.low % p, c.close // p, c.close % p,
            c.volume // b, c.volume % b,
            c.close_time_ms,
            c.quote_volume // q, c.quote_volume % q,
            c.trades or 0,
            tb // b, tb % b, tq // q, tq % q,
        )  # fmt: skip
        return (template % values).encode()

    return render
