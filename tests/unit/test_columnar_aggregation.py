"""Columnar aggregation equals the reference `aggregate`, flags and all."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from candlevault.aggregation import aggregate
from candlevault.aggregation.columnar import aggregate_columns
from candlevault.domain.columns import columns_from
from candlevault.domain.timeframes import D1, D3, H1, H4, M1, M3, M5, M15, MO1, W1, Timeframe
from tests.unit.strategies import Series, minute_series

targets = st.sampled_from([M3, M5, M15, H1, H4, D1])


@given(minute_series(max_minutes=3000), targets, st.booleans(), st.booleans())
def test_columns_aggregate_like_candles(
    series: Series, target: Timeframe, with_inception: bool, with_now: bool
) -> None:
    inception = series.inception_ms if with_inception else None
    now = series.inception_ms + 1500 * 60_000 if with_now else None
    expected = aggregate(
        series.candles, target, inception_ms=inception, outages=series.outages, now_ms=now
    )
    got = aggregate_columns(
        columns_from(series.candles),
        target,
        inception_ms=inception,
        outages=series.outages,
        now_ms=now,
    )
    assert list(got.candles()) == expected


@settings(max_examples=25)
@given(minute_series(max_minutes=12 * 1440))
def test_days_into_3d_1w_1m_like_candles(series: Series) -> None:
    days = aggregate(series.candles, D1, inception_ms=series.inception_ms, outages=series.outages)
    for target in (D3, W1, MO1):
        expected = aggregate(
            days, target, source=D1, inception_ms=series.inception_ms, outages=series.outages
        )
        got = aggregate_columns(
            columns_from(days),
            target,
            source=D1,
            inception_ms=series.inception_ms,
            outages=series.outages,
        )
        assert list(got.candles()) == expected, target.code


def test_an_empty_batch_gives_nothing() -> None:
    assert len(aggregate_columns(columns_from([]), M5, source=M1)) == 0
