"""Candles in columns: the batch form stores hand out and the read path serializes from.

A read of 500 candles must cost well under a millisecond, and building one object per
candle alone costs more than that; so a batch is eleven parallel lists (one per kline
field) plus the flags, sliced and concatenated as lists, and turned into `Candle`
values only where a caller needs one (aggregation, tests). Fields a venue does not
publish are a `None` column, never a column of zeros.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import msgspec

from candlevault.domain.candles import Candle

CLOSED = 1
COMPLETE = 2


class CandleColumns(msgspec.Struct):
    """Parallel columns of candles in ascending open time; `flags` holds CLOSED|COMPLETE."""

    open_time_ms: list[int]
    close_time_ms: list[int]
    open: list[int]
    high: list[int]
    low: list[int]
    close: list[int]
    volume: list[int]
    quote_volume: list[int]
    trades: list[int] | None
    taker_buy_base: list[int] | None
    taker_buy_quote: list[int] | None
    flags: list[int]

    def __len__(self) -> int:
        return len(self.open_time_ms)

    def candle(self, i: int) -> Candle:
        """Return row `i` as a `Candle`."""
        return Candle(
            self.open_time_ms[i],
            self.open[i],
            self.high[i],
            self.low[i],
            self.close[i],
            self.volume[i],
            self.close_time_ms[i],
            self.quote_volume[i],
            None if self.trades is None else self.trades[i],
            None if self.taker_buy_base is None else self.taker_buy_base[i],
            None if self.taker_buy_quote is None else self.taker_buy_quote[i],
            bool(self.flags[i] & CLOSED),
            bool(self.flags[i] & COMPLETE),
        )

    def candles(self) -> Iterator[Candle]:
        """Yield every row as a `Candle`."""
        return (self.candle(i) for i in range(len(self)))

    def slice(self, lo: int, hi: int) -> CandleColumns:
        """Return rows [lo, hi) as a new batch."""
        return CandleColumns(
            self.open_time_ms[lo:hi],
            self.close_time_ms[lo:hi],
            self.open[lo:hi],
            self.high[lo:hi],
            self.low[lo:hi],
            self.close[lo:hi],
            self.volume[lo:hi],
            self.quote_volume[lo:hi],
            None if self.trades is None else self.trades[lo:hi],
            None if self.taker_buy_base is None else self.taker_buy_base[lo:hi],
            None if self.taker_buy_quote is None else self.taker_buy_quote[lo:hi],
            self.flags[lo:hi],
        )

    def extend(self, other: CandleColumns) -> None:
        """Append `other`'s rows (a field absent from either side becomes absent)."""
        mine = self._columns()
        theirs = other._columns()
        for name, a, b in zip(self.__struct_fields__, mine, theirs, strict=True):
            if a is None or b is None:
                setattr(self, name, None)
            else:
                a.extend(b)

    def _columns(self) -> tuple[list[int] | None, ...]:
        return tuple(getattr(self, name) for name in self.__struct_fields__)


def empty_columns(optional: bool = True) -> CandleColumns:
    """Return an empty batch (`optional` False: the venue has no trade count or taker fields)."""
    if optional:
        return CandleColumns([], [], [], [], [], [], [], [], [], [], [], [])
    return CandleColumns([], [], [], [], [], [], [], [], None, None, None, [])


def columns_from(candles: Sequence[Candle]) -> CandleColumns:
    """Return `candles` (ascending) as columns."""
    has_optional = all(
        c.trades is not None and c.taker_buy_base is not None and c.taker_buy_quote is not None
        for c in candles
    )
    return CandleColumns(
        [c.open_time_ms for c in candles],
        [c.close_time_ms for c in candles],
        [c.open for c in candles],
        [c.high for c in candles],
        [c.low for c in candles],
        [c.close for c in candles],
        [c.volume for c in candles],
        [c.quote_volume for c in candles],
        [c.trades or 0 for c in candles] if has_optional else None,
        [c.taker_buy_base or 0 for c in candles] if has_optional else None,
        [c.taker_buy_quote or 0 for c in candles] if has_optional else None,
        [CLOSED * c.closed | COMPLETE * c.complete for c in candles],
    )
