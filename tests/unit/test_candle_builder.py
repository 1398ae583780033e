"""The real-time candle builder agrees with `fold_trades` + `aggregate` (pure, hypothesis)."""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from candlevault.aggregation import aggregate, fold_trades
from candlevault.aggregation.builder import CandleBuilder, Closing
from candlevault.domain.candles import Candle
from candlevault.domain.decimals import Precision
from candlevault.domain.timeframes import D1, H4, M1, MINUTE_MS, MO1, TIMEFRAMES, W1
from candlevault.domain.trades import Trade
from tests.unit.strategies import FIRST_MINUTE, LAST_MINUTE

GRACE_MS = 2000
EXACT = Precision(price=2, base=5, quote=7)
ROUNDING = Precision(price=2, base=5, quote=4)  # the quote volume is rounded per minute
OPEN = 1_700_000_100_000 - 1_700_000_100_000 % MINUTE_MS


@dataclass(frozen=True)
class Stream:
    start_ms: int  # a minute open; also the symbol's inception
    trades: list[Trade]  # in arrival order
    arrivals: list[int]  # exchange time at which each trade arrives
    precision: Precision
    details: bool


@st.composite
def streams(draw: st.DrawFn, max_minutes: int = 25) -> Stream:
    """Trades over traded minutes with random gaps, arriving up to 1.5 s late, so a
    minute's trades may interleave with the next minute's (never past the grace)."""
    base = draw(st.integers(FIRST_MINUTE, LAST_MINUTE)) * MINUTE_MS
    anchor = draw(st.sampled_from([MO1, W1, D1, H4, M1]))
    start = anchor.next_open(base) - draw(st.integers(0, 240)) * MINUTE_MS
    rng = random.Random(draw(st.integers(0, 2**32)))
    minutes, cursor = [], start
    for _ in range(draw(st.integers(1, max_minutes))):
        minutes.append(cursor)
        cursor += MINUTE_MS * (1 if rng.random() < 0.6 else rng.randint(2, 200))
    trades: list[Trade] = []
    price = rng.randint(100_000, 10**7)
    for minute in minutes:
        for offset in sorted(rng.randrange(MINUTE_MS) for _ in range(rng.randint(1, 12))):
            price = max(1, price + rng.randint(-500, 500))
            trades.append(
                Trade(
                    trade_id=len(trades) + 1,
                    price=price,
                    qty=rng.randint(1, 10**6),
                    time_ms=minute + offset,
                    buyer_is_maker=rng.random() < 0.5,
                    count=rng.randint(1, 3),
                )
            )
    arrivals = [t.time_ms + (0 if rng.random() < 0.7 else rng.randint(0, 1500)) for t in trades]
    order = sorted(range(len(trades)), key=lambda i: (arrivals[i], i))
    return Stream(
        start,
        [trades[i] for i in order],
        [arrivals[i] for i in order],
        draw(st.sampled_from([EXACT, ROUNDING])),
        draw(st.booleans()),
    )


def _strip(candle: Candle, details: bool) -> Candle:
    if details:
        return candle
    return msgspec.structs.replace(candle, trades=None, taker_buy_base=None, taker_buy_quote=None)


def reference_minutes(s: Stream, arrived: dict[int, list[Trade]], last: int) -> list[Candle]:
    """Fold each minute from the start to `last` from the trades arrived so far."""
    out: list[Candle] = []
    prev: int | None = None
    for minute in range(s.start_ms, last + 1, MINUTE_MS):
        candle = fold_trades(
            arrived.get(minute, []), open_time_ms=minute, precision=s.precision, prev_close=prev
        )
        if candle is not None:
            out.append(_strip(candle, s.details))
            prev = candle.close
    return out


def check_open_candles(builder: CandleBuilder, s: Stream, arrived: dict[int, list[Trade]]) -> None:
    cur = builder.current_minute_ms()
    minutes = reference_minutes(s, arrived, cur)
    opened = builder.open_candles()
    assert set(opened) == set(TIMEFRAMES)
    for tf in TIMEFRAMES:
        bucket = tf.bucket_open(cur, s.start_ms)
        (expected,) = aggregate(
            [c for c in minutes if c.open_time_ms >= bucket], tf, inception_ms=s.start_ms
        )
        assert opened[tf] == msgspec.structs.replace(expected, closed=False, complete=True), tf


