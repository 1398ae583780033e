"""The read path's paging rules (`service.windows`) against a brute-force reference:
every bucket open up to `min(end, now)`, the oldest `limit` from a start or else the
newest `limit`, as Binance pages klines."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from candlevault.domain.errors import BadValue
from candlevault.domain.spans import SpanSet
from candlevault.domain.timeframes import M1, TIMEFRAMES, Timeframe
from candlevault.service.windows import back, forward, resolve, widen

DAY = 86_400_000
T0 = 1_500_000_000_000  # 2017-07-14
times = st.integers(T0, T0 + 4 * 365 * DAY)
frames = st.sampled_from(TIMEFRAMES)


def reference(
    tf: Timeframe, now: int, start: int | None, end: int | None, limit: int, inception: int
) -> list[int]:
    upto = now if end is None else min(end, now)
    if start is not None:
        return tf.opens(start, upto, inception)[:limit]
    lo = (
        upto - (limit + 2) * 31 * DAY
        if tf.duration_ms > DAY
        else upto - (limit + 2) * tf.duration_ms
    )
    return tf.opens(lo, upto, inception)[-limit:]


@given(
    tf=frames,
    now=times,
    start=st.none() | times,
    end=st.none() | times,
    limit=st.integers(1, 1500),
    inception=st.integers(T0 - 400 * DAY, T0),
)
def test_a_window_holds_exactly_the_buckets_binance_would_return(
    tf: Timeframe, now: int, start: int | None, end: int | None, limit: int, inception: int
) -> None:
    if start is not None and end is not None and start > end:
        with pytest.raises(BadValue, match="start_time"):
            resolve(tf, now, start_ms=start, end_ms=end, limit=limit, inception_ms=inception)
        return
    window = resolve(tf, now, start_ms=start, end_ms=end, limit=limit, inception_ms=inception)
    expected = reference(tf, now, start, end, limit, inception)
    if not expected:
        assert window.empty
        return
    assert (window.first_ms, window.last_ms) == (expected[0], expected[-1])
    assert window.newest is (start is None)
    forming = tf.bucket_open(now, inception)
    assert window.reaches_forming is (expected[-1] == forming)
    assert window.last_closed_ms < forming
    first, end_minute = window.minutes(inception, now)
    assert first == expected[0]
    assert end_minute <= now - now % M1.duration_ms  # never past the last closed minute


@given(tf=frames, t=times, n=st.integers(0, 400))
def test_back_and_forward_walk_whole_buckets(tf: Timeframe, t: int, n: int) -> None:
    open_ms = tf.bucket_open(t, T0)
    earlier = back(tf, open_ms, n, T0)
    assert forward(tf, earlier, n, T0) == open_ms
    assert len(tf.opens(earlier, open_ms, T0)) == n + 1


@given(
    tf=st.sampled_from([M1, *[t for t in TIMEFRAMES if t.duration_ms <= DAY]]),
    now=times,
    limit=st.integers(1, 300),
    outages=st.lists(st.tuples(st.integers(0, 2000), st.integers(1, 3000)), max_size=4),
)
def test_a_newest_window_reaches_past_outages_for_its_count(
    tf: Timeframe, now: int, limit: int, outages: list[tuple[int, int]]
) -> None:
    inception = T0 - 400 * DAY
    window = resolve(tf, now, start_ms=None, end_ms=None, limit=limit, inception_ms=inception)
    base = window.last_ms
    empty = SpanSet(
        (base - back_min * 60_000, base - back_min * 60_000 + length * 60_000)
        for back_min, length in outages
    ).clip(0, window.forming_ms)
    wider = widen(window, empty, limit, inception)
    kept = [
        t
        for t in tf.opens(wider.first_ms, wider.last_ms, inception)
        if not empty.covers(t, tf.next_open(t, inception))
    ]
    assert len(kept) <= limit
    assert wider.last_ms == window.last_ms
    assert wider.first_ms <= window.first_ms
    if empty.overlaps(window.first_ms, window.forming_ms):
        assert len(kept) == limit  # inception is far back: there are always enough
        assert kept[0] == wider.first_ms  # and it starts at a bucket that has candles
