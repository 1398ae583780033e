"""A single exchange trade.

Trade ids are ints on Binance and strings on Bybit (a numeric string on spot, a UUID
on linear), so the id keeps the venue's type. Price and quantity are units of the
symbol's `Precision` (price and base scales).
"""

from __future__ import annotations

import msgspec


class Trade(msgspec.Struct, frozen=True, gc=False):
    """One fill: `buyer_is_maker` False means the taker bought (a taker-buy trade).

    `count` is how many exchange trades it stands for: 1 for a trade, `l - f + 1` for
    a Binance aggTrade (fills of one taker order at one price), since a kline's trade
    count counts individual trade ids.
    """

    trade_id: int | str
    price: int
    qty: int
    time_ms: int
    buyer_is_maker: bool
    count: int = 1
