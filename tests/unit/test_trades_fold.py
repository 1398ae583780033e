"""Properties of the trades -> candle fold (pure, hypothesis)."""

from __future__ import annotations

import itertools

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from candlevault.aggregation import CandleAccumulator, aggregate, fold_trades
from candlevault.domain.candles import Candle
from candlevault.domain.decimals import Precision
from candlevault.domain.timeframes import M5, MINUTE_MS
from candlevault.domain.trades import Trade
from tests.unit.strategies import minute_trades

OPEN = 1_700_000_100_000 - 1_700_000_100_000 % (5 * MINUTE_MS)
EXACT = Precision(price=2, base=5, quote=7)  # quote = price + base: never rounds


@given(minute_trades(open_ms=OPEN))
def test_every_field_follows_from_the_trades(trades: list[Trade]) -> None:
    candle = fold_trades(trades, open_time_ms=OPEN, precision=EXACT, prev_close=777)
    assert candle is not None
    if trades:
        assert candle.open == trades[0].price
        assert candle.close == trades[-1].price
        assert candle.high == max(t.price for t in trades)
        assert candle.low == min(t.price for t in trades)
    else:
        assert candle.open == candle.high == candle.low == candle.close == 777
    assert candle.volume == sum(t.qty for t in trades)
    assert candle.quote_volume == sum(t.price * t.qty for t in trades)
    assert candle.taker_buy_base == sum(t.qty for t in trades if not t.buyer_is_maker)
    assert candle.taker_buy_quote == sum(t.price * t.qty for t in trades if not t.buyer_is_maker)
    assert candle.trades == sum(t.count for t in trades)
    assert candle.open_time_ms == OPEN
    assert candle.close_time_ms == OPEN + MINUTE_MS - 1


@given(st.lists(minute_trades(max_trades=20), min_size=5, max_size=5))
def test_five_folded_minutes_aggregate_to_the_fold_of_all_their_trades(
    minutes: list[list[Trade]],
) -> None:
    """The real-time builder folds per minute and derives 5m; both routes must agree."""
    ids = itertools.count(1)  # a venue's trade ids rise across minutes too
    minutes = [[msgspec.structs.replace(t, trade_id=next(ids)) for t in m] for m in minutes]
    candles: list[Candle] = []
    prev: int | None = 500
    for i, trades in enumerate(minutes):
        candle = fold_trades(
            trades, open_time_ms=OPEN + i * MINUTE_MS, precision=EXACT, prev_close=prev
        )
        assert candle is not None
        candles.append(candle)
        prev = candle.close
    whole = CandleAccumulator(OPEN, EXACT, prev_close=500, timeframe=M5)
    for trades in minutes:
        for trade in trades:
            whole.add(trade)

    (five,) = aggregate(candles, M5)

    assert five == whole.candle(closed=True)


@given(minute_trades(open_ms=OPEN, max_trades=200))
def test_the_quote_volume_is_rounded_once_not_per_trade(trades: list[Trade]) -> None:
    coarse = Precision(price=2, base=5, quote=3)
    candle = fold_trades(trades, open_time_ms=OPEN, precision=coarse, prev_close=1)
    assert candle is not None
    exact = sum(t.price * t.qty for t in trades)  # at scale 7
    assert abs(candle.quote_volume * 10_000 - exact) <= 5_000


def test_a_silent_minute_is_flat_at_the_previous_close() -> None:
    candle = fold_trades([], open_time_ms=OPEN, precision=EXACT, prev_close=12_345)
    assert candle == Candle(
        open_time_ms=OPEN,
        open=12_345,
        high=12_345,
        low=12_345,
        close=12_345,
        volume=0,
        close_time_ms=OPEN + MINUTE_MS - 1,
        quote_volume=0,
        trades=0,
        taker_buy_base=0,
        taker_buy_quote=0,
    )


def test_no_candle_before_the_first_trade() -> None:
    assert fold_trades([], open_time_ms=OPEN, precision=EXACT, prev_close=None) is None


def test_a_running_candle_can_be_read_and_keeps_going() -> None:
    acc = CandleAccumulator(OPEN, EXACT)
    acc.add(Trade(1, 100, 3, OPEN + 1, buyer_is_maker=False))
    first = acc.candle(closed=False)
    acc.add(Trade(2, 90, 1, OPEN + 2, buyer_is_maker=True))
    second = acc.candle(closed=True)

    assert (first.open, first.high, first.low, first.close, first.closed) == (
        100,
        100,
        100,
        100,
        False,
    )
    assert (second.open, second.high, second.low, second.close) == (100, 100, 90, 90)
    assert (second.volume, second.quote_volume, second.taker_buy_base) == (4, 390, 3)
    assert second.closed
