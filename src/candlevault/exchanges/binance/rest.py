"""Binance spot and USD-M market data over REST: klines, exchange info, server time.

One request per call (the bootstrap paginates, from the coverage ledger), every reply
decoded strictly (`schemas`), parsed to exact units with the symbol's precision and
validated (`exchanges.validate`) before it leaves. The forming candle is returned apart.

Weights (https://developers.binance.com/docs/binance-spot-api-docs/rest-api/limits and
the USD-M "Kline/Candlestick Data" page): spot klines cost 2 whatever the limit, so a
request asks for 1000; USD-M klines cost 1/2/5/10 for limit < 100 / < 500 / <= 1000 /
> 1000, so 499 candles for 2 is the cheapest per candle. Binance's kline window bounds
open times inclusively (`startTime` <= open <= `endTime`), oldest first; `startTime=0`
with `limit=1` returns a symbol's first kline, its inception.
"""

from __future__ import annotations

from collections.abc import Callable

from candlevault.domain.candles import Candle
from candlevault.domain.clock import Clock
from candlevault.domain.columns import CandleColumns
from candlevault.domain.decimals import BINANCE_SPOT, Precision
from candlevault.domain.errors import BadValue
from candlevault.domain.kline_columns import parse_kline_columns
from candlevault.domain.venues import Venue
from candlevault.exchanges.binance.schemas import (
    INTERVAL_MS,
    ExchangeInfo,
    KlineRow,
    SymbolEntry,
    exchange_info_decoder,
    klines_decoder,
    server_time_decoder,
)
from candlevault.exchanges.http import VenueHttp
from candlevault.exchanges.ports import KlineReply, SymbolInfo
from candlevault.exchanges.validate import MalformedReply, check_columns, decoded
from candlevault.exchanges.weights import request_weight, usdm_klines_limit

MINUTE_MS = 60_000
SPOT_KLINES_LIMIT = 1000  # weight 2 whatever the limit
USDM_KLINES_LIMIT = usdm_klines_limit(10**6)  # 499: weight 2, the cheapest per candle
WeightLimits = Callable[[int, int], None]  # (limit, window_ms): the venue's budget


def kline_weight(venue: Venue, limit: int) -> int:
    """Return what a klines request of `limit` costs on `venue`."""
    path = "/api/v3/klines" if venue is Venue.BINANCE else "/fapi/v1/klines"
    return request_weight(venue, path, limit)


class BinanceRest:
    """`ExchangeClient` for Binance spot (`Venue.BINANCE`) or USD-M (`Venue.BINANCE_USDM`)."""

    def __init__(
        self,
        venue: Venue,
        http: VenueHttp,
        clock: Clock,
        *,
        on_limits: WeightLimits | None = None,
    ) -> None:
        if venue not in (Venue.BINANCE, Venue.BINANCE_USDM):
            raise ValueError(f"BinanceRest serves binance and binance-usdm, not {venue}")
        self.venue: Venue = venue
        self.max_klines = SPOT_KLINES_LIMIT if venue is Venue.BINANCE else USDM_KLINES_LIMIT
        self.request_weight = kline_weight(venue, self.max_klines)
        self._http = http
        self._clock = clock
        self._on_limits = on_limits
        self._prefix = "/api/v3" if venue is Venue.BINANCE else "/fapi/v1"

    @property
    def http(self) -> VenueHttp:
        """The venue's HTTP (its limiter and request counts, for metrics)."""
        return self._http

    async def symbols(self) -> dict[str, SymbolInfo]:
        """Return every listed symbol; hand the venue's weight limit to `on_limits`."""
        return (await self.exchange_info())[1]

    async def exchange_info(self) -> tuple[bytes, dict[str, SymbolInfo]]:
        """Return the venue's exchange info as sent (what candlevault's Binance-compatible
        `exchangeInfo` re-serves) and parsed; hand the weight limit to `on_limits`."""
        body = await self._get("exchangeInfo", {}, self._weight("exchangeInfo"))
        info = decoded(exchange_info_decoder, body, "exchangeInfo")
        self._apply_limits(info)
        return body, {entry.symbol: self._symbol(entry) for entry in info.symbols}

    async def server_time_ms(self) -> int:
        """Return Binance's clock."""
        body = await self._get("time", {}, self._weight("time"))
        return decoded(server_time_decoder, body, "time").server_time

    async def klines(
        self, symbol: str, start_ms: int, end_ms: int, precision: Precision
    ) -> KlineReply:
        """Fetch the 1m klines opening in [start_ms, end_ms] (at most `max_klines`)."""
        limit = min(self.max_klines, max(1, (end_ms - start_ms) // MINUTE_MS + 1))
        end_ms = min(end_ms, start_ms + (limit - 1) * MINUTE_MS)  # what one reply can hold
        rows = await self._rows(symbol, start_ms, end_ms, limit)
        closed, forming = self._checked(rows, precision, start_ms, end_ms)
        return KlineReply(start_ms, end_ms, closed, forming)

    async def inception_ms(self, info: SymbolInfo) -> int | None:
        """Return the open time of the symbol's first 1m kline (`startTime=0`)."""
        rows = await self._rows(info.symbol, 0, None, 1)
        closed, forming = self._checked(rows, info.precision, 0, rows[0][0] if rows else 0)
        if len(closed):
            return closed.open_time_ms[0]
        return None if forming is None else forming.open_time_ms  # listed this minute

    # -- helpers ------------------------------------------------------------------------

    async def _rows(
        self, symbol: str, start_ms: int, end_ms: int | None, limit: int
    ) -> list[KlineRow]:
        params: dict[str, str | int] = {
            "symbol": symbol,
            "interval": "1m",
            "startTime": start_ms,
            "limit": limit,
        }
        if end_ms is not None:
            params["endTime"] = end_ms
        body = await self._get("klines", params, kline_weight(self.venue, limit))
        return decoded(klines_decoder, body, f"klines {symbol}")

    async def _get(self, endpoint: str, params: dict[str, str | int], weight: int) -> bytes:
        return await self._http.get(f"{self._prefix}/{endpoint}", params, weight)

    def _weight(self, endpoint: str) -> int:
        return request_weight(self.venue, f"{self._prefix}/{endpoint}")

    def _checked(
        self, rows: list[KlineRow], precision: Precision, start_ms: int, end_ms: int
    ) -> tuple[CandleColumns, Candle | None]:
        """Parse rows to columns and validate them for [start_ms, end_ms]."""
        try:
            columns = parse_kline_columns(rows, precision)
        except BadValue as e:
            raise MalformedReply(f"kline row: {e}") from e
        return check_columns(columns, start_ms=start_ms, end_ms=end_ms, now_ms=self._now())

    def _now(self) -> int:
        return self._clock.now_ms()

    def _apply_limits(self, info: ExchangeInfo) -> None:
        for entry in info.rate_limits:
            if entry.rate_limit_type == "REQUEST_WEIGHT" and entry.interval in INTERVAL_MS:
                window_ms = INTERVAL_MS[entry.interval] * entry.interval_num
                if self._on_limits is not None:
                    self._on_limits(entry.limit, window_ms)

    def _symbol(self, entry: SymbolEntry) -> SymbolInfo:
        if self.venue is Venue.BINANCE:
            precision = BINANCE_SPOT
        else:
            price, qty = entry.price_precision or 0, entry.quantity_precision or 0
            precision = Precision(price, qty, price + qty)
        listed = entry.onboard_date if self.venue is Venue.BINANCE_USDM else None
        return SymbolInfo(entry.symbol, precision, entry.status == "TRADING", listed)
