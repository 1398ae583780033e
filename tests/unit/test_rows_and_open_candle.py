"""Prebuilt rows equal Binance's own rendering; the open candle folds into what the
closed candle becomes."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from candlevault.aggregation.candles import aggregate, forming_candle
from candlevault.cache.rows import FIELDS, api_body, binance_body, render_candle, render_rows
from candlevault.domain.candles import Candle, kline_row
from candlevault.domain.columns import columns_from
from candlevault.domain.decimals import BINANCE_SPOT, Precision
from candlevault.domain.timeframes import H1, M5, M15, Timeframe
from tests.unit.strategies import minute_run

precisions = st.builds(
    Precision, st.integers(0, 10), st.integers(0, 10), st.integers(0, 12), st.booleans()
)


@given(seed=st.integers(0, 10**6), n=st.integers(1, 300), precision=precisions)
def test_binance_body_is_byte_for_byte_the_venue_rendering(
    seed: int, n: int, precision: Precision
) -> None:
    candles = minute_run(seed, n, 1_600_000_000_000)
    rows = render_rows(columns_from(candles), precision)
    assert binance_body(rows) == orjson.dumps([kline_row(c, precision) for c in candles])
    ours = orjson.loads(api_body(rows))
    assert [row[: len(FIELDS)] for row in orjson.loads(binance_body(rows))] == ours
    assert [render_candle(c, precision) for c in candles] == rows


@given(seed=st.integers(0, 10**6), n=st.integers(1, 50))
def test_absent_fields_are_null_never_zero(seed: int, n: int) -> None:
    bare = ("trades", "taker_buy_base", "taker_buy_quote")
    candles = [
        Candle(**{k: v for k, v in _fields(c).items() if k not in bare})
        for c in minute_run(seed, n, 1_600_000_000_000)
    ]
    bybit = Precision(2, 6, 8, fixed=False)
    rows = orjson.loads(api_body(render_rows(columns_from(candles), bybit)))
    assert all(row[8:] == [None, None, None] for row in rows)
    assert [render_candle(c, bybit) for c in candles] == render_rows(columns_from(candles), bybit)
    assert api_body([]) == b"[]"
    assert binance_body([]) == b"[]"


@given(
    seed=st.integers(0, 10**6),
    tf=st.sampled_from([M5, M15, H1]),
    offset=st.integers(0, 59),
)
def test_the_open_candle_is_the_closed_one_so_far(seed: int, tf: Timeframe, offset: int) -> None:
    bucket = 1_600_000_000_000 - 1_600_000_000_000 % tf.duration_ms
    minutes = minute_run(seed, tf.duration_ms // 60_000, bucket)
    upto = offset % len(minutes)
    closed, forming = minutes[:upto], minutes[upto]
    stored = aggregate(closed, tf, now_ms=bucket)[0] if closed else None
    folded = forming_candle(stored, forming, tf, complete=True)
    whole = aggregate([*closed, forming], tf, now_ms=bucket)[0]
    assert folded is not None
    assert folded == Candle(**{**_fields(whole), "closed": False, "complete": True})
    assert forming_candle(None, None, tf) is None
    assert forming_candle(stored, None, tf) == (
        None
        if stored is None
        else Candle(**{**_fields(stored), "closed": False, "complete": False})
    )


def _fields(candle: Candle) -> dict[str, object]:
    return {f: getattr(candle, f) for f in candle.__struct_fields__}


def test_rows_render_binance_spot_decimals() -> None:
    (candle,) = minute_run(7, 1, 1_600_000_000_000)
    row = orjson.loads(api_body(render_rows(columns_from([candle]), BINANCE_SPOT)))[0]
    assert row[0] == 1_600_000_000_000
    assert all(isinstance(row[i], str) and len(row[i].split(".")[1]) == 8 for i in (1, 2, 3, 4, 5))