def run(s: Stream, cuts: set[int], resend: float = 0.0) -> tuple[list[Candle], list[Closing]]:
    """Feed the stream with the feed alive throughout; check the open candles at `cuts`."""
    builder = CandleBuilder(
        s.precision, inception_ms=s.start_ms, trade_details=s.details, start_ms=s.start_ms
    )
    rng = random.Random(len(s.trades))
    arrived: dict[int, list[Trade]] = defaultdict(list)
    closings: list[Closing] = []
    now = s.start_ms
    pairs = zip(s.arrivals, s.trades, strict=True)
    events = [(at, i, trade) for i, (at, trade) in enumerate(pairs)]
    events += [  # duplicates, up to 1.5 s after the original (maybe after its minute closed)
        (at + rng.randint(0, 1500), -1, trade) for at, _, trade in events if rng.random() < resend
    ]
    for at, index, trade in sorted(events, key=lambda e: e[0]):
        while now + 10_000 < at:  # heartbeats through quiet spells
            now += rng.randint(1, 10_000)
            closings.append(builder.advance(now, now))
        now = max(now, at)
        if rng.random() < 0.3:
            closings.append(builder.advance(now, now))
        builder.add(trade)
        if index >= 0:
            arrived[trade.time_ms - trade.time_ms % MINUTE_MS].append(trade)
        if index in cuts:
            check_open_candles(builder, s, arrived)
    end = max(s.arrivals) + 5 * MINUTE_MS  # past every event, repeats included
    closings.append(builder.advance(end, end))
    closed = [c for closing in closings for c in closing.candles]
    flat = fold_trades(
        [],
        open_time_ms=end - end % MINUTE_MS,
        precision=s.precision,
        prev_close=closed[-1].close,
        closed=False,
    )
    assert flat is not None
    assert builder.open_candle(M1) == _strip(flat, s.details)  # quiet now: flat, open
    return closed, closings


@settings(max_examples=60)
@given(streams(), st.data())
def test_stream_built_candles_equal_fold_and_aggregate(s: Stream, data: st.DataObject) -> None:
    cuts = set(data.draw(st.lists(st.integers(0, len(s.trades) - 1), max_size=4)))
    closed, closings = run(s, cuts)

    arrived: dict[int, list[Trade]] = defaultdict(list)
    for trade in s.trades:
        arrived[trade.time_ms - trade.time_ms % MINUTE_MS].append(trade)
    expected = [
        msgspec.structs.replace(c, closed=True)
        for c in reference_minutes(s, arrived, closed[-1].open_time_ms)
    ]
    assert closed == expected
    assert closed[-1].open_time_ms >= s.trades[-1].time_ms - MINUTE_MS  # all traded closed
    assert not any(c.unknown or c.late for c in closings)


@settings(max_examples=30)
@given(streams(max_minutes=8))
def test_repeated_trade_ids_are_ignored_even_after_their_minute_closed(s: Stream) -> None:
    plain, _ = run(s, set())
    with_repeats, closings = run(s, set(), resend=0.4)
    assert with_repeats == plain
    assert not any(c.late for c in closings)


@given(st.randoms(use_true_random=False), st.integers(1, 40), st.booleans())
def test_out_of_order_trades_open_and_close_at_the_first_and_last_ids(
    rng: random.Random, count: int, numeric: bool
) -> None:
    """Integer ids (Binance's) order the trades whatever their arrival order; ids that do
    not order (Bybit linear's UUIDs) leave it to the arrival order."""
    trades = [
        Trade(i if numeric else f"id-{i}", rng.randint(1, 10**6), rng.randint(1, 10**6),
              OPEN + i, rng.random() < 0.5)
        for i in range(count)
    ]  # fmt: skip
    shuffled = rng.sample(trades, count)
    builder = CandleBuilder(EXACT, timeframes=[M1], start_ms=OPEN)
    for trade in shuffled:
        builder.add(trade)
    (candle,) = builder.advance(OPEN + MINUTE_MS + GRACE_MS, OPEN + MINUTE_MS).candles
    in_order = fold_trades(trades, open_time_ms=OPEN, precision=EXACT, prev_close=None)
    assert in_order is not None

    assert candle == fold_trades(shuffled, open_time_ms=OPEN, precision=EXACT, prev_close=None)
    if numeric:
        assert candle == in_order
    else:
        assert (candle.open, candle.close) == (shuffled[0].price, shuffled[-1].price)
        assert msgspec.structs.replace(candle, open=in_order.open, close=in_order.close) == in_order


