"""Binance kline rows parsed straight into columns: the bootstrap's hot loop.

`parse_kline_row` builds one `Candle` per row, ~4 µs a row here, which made parsing
the bulk of a bootstrap's own CPU. Whole replies parse column by column instead: for a
fixed-width venue (every Binance row), one regex over the joined column checks every
value's form at C speed, and each value is then `int()` of its digits without the '.'.
A column not of that form goes through `parse_units` value by value, which accepts or
refuses exactly as `parse_kline_row` does, so the two parsers agree on every input
(a property the tests check).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

from candlevault.domain.candles import parse_kline_row
from candlevault.domain.columns import CLOSED, COMPLETE, CandleColumns, columns_from, empty_columns
from candlevault.domain.decimals import Precision


def parse_kline_columns(rows: Sequence[Sequence[object]], precision: Precision) -> CandleColumns:
    """Parse Binance kline rows (12 fields: ints for the times and the trade count) into
    closed, complete candle columns; raise BadValue as `parse_kline_row` would."""
    if not rows:
        return empty_columns()
    if any(len(row) != 12 for row in rows) or not precision.fixed:
        return columns_from([parse_kline_row(row, precision) for row in rows])
    cols = list(zip(*rows, strict=True))
    p, b, q = precision.price, precision.base, precision.quote
    scales = ((1, p), (2, p), (3, p), (4, p), (5, b), (7, q), (9, b), (10, q))
    parsed = [_ints(cols[i]) for i in (0, 6, 8)] + [_fixed(cols[i], s) for i, s in scales]
    plain = [col for col in parsed if col is not None]
    if len(plain) != len(parsed):  # not all plain: the careful path judges every value
        return columns_from([parse_kline_row(row, precision) for row in rows])
    opens, closes, trades, o, h, lo, c, v, qv, tb, tq = plain
    flags = [CLOSED | COMPLETE] * len(rows)
    return CandleColumns(opens, closes, o, h, lo, c, v, qv, trades, tb, tq, flags)


def _ints(values: tuple[object, ...]) -> list[int] | None:
    out = [v for v in values if type(v) is int]
    return out if len(out) == len(values) else None


@lru_cache(maxsize=32)
def _column_form(scale: int) -> re.Pattern[str]:
    one = rf"[0-9]+\.[0-9]{{{scale}}}" if scale else "[0-9]+"
    return re.compile(rf"{one}(?:\n{one})*", re.ASCII)


def _fixed(values: tuple[object, ...], scale: int) -> list[int] | None:
    """The column as units if every value is plain digits with exactly `scale` decimals."""
    texts = [v for v in values if type(v) is str]
    if len(texts) != len(values) or _column_form(scale).fullmatch("\n".join(texts)) is None:
        return None
    if scale == 0:
        return [int(v) for v in texts]
    return [int(v.replace(".", "")) for v in texts]
