"""The cold layer's contract: what every venue client does, whatever the venue.

Clients return domain values (`CandleColumns` of closed 1m candles, the forming candle
apart) that have passed `validate.check_klines`; nothing malformed leaves a client. One
call is one request, so the bootstrap decides pagination and concurrency from the
coverage ledger and the weight budget; `request_weight` and `max_klines` tell it what a
kline request costs and holds.
"""

from __future__ import annotations

from typing import Protocol

import msgspec

from candlevault.domain.candles import Candle
from candlevault.domain.columns import CandleColumns
from candlevault.domain.decimals import Precision
from candlevault.domain.venues import Venue


class SymbolInfo(msgspec.Struct, frozen=True):
    """One symbol as the venue lists it: the decimals its klines use, whether it trades,
    and its listing time when the venue publishes one (USD-M onboardDate, Bybit
    launchTime)."""

    symbol: str
    precision: Precision
    trading: bool
    listed_ms: int | None = None


class KlineReply(msgspec.Struct):
    """One kline request's answer: closed 1m candles of [start_ms, end_ms] (inclusive
    open times, ascending) and the forming candle, if the window reached it."""

    start_ms: int
    end_ms: int
    closed: CandleColumns
    forming: Candle | None = None


class ExchangeClient(Protocol):
    """A venue's REST market data, rate-limited and validated."""

    venue: Venue
    max_klines: int  # 1m candles one kline request returns at most
    request_weight: int  # what one such request costs against the venue's budget

    async def symbols(self) -> dict[str, SymbolInfo]:
        """Return every symbol the venue lists (and set the limiter from its limits)."""
        ...

    async def server_time_ms(self) -> int:
        """Return the venue's clock in epoch milliseconds."""
        ...

    async def klines(
        self, symbol: str, start_ms: int, end_ms: int, precision: Precision
    ) -> KlineReply:
        """Fetch the 1m klines opening in [start_ms, end_ms] with one request."""
        ...

    async def inception_ms(self, info: SymbolInfo) -> int | None:
        """Return the open time of the symbol's first 1m candle (None: none yet)."""
        ...
