"""Kline replies are stored only if sane, ordered, on the grid and in the asked window."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from candlevault.domain.candles import Candle
from candlevault.exchanges.validate import MalformedReply, check_klines, check_order
from tests.unit.strategies import minute_run

MINUTE = 60_000
T0 = 1_700_000_040_000 - 1_700_000_040_000 % MINUTE


def _run(seed: int, n: int) -> list[Candle]:
    return minute_run(seed, n, T0, 1_000_000)


@given(st.integers(0, 10**6), st.integers(1, 200), st.integers(0, 250))
def test_a_good_reply_passes_whole_and_the_forming_candle_is_set_apart(
    seed: int, n: int, now_minute: int
) -> None:
    now = T0 + now_minute * MINUTE + 1234
    candles = [c for c in _run(seed, n) if c.open_time_ms <= now]  # what an exchange has
    checked = check_klines(candles, start_ms=T0, end_ms=T0 + (n - 1) * MINUTE, now_ms=now)
    assert checked.closed == [c for c in candles if c.close_time_ms < now]
    forming = [msgspec.structs.replace(c, closed=False) for c in candles if c.close_time_ms >= now]
    assert checked.forming == (forming[0] if forming else None)  # marked not closed
    assert checked.dropped == 0


def test_a_candle_from_the_future_refuses_the_reply() -> None:
    candles = _run(1, 10)
    now = T0 + 3 * MINUTE - 10_000  # minutes 3.. open 10 s and more after the clock

    with pytest.raises(MalformedReply, match="7 rows open after"):  # minutes 3..9
        check_klines(candles, start_ms=T0, end_ms=T0 + 9 * MINUTE, now_ms=now)


@given(st.integers(0, 10**6), st.integers(2, 100), st.data())
def test_any_disorder_or_repetition_is_refused(seed: int, n: int, data: st.DataObject) -> None:
    candles = _run(seed, n)
    i = data.draw(st.integers(0, n - 2))
    swapped = [*candles[:i], candles[i + 1], candles[i], *candles[i + 2 :]]
    with pytest.raises(MalformedReply, match="ascending"):
        check_order(swapped, newest_first=False)
    check_order(candles[::-1], newest_first=True)  # Bybit's order is fine for Bybit
    repeated = [*candles[: i + 1], candles[i], *candles[i + 1 :]]
    with pytest.raises(MalformedReply, match="repeated"):
        check_klines(repeated, start_ms=T0, end_ms=T0 + n * MINUTE, now_ms=T0 + 10**9)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"open_time_ms": T0 + 5 * MINUTE + 1}, "off the 1m grid"),
        ({"close_time_ms": T0 + 5 * MINUTE + 30_000}, "not open time \\+ 59999"),
        ({"low": 10**15}, "low above open or close"),
        ({"volume": -1}, "negative volume"),
    ],
)
def test_an_insane_row_refuses_the_whole_reply(change: dict[str, int], reason: str) -> None:
    candles = _run(7, 10)
    candles[5] = msgspec.structs.replace(candles[5], **change)
    with pytest.raises(MalformedReply, match=reason) as caught:
        check_klines(candles, start_ms=T0, end_ms=T0 + 9 * MINUTE, now_ms=T0 + 10**9)
    assert caught.value.rows == [candles[5]]  # kept aside for the anomaly log


def test_rows_outside_the_window_refuse_a_binance_reply_and_are_dropped_from_bybits() -> None:
    candles = _run(3, 10)
    window = {"start_ms": T0 + 2 * MINUTE, "end_ms": T0 + 6 * MINUTE, "now_ms": T0 + 10**9}
    with pytest.raises(MalformedReply, match="5 rows outside"):
        check_klines(candles, **window)
    checked = check_klines(candles, **window, drop_outside=True)
    assert checked.closed == candles[2:7]
    assert checked.dropped == 5


def test_a_clock_a_little_behind_the_exchanges_holds_back_what_it_cannot_see_closed() -> None:
    candles = _run(2, 4)
    now = T0 + 3 * MINUTE - 3_000  # the exchange opened minute 3; our clock is 3 s behind
    checked = check_klines(candles, start_ms=T0, end_ms=T0 + 3 * MINUTE, now_ms=now)
    assert checked.closed == candles[:2]  # minute 2 is not closed by our clock: not stored
    assert checked.forming is not None
    assert checked.forming.open_time_ms == T0 + 3 * MINUTE
    assert not checked.forming.closed
