"""Trades -> 1m candle, the one fold that the simulator and the real-time builder share.

Rules, as the recorded Binance streams show (../shared/fixtures/README.md, "Trades ->
kline"): volume = Σ qty, quote volume = Σ price × qty, taker-buy volumes over the
trades whose buyer was the taker (`buyer_is_maker` False), trade count = number of
individual trades (an aggTrade counts its `l - f + 1` fills), high/low over prices,
close = the last trade's price. A minute without trades is flat at the previous
close with zero volume, as Binance emits it.

"First" and "last" are by trade id where ids order (Binance's aggregate ids are
integers that rise with every trade), so a stream that delivers a share of trades out of
order still opens and closes the candle at the venue's prices; where they do not (Bybit
linear's UUIDs) they are the arrival order, which on one connection is the venue's.

The quote volume is summed exactly at scale price+base and rounded (half to even) to
the quote scale only when a candle is written out, so a running candle never drifts,
however many trades it absorbs. For symbols whose tick × step fits the quote scale
(BTCUSDT: 0.01 × 0.00001 at 8 decimals) no rounding ever happens.
"""

from __future__ import annotations

from collections.abc import Iterable

from candlevault.domain.candles import Candle
from candlevault.domain.decimals import Precision, rescale
from candlevault.domain.timeframes import M1, Timeframe
from candlevault.domain.trades import Trade


class CandleAccumulator:
    """A candle being built from trades (mutable, pure, no clock)."""

    __slots__ = (
        "_close_time_ms",
        "_first_id",
        "_last_id",
        "_precision",
        "close",
        "high",
        "low",
        "open",
        "open_time_ms",
        "quote_exact",
        "taker_base",
        "taker_quote_exact",
        "trades",
        "volume",
    )

    def __init__(
        self,
        open_time_ms: int,
        precision: Precision,
        prev_close: int | None = None,
        timeframe: Timeframe = M1,
    ) -> None:
        self.open_time_ms = open_time_ms
        self._close_time_ms = timeframe.close_time(open_time_ms)
        self._precision = precision
        flat = prev_close if prev_close is not None else 0
        self.open = self.high = self.low = self.close = flat
        self.volume = self.taker_base = self.trades = 0
        self.quote_exact = self.taker_quote_exact = 0  # at scale price + base
        self._first_id = self._last_id = -1  # integer ids only

    def add(self, trade: Trade) -> None:
        """Fold one trade in (open and close by id where ids are integers, else in the
        order given, which must then be the venue's)."""
        price, qty, tid = trade.price, trade.qty, trade.trade_id
        if self.trades == 0:
            self.open = self.high = self.low = self.close = price
            if type(tid) is int:
                self._first_id = self._last_id = tid
        else:
            if price > self.high:
                self.high = price
            elif price < self.low:
                self.low = price
            if type(tid) is not int:
                self.close = price
            elif tid > self._last_id:
                self.close, self._last_id = price, tid
            elif tid < self._first_id:
                self.open, self._first_id = price, tid
        self.trades += trade.count
        self.volume += qty
        notional = price * qty
        self.quote_exact += notional
        if not trade.buyer_is_maker:
            self.taker_base += qty
            self.taker_quote_exact += notional

    def candle(self, closed: bool) -> Candle:
        """Return the candle as it stands now."""
        p = self._precision
        exact_scale = p.price + p.base
        return Candle(
            open_time_ms=self.open_time_ms,
            open=self.open,
            high=self.high,
            low=self.low,
            close=self.close,
            volume=self.volume,
            close_time_ms=self._close_time_ms,
            quote_volume=rescale(self.quote_exact, exact_scale, p.quote),
            trades=self.trades,
            taker_buy_base=self.taker_base,
            taker_buy_quote=rescale(self.taker_quote_exact, exact_scale, p.quote),
            closed=closed,
        )


def fold_trades(
    trades: Iterable[Trade],
    *,
    open_time_ms: int,
    precision: Precision,
    prev_close: int | None,
    closed: bool = True,
) -> Candle | None:
    """Fold one minute's trades (in venue order) into its 1m candle.

    Returns None for a minute without trades and without a previous close (before
    the symbol's first trade there is no candle to emit).
    """
    acc = CandleAccumulator(open_time_ms, precision, prev_close)
    for trade in trades:
        acc.add(trade)
    if acc.trades == 0 and prev_close is None:
        return None
    return acc.candle(closed)
