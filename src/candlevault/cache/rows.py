"""Candles rendered once, as JSON rows, so that a read only joins bytes.

A row is a Binance kline array *without* its closing bracket and without Binance's
twelfth field ("ignore", always "0"):

    [1700000000000,"37000.01000000","37010.00000000",...,"12.34000000"

so that one stored form gives both response bodies with a single `bytes.join` and no
per-row work: our API's rows are `b"],".join(rows) + b"]"` (eleven fields) and
Binance's are `b',"0"],'.join(rows) + b',"0"]'` (twelve, byte-compatible with
`/api/v3/klines`). Prices and volumes are the decimal strings the venue writes
(`format_units` with the series' precision); a field the venue does not publish is
`null`, never a made-up zero.
"""

from __future__ import annotations

from collections.abc import Sequence

from candlevault.domain.candles import Candle
from candlevault.domain.columns import CandleColumns
from candlevault.domain.decimals import Precision, format_units

FIELDS = (
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "close_time",
    "quote_volume",
    "trades",
    "taker_buy_base_volume",
    "taker_buy_quote_volume",
)


def _texts(values: list[int], scale: int, fixed: bool) -> list[str]:
    return [format_units(v, scale, fixed) for v in values]


def render_rows(columns: CandleColumns, precision: Precision) -> list[bytes]:
    """Render every row of `columns` (see the module docstring for the form)."""
    p, b, q, fixed = precision.price, precision.base, precision.quote, precision.fixed
    opens, highs = _texts(columns.open, p, fixed), _texts(columns.high, p, fixed)
    lows, closes = _texts(columns.low, p, fixed), _texts(columns.close, p, fixed)
    volumes = _texts(columns.volume, b, fixed)
    quotes = _texts(columns.quote_volume, q, fixed)
    n = len(columns)
    if columns.trades is None or columns.taker_buy_base is None or columns.taker_buy_quote is None:
        tail = [",null,null,null"] * n
    else:
        tbb = _texts(columns.taker_buy_base, b, fixed)
        tbq = _texts(columns.taker_buy_quote, q, fixed)
        tail = [f',{t},"{x}","{y}"' for t, x, y in zip(columns.trades, tbb, tbq, strict=True)]
    return [
        f'[{t},"{o}","{h}","{lo}","{c}","{v}",{ct},"{qv}"{rest}'.encode()
        for t, o, h, lo, c, v, ct, qv, rest in zip(
            columns.open_time_ms,
            opens,
            highs,
            lows,
            closes,
            volumes,
            columns.close_time_ms,
            quotes,
            tail,
            strict=True,
        )
    ]


def render_candle(candle: Candle, precision: Precision) -> bytes:
    """Render one candle (the forming one, rendered per refresh)."""
    p, b, q, fixed = precision.price, precision.base, precision.quote, precision.fixed
    if candle.trades is None or candle.taker_buy_base is None or candle.taker_buy_quote is None:
        rest = ",null,null,null"
    else:
        tbb = format_units(candle.taker_buy_base, b, fixed)
        tbq = format_units(candle.taker_buy_quote, q, fixed)
        rest = f',{candle.trades},"{tbb}","{tbq}"'
    return (
        f'[{candle.open_time_ms},"{format_units(candle.open, p, fixed)}",'
        f'"{format_units(candle.high, p, fixed)}","{format_units(candle.low, p, fixed)}",'
        f'"{format_units(candle.close, p, fixed)}","{format_units(candle.volume, b, fixed)}",'
        f'{candle.close_time_ms},"{format_units(candle.quote_volume, q, fixed)}"{rest}'
    ).encode()


def api_body(rows: Sequence[bytes]) -> bytes:
    """Join rows into our API's JSON array of eleven-field rows."""
    return b"[" + b"],".join(rows) + b"]]" if rows else b"[]"


def binance_body(rows: Sequence[bytes]) -> bytes:
    """Join rows into Binance's `/api/v3/klines` body, byte for byte."""
    return b"[" + b',"0"],'.join(rows) + b',"0"]]' if rows else b"[]"
