"""Aggregation reproduces Binance's own higher-timeframe candles from the recordings.

Every comparison is field by field; for the 2022 ETHUSDT set it is decimal string for
decimal string, through the same row writer the API will use.
"""

from __future__ import annotations

import pytest

from candlevault.aggregation import aggregate
from candlevault.domain.candles import Candle, kline_row
from candlevault.domain.decimals import BINANCE_SPOT
from candlevault.domain.timeframes import DAY_MS, HOUR_MS, MINUTE_MS, parse_timeframe
from tests.contract.recorded import csv_rows, fixtures_dir, octobot, spot_candles

ETH_1M_DAYS = ("ETHUSDT-1m-2022-08-14.zip", "ETHUSDT-1m-2022-08-15.zip")


@pytest.mark.parametrize(
    ("code", "recording", "buckets"),
    [
        ("5m", "ETHUSDT-5m-2022-08-14_to_15.csv", 576),
        ("1h", "ETHUSDT-1h-2022-08.csv", 48),
        ("1d", "ETHUSDT-1d-2022-08.csv", 2),
    ],
)
def test_eth_1m_aggregates_to_the_exchange_rows_exactly(
    code: str, recording: str, buckets: int
) -> None:
    minutes = spot_candles(*ETH_1M_DAYS)
    assert len(minutes) == 2880
    expected = {
        int(row[0]): row for row in csv_rows(fixtures_dir() / "binance" / "klines" / recording)
    }

    built = aggregate(minutes, parse_timeframe(code))

    assert len(built) == buckets
    for candle in built:
        assert candle.complete
        assert candle.closed
        assert [str(x) for x in kline_row(candle, BINANCE_SPOT)] == expected[candle.open_time_ms]


def test_eth_1h_aggregates_to_every_daily_row_of_august_2022() -> None:
    hours = spot_candles("ETHUSDT-1h-2022-08.csv")
    days = csv_rows(fixtures_dir() / "binance" / "klines" / "ETHUSDT-1d-2022-08.csv")

    built = aggregate(hours, parse_timeframe("1d"), source=parse_timeframe("1h"))

    assert [[str(x) for x in kline_row(c, BINANCE_SPOT)] for c in built] == days


def test_5m_to_1h_equals_1m_to_1h_on_the_recorded_days() -> None:
    minutes = spot_candles(*ETH_1M_DAYS)
    five = spot_candles("ETHUSDT-5m-2022-08-14_to_15.csv")
    hour = parse_timeframe("1h")

    assert aggregate(five, hour, source=parse_timeframe("5m")) == aggregate(minutes, hour)


# 2018 data (OctoBot, OHLCV only). A symbol's first 1w and 1M buckets open before its
# listing and count as complete from the listing on, so they are compared too (the
# fixtures README counts only whole weeks and months: one fewer each). The snapshot was
# taken at 2018-06-18 21:28 UTC, so a bucket still open then is skipped: `now_ms` marks
# it not closed.
SNAPSHOT_MS = 1529357280000 + MINUTE_MS
# Binance's maintenance outage: the 4h, 8h and 12h series have no candles from
# 2018-02-08 04:00 to 2018-02-09 04:00 inclusive.
OUTAGE = (1518048000000 + 4 * HOUR_MS, 1518163200000)
ETH = "binance_ETH_USDT_20180618_232713.data"
NEO_ETH = "binance_NEO_ETH_20180618_232713.extract_1m_3m_1d_3d_1w_1M.json"
NEO_USDT = "binance_NEO_USDT_20180618_232713.extract_1d_3d_1w_1M.json"
XRP_USDT = "binance_XRP_USDT_20180618_232713.extract_1d_3d_1w_1M.json"


def _ohlcv(candle: Candle) -> tuple[int, ...]:
    return (candle.open_time_ms, candle.open, candle.high, candle.low, candle.close, candle.volume)


def _compare(name: str, source: str, target: str) -> int:
    """Aggregate and compare every closed, complete bucket; return how many matched."""
    series = octobot(name)
    inception = series["1d"][0].open_time_ms if source == "1d" else None
    built = aggregate(
        series[source],
        parse_timeframe(target),
        source=parse_timeframe(source),
        inception_ms=inception,
        outages=[OUTAGE],
        now_ms=SNAPSHOT_MS,
    )
    exchange = {c.open_time_ms: c for c in series[target]}
    matched = 0
    for candle in built:
        if candle.closed and candle.complete:
            assert _ohlcv(candle) == _ohlcv(exchange[candle.open_time_ms]), candle
            matched += 1
    return matched