def _trade(trade_id: int, price: int, time_ms: int) -> Trade:
    return Trade(trade_id, price, 10, time_ms, buyer_is_maker=False)


def test_a_trade_for_a_closed_minute_is_reported_late_not_folded() -> None:
    builder = CandleBuilder(EXACT, inception_ms=OPEN, start_ms=OPEN)
    builder.add(_trade(1, 100, OPEN + 5))
    (first,) = builder.advance(OPEN + MINUTE_MS + GRACE_MS, OPEN + MINUTE_MS).candles
    builder.add(_trade(2, 110, OPEN + MINUTE_MS + 10))
    before = builder.open_candles()

    builder.add(_trade(3, 999, OPEN + 59_000))  # minute OPEN is closed: late
    builder.add(_trade(1, 100, OPEN + 5))  # a repeat of a closed minute's trade: ignored
    closing = builder.advance(OPEN + MINUTE_MS + GRACE_MS + 1, OPEN + MINUTE_MS + 20)

    assert builder.open_candles() == before
    assert closing.late == [_trade(3, 999, OPEN + 59_000)]
    assert closing.late_minutes() == [OPEN]
    assert closing.candles == []
    assert first.high == 100


def test_a_silent_feed_writes_no_flat_candle_and_reports_the_minutes_unknown() -> None:
    builder = CandleBuilder(EXACT, inception_ms=OPEN, start_ms=OPEN)
    builder.add(_trade(1, 100, OPEN + 5))
    alive_until = OPEN + 30_000  # the last message, then silence
    closing = builder.advance(OPEN + 5 * MINUTE_MS + GRACE_MS, alive_until)

    assert closing.candles == []  # not even the traded minute: its end was not seen
    assert closing.unknown == [(OPEN, OPEN + 5 * MINUTE_MS)]

    # The feed is back and alive, but the previous close is unknown: still no flat candle.
    closing = builder.advance(OPEN + 7 * MINUTE_MS + GRACE_MS, OPEN + 7 * MINUTE_MS + GRACE_MS)
    assert closing.candles == []
    assert closing.unknown == [(OPEN + 5 * MINUTE_MS, OPEN + 7 * MINUTE_MS)]

    # A traded minute re-establishes the close; the quiet minute after it is flat.
    builder.add(_trade(2, 120, OPEN + 7 * MINUTE_MS + 1))
    end = OPEN + 9 * MINUTE_MS + GRACE_MS
    closing = builder.advance(end, end)
    assert [(c.open_time_ms, c.close, c.volume) for c in closing.candles] == [
        (OPEN + 7 * MINUTE_MS, 120, 10),
        (OPEN + 8 * MINUTE_MS, 120, 0),
    ]
    assert closing.unknown == []


def test_quiet_minutes_with_a_live_feed_are_flat_at_the_previous_close() -> None:
    builder = CandleBuilder(EXACT, inception_ms=OPEN, start_ms=OPEN)
    builder.add(_trade(1, 100, OPEN + 5))
    end = OPEN + 3 * MINUTE_MS + GRACE_MS
    closing = builder.advance(end, end)
    assert [c.open_time_ms for c in closing.candles] == [OPEN + i * MINUTE_MS for i in range(3)]
    assert closing.candles[1] == fold_trades(
        [], open_time_ms=OPEN + MINUTE_MS, precision=EXACT, prev_close=100
    )


def test_the_minute_the_feed_started_in_is_unknown() -> None:
    builder = CandleBuilder(EXACT, inception_ms=OPEN)
    builder.add(_trade(1, 100, OPEN + 20_000))  # earlier trades of this minute were missed
    end = OPEN + 2 * MINUTE_MS + GRACE_MS
    closing = builder.advance(end, end)
    assert closing.unknown == [(OPEN, OPEN + 2 * MINUTE_MS)]
    assert closing.candles == []


def test_bybit_mode_leaves_count_and_taker_volumes_out() -> None:
    builder = CandleBuilder(EXACT, trade_details=False, inception_ms=OPEN, start_ms=OPEN)
    builder.add(_trade(1, 100, OPEN + 5))
    builder.add(_trade(2, 90, OPEN + MINUTE_MS + 5))
    end = OPEN + MINUTE_MS + GRACE_MS
    (closed,) = builder.advance(end, end).candles
    for candle in [closed, *builder.open_candles().values()]:
        assert (candle.trades, candle.taker_buy_base, candle.taker_buy_quote) == (None,) * 3
    assert (closed.volume, closed.quote_volume) == (10, 1000)


