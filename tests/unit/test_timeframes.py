"""Timeframe parsing and bucket alignment (pure, hypothesis; calendar checked via datetime)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from candlevault.domain.errors import BadRequest, BadValue
from candlevault.domain.timeframes import (
    D1,
    D3,
    DAY_MS,
    H8,
    M1,
    MO1,
    TIMEFRAMES,
    W1,
    Timeframe,
    civil_from_days,
    days_from_civil,
    from_bybit_code,
    parse_timeframe,
    timeframe_for_venue,
    venue_timeframes,
)
from candlevault.domain.venues import Venue

# 1900 .. 2200, in ms: wide enough to cross leap centuries (1900 no, 2000 yes, 2100 no)
instants = st.integers(-2_208_988_800_000, 7_258_118_400_000)
inceptions = st.integers(1_000_000_000_000, 2_000_000_000_000)
timeframes = st.sampled_from(TIMEFRAMES)


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


@given(timeframes, instants, inceptions)
def test_a_bucket_contains_its_instant(tf: Timeframe, t: int, inception: int) -> None:
    opened = tf.bucket_open(t, inception)
    assert opened <= t < tf.next_open(t, inception)
    assert tf.bucket_open(opened, inception) == opened
    assert tf.close_time(opened, inception) == tf.next_open(opened, inception) - 1
    assert tf.bucket_open(tf.next_open(t, inception), inception) == tf.next_open(t, inception)


@given(timeframes, instants, inceptions)
def test_buckets_open_at_00_utc_boundaries(tf: Timeframe, t: int, inception: int) -> None:
    moment = _utc(tf.bucket_open(t, inception))
    if tf.duration_ms >= DAY_MS:
        assert (moment.hour, moment.minute, moment.second) == (0, 0, 0)
    if tf is W1:
        assert moment.weekday() == 0  # Monday
    if tf is MO1:
        assert moment.day == 1
        assert _utc(tf.next_open(t)).day == 1
    if tf is D3:
        listing_day = inception - inception % DAY_MS
        assert (tf.bucket_open(t, inception) - listing_day) % (3 * DAY_MS) == 0


def test_3d_grids_differ_between_listings() -> None:
    """Two symbols listed a day apart have different 3d buckets (fixtures README)."""
    eth_usdt = 1502928000000  # 2017-08-17
    neo_usdt = 1511136000000  # 2017-11-20
    t = 1525000000000
    assert D3.bucket_open(t, eth_usdt) != D3.bucket_open(t, neo_usdt)
    assert (eth_usdt // DAY_MS) % 3 == 1
    assert (neo_usdt // DAY_MS) % 3 == 0
    assert D3.bucket_open(eth_usdt + 5, eth_usdt) == eth_usdt


def test_3d_without_inception_is_an_error() -> None:
    with pytest.raises(BadRequest, match="inception"):
        D3.bucket_open(1_500_000_000_000)


def test_week_and_month_open_before_a_mid_period_listing() -> None:
    listing = 1502928000000  # Thursday 2017-08-17
    assert W1.bucket_open(listing) == 1502668800000  # Monday 2017-08-14
    assert MO1.bucket_open(listing) == 1501545600000  # 2017-08-01
    assert MO1.close_time(1501545600000) == 1504223999999  # 2017-08-31 23:59:59.999


@given(timeframes, instants, st.integers(0, 300), st.integers(0, 10**7), inceptions)
def test_opens_lists_every_bucket_opening_in_the_window(
    tf: Timeframe, start: int, buckets: int, extra_ms: int, inception: int
) -> None:
    end = start + buckets * tf.duration_ms + extra_ms
    opens = tf.opens(start, end, inception)
    if opens:
        assert start <= opens[0]
        assert opens[-1] <= end
        assert opens[0] == tf.bucket_open(start, inception) or opens[0] == tf.next_open(
            start, inception
        )
        for a, b in pairwise(opens):
            assert b == tf.next_open(a, inception)
        assert tf.next_open(opens[-1], inception) > end
    else:
        assert tf.next_open(start, inception) > end
        assert tf.bucket_open(start, inception) < start


@given(st.sampled_from(TIMEFRAMES), st.sampled_from(TIMEFRAMES), instants, inceptions)
def test_divides_means_every_small_bucket_sits_in_one_large_bucket(
    small: Timeframe, large: Timeframe, t: int, inception: int
) -> None:
    if small.divides(large):
        opened = small.bucket_open(t, inception)
        last = small.close_time(opened, inception)
        assert large.bucket_open(opened, inception) == large.bucket_open(last, inception)


def test_divides_on_known_pairs() -> None:
    assert M1.divides(MO1)
    assert D1.divides(W1)
    assert D1.divides(D3)
    assert parse_timeframe("8h").divides(D1)
    assert not parse_timeframe("3m").divides(parse_timeframe("5m"))
    assert not W1.divides(MO1)
    assert not D3.divides(W1)


@given(st.dates(date(1600, 1, 1), date(2400, 12, 31)))
def test_civil_day_numbers_agree_with_the_calendar(day: date) -> None:
    number = (day - date(1970, 1, 1)).days
    assert days_from_civil(day.year, day.month, day.day) == number
    assert civil_from_days(number) == (day.year, day.month, day.day)


def test_every_binance_code_parses_and_round_trips() -> None:
    codes = "1m 3m 5m 15m 30m 1h 2h 4h 6h 8h 12h 1d 3d 1w 1M".split()
    assert [tf.code for tf in TIMEFRAMES] == codes
    for code in codes:
        assert parse_timeframe(code).code == code


@pytest.mark.parametrize("bad", ["1s", "1H", "1D", "60", "", " 1m", "1min", "2d", "m1"])
def test_other_codes_are_refused_naming_the_value(bad: str) -> None:
    with pytest.raises(BadValue, match="timeframe") as caught:
        parse_timeframe(bad)
    assert repr(bad) in str(caught.value)
    assert "1m 3m 5m" in str(caught.value)


def test_bybit_codes_map_to_binance_timeframes() -> None:
    mapping = dict(
        zip(
            "1 3 5 15 30 60 120 240 360 720 D W M".split(),
            "1m 3m 5m 15m 30m 1h 2h 4h 6h 12h 1d 1w 1M".split(),
            strict=True,
        )
    )
    for bybit, binance in mapping.items():
        assert from_bybit_code(bybit).code == binance
        assert parse_timeframe(binance).bybit_code == bybit
    with pytest.raises(BadValue, match="Bybit interval"):
        from_bybit_code("480")


@pytest.mark.parametrize("venue", [Venue.BYBIT_SPOT, Venue.BYBIT_LINEAR])
@pytest.mark.parametrize("code", ["8h", "3d"])
def test_bybit_venues_refuse_what_bybit_does_not_publish(venue: Venue, code: str) -> None:
    with pytest.raises(BadValue) as caught:
        timeframe_for_venue(code, venue)
    message = str(caught.value)
    assert venue.value in message
    assert "1m 3m 5m 15m 30m 1h 2h 4h 6h 12h 1d 1w 1M" in message


def test_binance_venues_publish_every_timeframe() -> None:
    for venue in (Venue.BINANCE, Venue.BINANCE_USDM):
        assert venue_timeframes(venue) == TIMEFRAMES
        assert timeframe_for_venue("8h", venue) is H8
