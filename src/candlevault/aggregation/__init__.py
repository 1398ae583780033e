"""Pure aggregation: trades -> 1m candles, lower -> higher timeframes. No I/O, no clock."""

from candlevault.aggregation.candles import Outage, aggregate
from candlevault.aggregation.trades import CandleAccumulator, fold_trades

__all__ = ["CandleAccumulator", "Outage", "aggregate", "fold_trades"]
