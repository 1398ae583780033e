"""Parsers of user and exchange input: venues, symbols, instruments, dates, kline rows."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from candlevault.domain.candles import (
    Candle,
    CandleBatch,
    kline_row,
    parse_kline_row,
    sanity_problems,
)
from candlevault.domain.decimals import BINANCE_SPOT, Precision
from candlevault.domain.errors import BadValue, CandlevaultError
from candlevault.domain.symbols import Instrument, parse_instrument, parse_symbol
from candlevault.domain.times import format_time_ms, parse_time_ms
from candlevault.domain.venues import Venue, parse_venue

ROW = [
    1660435200000,
    "1980.69000000",
    "1981.29000000",
    "1978.00000000",
    "1978.34000000",
    "1160.17960000",
    1660435259999,
    "2296106.79339100",
    2013,
    "491.37030000",
    "972424.75312500",
    "0",
]


def test_venue_names() -> None:
    assert [v.value for v in Venue] == ["binance", "binance-usdm", "bybit-spot", "bybit-linear"]
    assert parse_venue("Binance-USDM") is Venue.BINANCE_USDM
    assert Venue.BYBIT_LINEAR.exchange == "bybit"
    assert Venue.BINANCE_USDM.exchange == "binance"


@pytest.mark.parametrize("bad", ["", "binance_usdm", "bybit", "kraken", "binance spot"])
def test_unknown_venues_are_refused_with_the_list(bad: str) -> None:
    with pytest.raises(BadValue, match="binance, binance-usdm, bybit-spot, bybit-linear"):
        parse_venue(bad)


@pytest.mark.parametrize(
    "good", ["BTCUSDT", "btcusdt", "BTCUSDT_250328", "BTCUSDT-14AUG26", "1000PEPEUSDT"]
)
def test_symbols_that_pass(good: str) -> None:
    assert parse_symbol(good) == good.upper()


@pytest.mark.parametrize(
    "bad", ["", "BTC/USDT", "../etc", "BTC USDT", "BTC:USDT", "A" * 33, "BTC*", "BTC\nUSDT", "ÄBC"]
)
def test_symbols_that_could_escape_a_key_or_path_are_refused(bad: str) -> None:
    with pytest.raises(BadValue) as caught:
        parse_symbol(bad)
    assert repr(bad) in str(caught.value)
    assert isinstance(caught.value, CandlevaultError)


@given(st.text(max_size=40))
def test_a_parsed_symbol_is_always_safe(text: str) -> None:
    try:
        symbol = parse_symbol(text)
    except BadValue:
        return
    assert 1 <= len(symbol) <= 32
    assert set(symbol) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


def test_instruments() -> None:
    assert parse_instrument("BTCUSDT", Venue.BINANCE) == Instrument(Venue.BINANCE, "BTCUSDT")
    usdm = parse_instrument("binance-usdm:ethusdt", Venue.BINANCE)
    assert usdm == Instrument(Venue.BINANCE_USDM, "ETHUSDT")
    assert str(usdm) == "binance-usdm:ETHUSDT"
    with pytest.raises(BadValue, match="venue"):
        parse_instrument("kraken:BTCUSDT", Venue.BINANCE)


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("2017-08-17", 1502928000000),
        ("2017-08-17T04:00", 1502942400000),
        ("2017-08-17T04:00:00Z", 1502942400000),
        ("2017-08-17T06:00:00+02:00", 1502942400000),
        ("1502928000000", 1502928000000),
        ("1969-12-31T23:59:59.999Z", -1),
    ],
)
def test_dates(text: str, ms: int) -> None:
    assert parse_time_ms(text) == ms


@pytest.mark.parametrize("bad", ["", "yesterday", "2017-13-01", "17/08/2017", "-5", "1e12"])
def test_bad_dates_are_refused_naming_the_value(bad: str) -> None:
    with pytest.raises(BadValue, match="date") as caught:
        parse_time_ms(bad)
    assert repr(bad) in str(caught.value)


@given(st.integers(0, 7_258_118_400_000))
def test_times_round_trip_through_iso(ms: int) -> None:
    assert parse_time_ms(format_time_ms(ms)) == ms


def test_a_binance_row_round_trips_exactly() -> None:
    candle = parse_kline_row(ROW, BINANCE_SPOT)
    assert kline_row(candle, BINANCE_SPOT) == ROW
    assert CandleBatch(BINANCE_SPOT, [candle]).rows() == [ROW]
    assert sanity_problems(candle) == []


def test_archive_rows_with_string_times_parse() -> None:
    as_csv = [str(x) for x in ROW]
    assert parse_kline_row(as_csv, BINANCE_SPOT) == parse_kline_row(ROW, BINANCE_SPOT)


@pytest.mark.parametrize(
    ("index", "value", "named"),
    [
        (1, 1980.69, "open"),
        (2, "1981.2.9", "decimal"),
        (5, "NaN", "decimal"),
        (0, "16604352OO000", "open time"),
        (8, True, "trade count"),
        (7, "1.000000001", "decimal"),
    ],
)
def test_malformed_rows_are_refused(index: int, value: object, named: str) -> None:
    row = list(ROW)
    row[index] = value
    with pytest.raises(BadValue, match=named):
        parse_kline_row(row, BINANCE_SPOT)


def test_a_row_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(BadValue, match="expected 12 fields, got 11"):
        parse_kline_row(ROW[:11], BINANCE_SPOT)


def test_bybit_candles_keep_absent_fields_absent_and_write_bybit_text() -> None:
    bybit = Precision(price=2, base=6, quote=8, fixed=False)
    candle = Candle(
        open_time_ms=1694563200000,
        open=1897962,
        high=2500000,
        low=1858075,
        close=1928927,
        volume=59221813269,
        close_time_ms=1694649599999,
        quote_volume=119551936611772158,
    )
    assert candle.trades is None
    assert candle.taker_buy_base is None
    row = kline_row(candle, bybit)
    assert row[1:6] == ["18979.62", "25000", "18580.75", "19289.27", "59221.813269"]
    assert row[7] == "1195519366.11772158"


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"low": 10**12}, "low above open or close"),
        ({"high": 1}, "high below open or close"),
        ({"volume": -1}, "negative volume"),
        ({"taker_buy_base": 10**15}, "taker-buy volume outside 0..volume"),
        ({"close_time_ms": 0}, "close time not after open time"),
    ],
)
def test_sanity_problems_are_named(change: dict[str, int], problem: str) -> None:
    candle = parse_kline_row(ROW, BINANCE_SPOT)
    fields = {name: getattr(candle, name) for name in candle.__struct_fields__}
    assert problem in sanity_problems(Candle(**{**fields, **change}))


@given(
    st.lists(st.integers(0, 10**24), min_size=8, max_size=8),
    st.integers(0, 10),
    st.integers(0, 10),
    st.integers(0, 12),
    st.booleans(),
)
def test_rows_parse_back_to_the_same_candle(
    values: list[int], price: int, base: int, quote: int, fixed: bool
) -> None:
    precision = Precision(price, base, quote, fixed)
    o, h, lo, c, v, qv, tb, tq = values
    candle = Candle(1, o, h, lo, c, v, 59_999, qv, 7, tb, tq)
    assert parse_kline_row(kline_row(candle, precision), precision) == candle


def test_rows_short_of_the_full_width_parse_the_same() -> None:
    short = list(ROW)
    short[1], short[5] = "1980.69", "1160.1796"
    assert parse_kline_row(short, BINANCE_SPOT) == parse_kline_row(ROW, BINANCE_SPOT)
