"""The Bybit v5 schemas against real recorded replies (../shared/fixtures/bybit/rest).

Each recording decodes with the strict schemas, and every decimal string comes back
character for character from the exact units it parses to (Bybit writes the fewest
digits). The kline recordings are testnet daily rows: their values are only format.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from candlevault.domain.decimals import Precision, format_units, parse_units
from candlevault.domain.errors import ExchangeRejected, ExchangeUnavailable
from candlevault.domain.venues import Venue
from candlevault.exchanges.bybit.rest import refusal, symbol_info
from candlevault.exchanges.bybit.schemas import (
    instruments_decoder,
    kline_decoder,
    status_decoder,
    time_decoder,
    to_candle,
)
from tests.contract.recorded import fixtures_dir

KLINES = {  # category -> (file, the decimals its rows are written with)
    "spot": ("v5_market_kline_spot_BTCUSDT_D_2023-09-12_to_14_TESTNET.json", Precision(2, 6, 8)),
    "linear": (
        "v5_market_kline_linear_BTCUSDT_D_2023-09-12_to_14_TESTNET.json",
        Precision(1, 3, 4),
    ),
}
SPOT_INFO = "v5_market_instruments-info_spot_2026-08-09_trimmed.json"
LINEAR_INFO = "v5_market_instruments-info_linear_2026-08-09_trimmed.json"
DAY_MS = 86_400_000


def recorded(name: str) -> bytes:
    return (fixtures_dir() / "bybit" / "rest" / name).read_bytes()


@pytest.mark.parametrize("category", list(KLINES))
def test_recorded_klines_decode_and_their_decimals_round_trip(category: str) -> None:
    name, scales = KLINES[category]
    body = recorded(name)
    reply = kline_decoder.decode(body)
    raw: dict[str, Any] = json.loads(body)
    assert (reply.ret_code, reply.ret_msg, reply.time) == (0, "OK", raw["time"])
    assert reply.ret_ext_info is None  # these captures carry no retExtInfo
    result = reply.result
    assert (result.symbol, result.category) == ("BTCUSDT", category)
    assert [list(row) for row in result.rows] == raw["result"]["list"]
    opens = [int(row[0]) for row in result.rows]
    assert opens == [1694649600000, 1694563200000, 1694476800000]  # newest first
    precision = Precision(scales.price, scales.base, scales.quote, fixed=False)
    p, b, q = precision.price, precision.base, precision.quote
    for row in result.rows:
        candle = to_candle(row, precision)
        written = [
            str(candle.open_time_ms),
            *(format_units(x, p, False) for x in (candle.open, candle.high, candle.low)),
            format_units(candle.close, p, False),
            format_units(candle.volume, b, False),
            format_units(candle.quote_volume, q, False),
        ]
        assert written == list(row)
        assert (candle.trades, candle.taker_buy_base, candle.taker_buy_quote) == (None,) * 3


@pytest.mark.parametrize(
    "breakage",
    [
        lambda row: row[:6],  # a field missing
        lambda row: [int(row[0]), *row[1:]],  # the start as a number
        lambda row: [row[0], *row[1:6], float(row[6])],  # a float turnover
        lambda row: ["1694649600000.0", *row[1:]],  # a start that is not all digits
    ],
)
def test_a_recorded_row_altered_is_refused_whole(breakage: Any) -> None:
    raw = json.loads(recorded(KLINES["spot"][0]))
    raw["result"]["list"][1] = breakage(raw["result"]["list"][1])
    with pytest.raises(msgspec.ValidationError):
        kline_decoder.decode(json.dumps(raw).encode())


def test_recorded_spot_instruments_decode_without_a_cursor() -> None:
    reply = instruments_decoder.decode(recorded(SPOT_INFO))
    assert reply.ret_ext_info == {}
    assert reply.result.category == "spot"
    assert reply.result.next_page_cursor is None  # spot has no nextPageCursor key at all
    infos = {item.symbol: symbol_info(Venue.BYBIT_SPOT, item) for item in reply.result.rows}
    assert {name: info.precision for name, info in infos.items()} == {
        "BTCUSDT": Precision(1, 6, 7, fixed=False),  # tickSize 0.1, basePrecision 0.000001
        "ETHUSDT": Precision(2, 5, 7, fixed=False),
        "ETHBTC": Precision(6, 5, 11, fixed=False),
    }
    assert all(info.trading and info.listed_ms is None for info in infos.values())


def test_recorded_linear_instruments_decode_with_launch_times_and_an_empty_cursor() -> None:
    reply = instruments_decoder.decode(recorded(LINEAR_INFO))
    assert reply.result.category == "linear"
    assert reply.result.next_page_cursor == ""  # the last (and only) page
    infos = {item.symbol: symbol_info(Venue.BYBIT_LINEAR, item) for item in reply.result.rows}
    assert {name: (info.precision, info.listed_ms) for name, info in infos.items()} == {
        "1000000BABYDOGEUSDT": (Precision(7, 0, 7, fixed=False), 1718105652000),
        "BTCUSDT": (Precision(2, 3, 5, fixed=False), 1584230400000),  # tickSize "0.10"
        "BTCUSDT-14AUG26": (Precision(1, 3, 4, fixed=False), 1784880000000),
        "DOGEUSDT": (Precision(5, 0, 5, fixed=False), 1622630640000),
        "ETHUSDT": (Precision(2, 2, 4, fixed=False), 1615766400000),
        "SOLUSDT": (Precision(3, 1, 4, fixed=False), 1634256000000),
    }
    contracts = {item.symbol: item.contract_type for item in reply.result.rows}
    assert contracts["BTCUSDT-14AUG26"] == "LinearFutures"
    for item in reply.result.rows:  # linear writes its steps at the contract's full scale
        scale = infos[item.symbol].precision.price
        tick = item.price_filter.tick_size
        assert format_units(parse_units(tick, scale), scale) == tick


def test_recorded_time_decodes_to_the_millisecond_of_its_envelope() -> None:
    reply = time_decoder.decode(recorded("v5_market_time_2023-09-14.json"))
    assert reply.result.time_second == "1694667737"
    assert int(reply.result.time_nano) // 1_000_000 == reply.time == 1694667737126


@pytest.mark.parametrize(
    "name", [SPOT_INFO, LINEAR_INFO, KLINES["spot"][0], "v5_market_time_2023-09-14.json"]
)
def test_every_recorded_reply_has_a_successful_status(name: str) -> None:
    status = status_decoder.decode(recorded(name))
    assert (status.ret_code, status.ret_msg) == (0, "OK")


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (10001, ExchangeRejected),  # "Not supported symbols", "Invalid period!"
        (10000, ExchangeUnavailable),  # Server Timeout
        (10006, ExchangeUnavailable),  # Too many visits
        (10016, ExchangeUnavailable),  # Server error, or restarting
        (10018, ExchangeUnavailable),  # Exceeded the IP Rate Limit
        (10429, ExchangeUnavailable),  # System level frequency protection
    ],
)
def test_documented_transient_ret_codes_are_unavailable_the_rest_rejected(
    code: int, error: type[Exception]
) -> None:
    found = refusal(Venue.BYBIT_SPOT, "kline BTCUSDT", code, "message")
    assert type(found) is error
    assert f"retCode {code}" in str(found)