@pytest.mark.parametrize(
    ("source", "target", "buckets"),
    [
        ("1m", "3m", 333),
        ("1m", "5m", 199),
        ("1m", "15m", 65),
        ("1m", "30m", 32),
        ("1m", "1h", 16),
        ("1h", "2h", 499),
        ("1h", "4h", 249),
        ("1h", "8h", 124),
        ("1h", "12h", 82),
        ("1h", "1d", 40),
        ("4h", "8h", 499),
        ("4h", "12h", 333),
        ("4h", "1d", 166),
        ("1d", "3d", 101),
        ("1d", "1w", 44),
        ("1d", "1M", 10),
    ],
)
def test_eth_usdt_2018_every_interval(source: str, target: str, buckets: int) -> None:
    assert _compare(ETH, source, target) == buckets


@pytest.mark.parametrize(
    ("name", "source", "target", "buckets"),
    [
        (NEO_ETH, "1m", "3m", 332),
        (NEO_ETH, "1d", "3d", 87),
        (NEO_ETH, "1d", "1w", 38),
        (NEO_ETH, "1d", "1M", 9),
        (NEO_USDT, "1d", "3d", 70),
        (NEO_USDT, "1d", "1w", 30),
        (NEO_USDT, "1d", "1M", 7),
        (XRP_USDT, "1d", "3d", 15),
        (XRP_USDT, "1d", "1w", 7),
        (XRP_USDT, "1d", "1M", 1),
    ],
)
def test_other_symbols_2018(name: str, source: str, target: str, buckets: int) -> None:
    assert _compare(name, source, target) == buckets


def test_zero_volume_minutes_take_no_part_in_ohlc() -> None:
    """NEO/ETH has 209 flat zero-volume minutes; the plain rule would get 51 buckets wrong."""
    minutes = octobot(NEO_ETH)["1m"]
    zero = [c for c in minutes if c.volume == 0]
    assert len(zero) == 209
    previous = {c.open_time_ms + MINUTE_MS: c.close for c in minutes}
    for candle in zero:
        flat = previous.get(candle.open_time_ms, candle.open)
        assert candle.open == candle.high == candle.low == candle.close == flat
    # The 3m buckets built only of zero-volume minutes are flat at the previous close.
    flat_buckets = [c for c in aggregate(minutes, parse_timeframe("3m")) if c.volume == 0]
    exchange = {c.open_time_ms: c for c in octobot(NEO_ETH)["3m"]}
    assert flat_buckets
    for candle in flat_buckets:
        assert _ohlcv(candle) == _ohlcv(exchange[candle.open_time_ms])


def test_outage_day_is_complete_only_when_the_outage_is_known() -> None:
    four_hours = octobot(ETH)["4h"]
    day = parse_timeframe("1d")
    outage_day = OUTAGE[0] - OUTAGE[0] % DAY_MS
    exchange = {c.open_time_ms: c for c in octobot(ETH)["1d"]}

    known = {
        c.open_time_ms: c
        for c in aggregate(four_hours, day, source=parse_timeframe("4h"), outages=[OUTAGE])
    }
    unknown = {c.open_time_ms: c for c in aggregate(four_hours, day, source=parse_timeframe("4h"))}

    assert known[outage_day].complete
    assert _ohlcv(known[outage_day]) == _ohlcv(exchange[outage_day])
    assert not unknown[outage_day].complete
    assert not unknown[outage_day + DAY_MS].complete


def test_first_week_and_month_open_before_the_listing() -> None:
    series = octobot(ETH)
    listing = series["1d"][0].open_time_ms  # 2017-08-17, a Thursday
    week = aggregate(
        series["1d"][:4], parse_timeframe("1w"), source=parse_timeframe("1d"), inception_ms=listing
    )
    assert week[0].open_time_ms == series["1w"][0].open_time_ms == listing - 3 * DAY_MS
    assert week[0].complete
    assert _ohlcv(week[0]) == _ohlcv(series["1w"][0])
    assert series["1M"][0].open_time_ms == 1501545600000  # 2017-08-01