def test_restored_minutes_count_in_the_open_higher_timeframe_candles() -> None:
    stored = [
        fold_trades([_trade(1, 100, OPEN + 1)], open_time_ms=OPEN, precision=EXACT, prev_close=None)
    ]
    builder = CandleBuilder(EXACT, timeframes=[M1, D1], start_ms=OPEN + MINUTE_MS)
    builder.restore(c for c in stored if c is not None)
    builder.add(_trade(2, 90, OPEN + MINUTE_MS + 5))
    day = builder.open_candle(D1)
    assert day is not None
    assert (day.open, day.low, day.close, day.volume) == (100, 90, 90, 20)


def test_a_minute_unproven_when_it_closes_is_unknown_even_if_proof_comes_later() -> None:
    """A message after an exchange outage would vouch for minutes the exchange has no
    candle for: only proof by the time a minute closes makes it flat."""
    builder = CandleBuilder(EXACT, inception_ms=OPEN, start_ms=OPEN)
    builder.add(_trade(1, 100, OPEN + 5))
    alive_until = OPEN + 10  # the trade's own message, then nothing
    # Within the grace of its end a minute is served as it stands, proven or not.
    assert [c.open_time_ms for c in builder.pending(OPEN + MINUTE_MS + 1, alive_until)] == [OPEN]
    assert builder.pending(OPEN + MINUTE_MS + GRACE_MS, alive_until) == []
    closing = builder.advance(OPEN + 3 * MINUTE_MS + GRACE_MS, alive_until)
    assert closing.candles == []
    assert closing.unknown == closing.unproven == [(OPEN, OPEN + 3 * MINUTE_MS)]
    assert list(closing.seen) == [OPEN]  # what the feed delivered of them
    assert closing.seen[OPEN].volume == 10
    late = OPEN + 3 * MINUTE_MS + GRACE_MS + 5  # the next message, after the fact
    assert builder.advance(late, late).candles == []


def test_quiet_minutes_proven_in_time_are_pending_then_flat() -> None:
    builder = CandleBuilder(EXACT, inception_ms=OPEN, start_ms=OPEN)
    builder.add(_trade(1, 100, OPEN + 5))
    alive_until = OPEN + 3 * MINUTE_MS + 500  # another symbol's message on the connection
    pending = builder.pending(OPEN + 3 * MINUTE_MS + 600, alive_until)
    assert [(c.open_time_ms, c.volume) for c in pending] == [
        (OPEN, 10), (OPEN + MINUTE_MS, 0), (OPEN + 2 * MINUTE_MS, 0),
    ]  # fmt: skip
    closing = builder.advance(OPEN + 3 * MINUTE_MS + 600, alive_until)
    assert [c.open_time_ms for c in closing.candles] == [OPEN, OPEN + MINUTE_MS]
    assert closing.candles == pending[:2]


def test_the_minute_the_feed_started_in_is_unknown_but_not_unproven() -> None:
    builder = CandleBuilder(EXACT, inception_ms=OPEN, start_ms=OPEN + 20_000)
    builder.add(_trade(1, 100, OPEN + 20_000))
    end = OPEN + MINUTE_MS + GRACE_MS
    closing = builder.advance(end, end)
    assert closing.unknown == [(OPEN, OPEN + MINUTE_MS)]
    assert closing.unproven == []  # the feed was not watching its first 20 s: no blame
    assert builder.pending(end, end) == []


def test_the_exchange_close_of_an_unknown_minute_lets_a_quiet_next_minute_be_flat() -> None:
    builder = CandleBuilder(EXACT, inception_ms=OPEN, start_ms=OPEN + 20_000)
    end = OPEN + MINUTE_MS + GRACE_MS
    assert builder.advance(end, end).unknown == [(OPEN, OPEN + MINUTE_MS)]
    exchange = fold_trades(
        [_trade(9, 130, OPEN + 1)], open_time_ms=OPEN, precision=EXACT, prev_close=None
    )
    assert exchange is not None
    builder.resume_after(exchange)
    end = OPEN + 2 * MINUTE_MS + GRACE_MS
    (flat,) = builder.advance(end, end).candles
    assert (flat.open_time_ms, flat.open, flat.close, flat.volume) == (
        OPEN + MINUTE_MS, 130, 130, 0
    )
