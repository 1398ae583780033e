"""Properties of lower -> higher timeframe aggregation (pure, hypothesis)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from candlevault.aggregation import aggregate
from candlevault.domain.candles import Candle
from candlevault.domain.errors import BadRequest
from candlevault.domain.timeframes import (
    D1,
    D3,
    H1,
    M1,
    M5,
    M15,
    MINUTE_MS,
    MO1,
    W1,
    Timeframe,
)
from tests.unit.strategies import Series, minute_candle, minute_series


def _build(series: Series, target: Timeframe) -> list[Candle]:
    return aggregate(
        series.candles, target, inception_ms=series.inception_ms, outages=series.outages
    )


@given(minute_series())
def test_1m_to_5m_to_15m_equals_1m_to_15m(series: Series) -> None:
    five = _build(series, M5)
    via_five = aggregate(
        five, M15, source=M5, inception_ms=series.inception_ms, outages=series.outages
    )
    assert via_five == _build(series, M15)


@settings(max_examples=40)
@given(minute_series(max_minutes=4 * 1440))
def test_1m_to_1h_to_1d_equals_1m_to_1d(series: Series) -> None:
    hours = _build(series, H1)
    via_hours = aggregate(
        hours, D1, source=H1, inception_ms=series.inception_ms, outages=series.outages
    )
    assert via_hours == _build(series, D1)


@settings(max_examples=25)
@given(minute_series(max_minutes=10 * 1440))
def test_1m_to_1d_to_3d_1w_1M_equals_direct(series: Series) -> None:
    days = _build(series, D1)
    for target in (D3, W1, MO1):
        via_days = aggregate(
            days, target, source=D1, inception_ms=series.inception_ms, outages=series.outages
        )
        assert via_days == _build(series, target), target.code


@given(minute_series(max_minutes=600), st.randoms(use_true_random=False))
def test_shuffled_and_duplicated_input_equals_clean(series: Series, rnd: random.Random) -> None:
    messy = series.candles + rnd.sample(series.candles, k=len(series.candles) // 3)
    rnd.shuffle(messy)
    for target in (M5, H1, D1):
        assert _build(series, target) == aggregate(
            messy, target, inception_ms=series.inception_ms, outages=series.outages
        )


@given(minute_series(max_minutes=1500))
def test_volumes_and_counts_are_conserved(series: Series) -> None:
    for target in (M5, H1, D1):
        built = _build(series, target)
        assert sum(c.volume for c in built) == sum(c.volume for c in series.candles)
        assert sum(c.quote_volume for c in built) == sum(c.quote_volume for c in series.candles)
        with_counts = [c.trades for c in series.candles]
        if series.candles and None not in with_counts:
            assert sum(c.trades or 0 for c in built) == sum(c.trades or 0 for c in series.candles)
        else:
            assert all(c.trades is None for c in built)


@given(minute_series(max_minutes=1500))
def test_ohlc_comes_from_traded_minutes_only(series: Series) -> None:
    for bucket in _build(series, H1):
        inside = [
            c
            for c in series.candles
            if bucket.open_time_ms <= c.open_time_ms <= bucket.close_time_ms
        ]
        traded = [c for c in inside if c.volume]
        if traded:
            assert bucket.open == traded[0].open
            assert bucket.close == traded[-1].close
            assert bucket.high == max(c.high for c in traded)
            assert bucket.low == min(c.low for c in traded)
        else:
            assert bucket.volume == 0
            assert bucket.open == bucket.high == bucket.low == bucket.close == inside[0].open


@given(minute_series(max_minutes=1500))
def test_a_bucket_is_complete_exactly_when_no_minute_is_missing(series: Series) -> None:
    for target in (M5, H1):
        for bucket in _build(series, target):
            missing = [
                t for t in series.missing if bucket.open_time_ms <= t <= bucket.close_time_ms
            ]
            last_minute = bucket.close_time_ms + 1 - MINUTE_MS
            ends_after_series = not any(
                c.open_time_ms == last_minute for c in series.candles
            ) and not any(lo <= last_minute < hi for lo, hi in series.outages)
            assert bucket.complete == (not missing and not ends_after_series)


def test_an_outage_makes_a_bucket_complete_but_a_plain_gap_does_not() -> None:
    rng = random.Random(7)
    start = 1_700_000_000_000 - 1_700_000_000_000 % 3_600_000
    candles, prev = [], 1000
    for i in range(60):
        if 20 <= i < 30:
            continue
        candle = minute_candle(rng, start + i * MINUTE_MS, prev, zero=False)
        candles.append(candle)
        prev = candle.close
    gap = (start + 20 * MINUTE_MS, start + 30 * MINUTE_MS)

    (with_outage,) = aggregate(candles, H1, outages=[gap])
    (without,) = aggregate(candles, H1)

    assert with_outage.complete
    assert not without.complete
    assert with_outage.volume == without.volume == sum(c.volume for c in candles)


def test_the_first_bucket_is_complete_from_the_inception_on() -> None:
    rng = random.Random(3)
    listing = 1_700_000_000_000 - 1_700_000_000_000 % 3_600_000 + 37 * MINUTE_MS
    candles = [minute_candle(rng, listing + i * MINUTE_MS, 500, zero=False) for i in range(23)]

    (hour,) = aggregate(candles, H1, inception_ms=listing)
    (unknown,) = aggregate(candles, H1)

    assert hour.open_time_ms == listing - 37 * MINUTE_MS
    assert hour.complete
    assert not unknown.complete


def test_closed_follows_now_when_given() -> None:
    rng = random.Random(5)
    start = 1_700_000_000_000 - 1_700_000_000_000 % 3_600_000
    candles = [minute_candle(rng, start + i * MINUTE_MS, 500, zero=False) for i in range(30)]

    (forming,) = aggregate(candles, H1, now_ms=start + 30 * MINUTE_MS + 5)
    (over,) = aggregate(candles, H1, now_ms=start + 3_600_000)

    assert not forming.closed
    assert not forming.complete
    assert over.closed


def test_an_open_minute_keeps_its_bucket_open() -> None:
    rng = random.Random(6)
    start = 1_700_000_000_000 - 1_700_000_000_000 % 300_000
    candles = [minute_candle(rng, start + i * MINUTE_MS, 500, zero=False) for i in range(5)]
    candles[-1] = Candle(**{**_fields(candles[-1]), "closed": False})

    (bucket,) = aggregate(candles, M5)

    assert not bucket.closed


def test_conflicting_duplicates_are_refused() -> None:
    rng = random.Random(1)
    candle = minute_candle(rng, 1_700_000_040_000, 500, zero=False)
    other = Candle(**{**_fields(candle), "volume": candle.volume + 1})
    with pytest.raises(BadRequest, match="1700000040000"):
        aggregate([candle, other], M5)


@pytest.mark.parametrize(("source", "target"), [(M5, M1), (W1, MO1), (D3, W1), (D1, H1)])
def test_an_impossible_source_is_refused(source: Timeframe, target: Timeframe) -> None:
    with pytest.raises(BadRequest, match="cannot be built"):
        aggregate([], target, source=source)


def test_3d_needs_the_inception() -> None:
    rng = random.Random(2)
    candle = minute_candle(rng, 1_700_000_040_000, 500, zero=False)
    with pytest.raises(BadRequest, match="inception"):
        aggregate([candle], D3)


@given(minute_series(max_minutes=300, allow_gaps=False))
def test_1m_to_1m_gives_back_the_series(series: Series) -> None:
    assert _build(series, M1) == series.candles


def _fields(candle: Candle) -> dict[str, object]:
    return {name: getattr(candle, name) for name in candle.__struct_fields__}
