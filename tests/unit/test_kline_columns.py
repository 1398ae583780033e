"""The columnar kline parser and validator agree with the row-by-row ones on any input."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from candlevault.domain.candles import Candle, kline_row, parse_kline_row
from candlevault.domain.columns import columns_from
from candlevault.domain.decimals import BINANCE_SPOT, Precision
from candlevault.domain.errors import BadValue
from candlevault.domain.kline_columns import parse_kline_columns
from candlevault.exchanges.validate import (
    MalformedReply,
    check_columns,
    check_klines,
    check_order,
)
from tests.unit.strategies import minute_run

MINUTE = 60_000
T0 = 1_700_000_040_000 - 1_700_000_040_000 % MINUTE
CORRUPT = ["NaN", "1e5", "", " 1.00000000", "1.0000000", "1.000000000", "-1.00000000", 7]


def _run(seed: int, n: int) -> list[Candle]:
    return minute_run(seed, n, T0, 10_000_000)


def _outcome(parse: object) -> object:
    try:
        return parse()  # type: ignore[operator]
    except (BadValue, MalformedReply) as e:
        return type(e), getattr(e, "reason", None)


@given(st.integers(0, 10**6), st.integers(0, 60), st.data())
def test_columns_parse_exactly_as_rows_do(seed: int, n: int, data: st.DataObject) -> None:
    rows: list[list[object]] = [kline_row(c, BINANCE_SPOT) for c in _run(seed, n)]
    if rows and data.draw(st.booleans()):
        row = data.draw(st.integers(0, len(rows) - 1))
        field = data.draw(st.sampled_from([1, 2, 3, 4, 5, 7, 9, 10]))
        rows[row][field] = data.draw(st.sampled_from(CORRUPT))
    precision = data.draw(st.sampled_from([BINANCE_SPOT, Precision(2, 3, 5)]))
    by_rows = _outcome(lambda: columns_from([parse_kline_row(r, precision) for r in rows]))
    by_columns = _outcome(lambda: parse_kline_columns(rows, precision))
    if isinstance(by_rows, tuple):
        assert isinstance(by_columns, tuple)
        assert by_columns[0] is by_rows[0]
    else:
        assert by_columns == by_rows


_CHANGES = [
    {"open_time_ms": 1},
    {"close_time_ms": 5},
    {"low": 10**15},
    {"high": 0},
    {"volume": -1},
    {"taker_buy_base": 10**18},
]


@given(st.integers(0, 10**6), st.integers(1, 40), st.integers(0, 50), st.data())
def test_columns_are_judged_exactly_as_candles_are(
    seed: int, n: int, now_minute: int, data: st.DataObject
) -> None:
    candles = _run(seed, n)
    action = data.draw(st.sampled_from(["none", "swap", "repeat", "change", "outside"]))
    i = data.draw(st.integers(0, n - 1))
    if action == "swap" and n > 1:
        j = min(i + 1, n - 1) if i + 1 < n else i - 1
        candles[i], candles[j] = candles[j], candles[i]
    elif action == "repeat":
        candles.insert(i, candles[i])
    elif action == "change":
        change = data.draw(st.sampled_from(_CHANGES))
        shift = {
            k: candles[i].open_time_ms + v if k.endswith("_ms") else v for k, v in change.items()
        }
        candles[i] = msgspec.structs.replace(candles[i], **shift)
    start = T0 + (MINUTE if action == "outside" else 0)
    end = T0 + (n - 1) * MINUTE
    now = T0 + now_minute * MINUTE + 77

    def rows_way() -> object:
        check_order(candles, newest_first=False)
        checked = check_klines(candles, start_ms=start, end_ms=end, now_ms=now)
        return list(checked.closed), checked.forming

    def columns_way() -> object:
        closed, forming = check_columns(
            columns_from(candles), start_ms=start, end_ms=end, now_ms=now
        )
        return list(closed.candles()), forming

    assert _outcome(columns_way) == _outcome(rows_way)


def test_a_corrupted_value_refuses_the_reply_in_the_client_words() -> None:
    rows: list[list[object]] = [kline_row(c, BINANCE_SPOT) for c in _run(1, 3)]
    rows[1][4] = "NaN"
    with pytest.raises(BadValue, match="invalid decimal 'NaN'"):
        parse_kline_columns(rows, BINANCE_SPOT)
