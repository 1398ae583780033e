"""Binance spot and USD-M market data over REST: klines, aggTrades, exchange info, time.

One request per call (the bootstrap paginates, from the coverage ledger), every reply
decoded strictly (`schemas`), parsed to exact units with the symbol's precision and
validated (`exchanges.validate`) before it leaves. The forming candle is returned apart.

Weights (https://developers.binance.com/docs/binance-spot-api-docs/rest-api/limits and
the USD-M "Kline/Candlestick Data" page): spot klines cost 2 whatever the limit, so a
request asks for 1000; USD-M klines cost 1/2/5/10 for limit < 100 / < 500 / <= 1000 /
> 1000, so 499 candles for 2 is the cheapest per candle. Binance's kline window bounds
open times inclusively (`startTime` <= open <= `endTime`), oldest first; `startTime=0`
with `limit=1` returns a symbol's first kline, its inception.

aggTrades ("Compressed/Aggregate trades list", spot rest-api.md and the USD-M page) cost
4 (spot) or 20 (USD-M) whatever the limit, so pages ask for the maximum, 1000. The
documented rules are checked before sending (`BadRequest`, nothing sent): `limit` at
most 1000; `startTime` and `endTime` (both inclusive, on `T`) "less than 1 hour" apart;
`fromId` (inclusive) not combined with either (the docs are silent; the simulator, like
Binance's servers of 2018, refuses it with -1128). Replies are refused whole
(`MalformedReply`) unless ids strictly increase, times never go back, each row's trade
ids `f..l` follow the previous row's, every value parses at the symbol's precision and
every row answers the request. After a stream reconnect, `agg_trades_between` fetches
the missed trades of the open minute: one time window, then on by id.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise

from candlevault.domain.candles import Candle
from candlevault.domain.clock import Clock
from candlevault.domain.columns import CandleColumns
from candlevault.domain.decimals import BINANCE_SPOT, Precision
from candlevault.domain.errors import BadRequest, BadValue
from candlevault.domain.kline_columns import parse_kline_columns
from candlevault.domain.trades import Trade
from candlevault.domain.venues import Venue
from candlevault.exchanges.binance.schemas import (
    INTERVAL_MS,
    AggTradeRow,
    ExchangeInfo,
    KlineRow,
    SymbolEntry,
    agg_trades_decoder,
    exchange_info_decoder,
    klines_decoder,
    server_time_decoder,
)
from candlevault.exchanges.http import VenueHttp
from candlevault.exchanges.ports import KlineReply, SymbolInfo
from candlevault.exchanges.validate import CLOCK_SLACK_MS, MalformedReply, check_columns, decoded
from candlevault.exchanges.weights import request_weight, usdm_klines_limit

MINUTE_MS = 60_000
SPOT_KLINES_LIMIT = 1000  # weight 2 whatever the limit
USDM_KLINES_LIMIT = usdm_klines_limit(10**6)  # 499: weight 2, the cheapest per candle
HOUR_MS = 3_600_000
AGG_TRADES_MAX = 1000  # "Default 500; max 1000."; the weight is the same for any limit
WeightLimits = Callable[[int, int], None]  # (limit, window_ms): the venue's budget


def kline_weight(venue: Venue, limit: int) -> int:
    """Return what a klines request of `limit` costs on `venue`."""
    path = "/api/v3/klines" if venue is Venue.BINANCE else "/fapi/v1/klines"
    return request_weight(venue, path, limit)


@dataclass(frozen=True, slots=True)
class AggQuery:
    """The selection of one aggTrades request; refuses (`BadRequest`) what Binance would."""

    from_id: int | None = None
    start_ms: int | None = None
    end_ms: int | None = None
    limit: int = AGG_TRADES_MAX

    def __post_init__(self) -> None:
        problem = self._problem()
        if problem is not None:
            raise BadRequest(f"aggTrades: {problem}")

    def _problem(self) -> str | None:
        if not 1 <= self.limit <= AGG_TRADES_MAX:
            return f"limit must be in [1, {AGG_TRADES_MAX}], not {self.limit}"
        named = {"fromId": self.from_id, "startTime": self.start_ms, "endTime": self.end_ms}
        negative = [f"{k} {v}" for k, v in named.items() if v is not None and v < 0]
        if negative:
            return f"{', '.join(negative)} must not be negative"
        if self.from_id is not None and (self.start_ms is not None or self.end_ms is not None):
            return "fromId cannot be combined with startTime or endTime"
        if self.start_ms is not None and self.end_ms is not None:
            if self.end_ms < self.start_ms:
                return f"endTime {self.end_ms} is before startTime {self.start_ms}"
            if self.end_ms - self.start_ms >= HOUR_MS:
                return "startTime and endTime must be less than 1 hour apart"
        return None

    def params(self, symbol: str) -> dict[str, str | int]:
        """Return the query string of a request for `symbol`."""
        params: dict[str, str | int] = {"symbol": symbol, "limit": self.limit}
        named = {"fromId": self.from_id, "startTime": self.start_ms, "endTime": self.end_ms}
        params.update({k: v for k, v in named.items() if v is not None})
        return params


def parse_agg_trades(
    rows: Sequence[AggTradeRow], precision: Precision, query: AggQuery, now_ms: int | None = None
) -> list[Trade]:
    """Return an aggTrades reply to `query` as `Trade`s, or refuse it whole (`MalformedReply`).

    Each trade as the stream parser builds it: id "a", price and quantity exact at the
    symbol's precision, time "T", `buyer_is_maker` "m", count l - f + 1. `now_ms` (the
    exchange's clock) refuses trades from the future, give or take `CLOCK_SLACK_MS`.
    """
    if len(rows) > query.limit:
        raise MalformedReply(f"aggTrades: {len(rows)} rows for limit {query.limit}", rows)
    trades = [_agg_trade(row, precision) for row in rows]
    for a, b in pairwise(rows):
        if b.agg_id <= a.agg_id:
            raise MalformedReply(f"aggTrades: id {b.agg_id} after {a.agg_id}", [a, b])
        if b.time_ms < a.time_ms:
            raise MalformedReply(f"aggTrades: time {b.time_ms} after {a.time_ms}", [a, b])
        if b.first_id <= a.last_id:
            reason = f"trade ids {b.first_id}..{b.last_id} after {a.first_id}..{a.last_id}"
            raise MalformedReply(f"aggTrades {b.agg_id}: {reason}", [a, b])
    _check_answers(rows, query, now_ms)
    return trades


def _agg_trade(row: AggTradeRow, precision: Precision) -> Trade:
    try:
        return row.trade(precision)
    except BadValue as e:
        raise MalformedReply(f"aggTrades {row.agg_id}: {e}", [row]) from e


def _check_answers(rows: Sequence[AggTradeRow], query: AggQuery, now_ms: int | None) -> None:
    """Refuse rows (already in order) that the request did not ask for."""
    if not rows:
        return
    first, last = rows[0], rows[-1]
    if query.from_id is not None and first.agg_id < query.from_id:
        raise MalformedReply(f"aggTrades: id {first.agg_id} below fromId {query.from_id}", [first])
    if query.start_ms is not None and first.time_ms < query.start_ms:
        early = [r for r in rows if r.time_ms < query.start_ms]
        raise MalformedReply(f"aggTrades: {len(early)} rows before {query.start_ms}", early)
    if query.end_ms is not None and last.time_ms > query.end_ms:
        late = [r for r in rows if r.time_ms > query.end_ms]
        raise MalformedReply(f"aggTrades: {len(late)} rows after {query.end_ms}", late)
    if now_ms is not None and last.time_ms > now_ms + CLOCK_SLACK_MS:
        future = [r for r in rows if r.time_ms > now_ms + CLOCK_SLACK_MS]
        raise MalformedReply(f"aggTrades: {len(future)} rows after the exchange's clock", future)


class _Span:
    """The trades `agg_trades_between` keeps of its pages, and whether it is done."""

    def __init__(self, start_ms: int, until_id: int | None, until_ms: int) -> None:
        self.start_ms, self.until_id, self.until_ms = start_ms, until_id, until_ms
        self.trades: list[Trade] = []
        self.done = False

    def take(self, page: list[Trade]) -> None:
        """Keep a page's wanted trades; done at the first one at or past the bounds."""
        for trade in page:
            agg_id = int(trade.trade_id)
            if trade.time_ms > self.until_ms or (
                self.until_id is not None and agg_id >= self.until_id
            ):
                self.done = True
                return
            if trade.time_ms < self.start_ms:
                continue
            if self.trades and agg_id <= int(self.trades[-1].trade_id):
                kept = self.trades[-1]
                raise MalformedReply(f"aggTrades: pages overlap at id {agg_id}", [kept, trade])
            self.trades.append(trade)


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
    def agg_trades_path(self) -> str:
        """The aggTrades endpoint's path (what `http.counts` counts its requests under)."""
        return f"{self._prefix}/aggTrades"

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

    async def agg_trades(
        self,
        symbol: str,
        precision: Precision,
        *,
        from_id: int | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int = AGG_TRADES_MAX,
    ) -> list[Trade]:
        """Fetch one page of aggregate trades, oldest first (see `parse_agg_trades`).

        `fromId` and the times are inclusive; nothing selected gives the newest `limit`.
        Parameters Binance would refuse raise `BadRequest` before anything is sent.
        """
        query = AggQuery(from_id, start_ms, end_ms, limit)
        body = await self._get("aggTrades", query.params(symbol), self._weight("aggTrades"))
        rows = decoded(agg_trades_decoder, body, f"aggTrades {symbol}")
        return parse_agg_trades(rows, precision, query, self._now())

    async def agg_trades_between(
        self,
        symbol: str,
        precision: Precision,
        *,
        start_ms: int,
        until_id: int | None,
        until_ms: int,
        page: int = AGG_TRADES_MAX,
    ) -> list[Trade]:
        """Fetch the aggregate trades with start_ms <= T <= until_ms and id < until_id.

        By time, an hour's window at a time, until a page comes back full; then on by
        `fromId` = last id + 1 until a page is short or reaches `until_id` or `until_ms`.
        In id order, each trade once.
        """
        span = _Span(start_ms, until_id, until_ms)
        window, trades = start_ms, list[Trade]()  # `trades`: the last page
        while not span.done and window <= until_ms and len(trades) < page:
            end = min(window + HOUR_MS - 1, until_ms)
            trades = await self.agg_trades(
                symbol, precision, start_ms=window, end_ms=end, limit=page
            )
            span.take(trades)
            window = end + 1
        while not span.done and len(trades) == page:
            from_id = int(trades[-1].trade_id) + 1
            trades = await self.agg_trades(symbol, precision, from_id=from_id, limit=page)
            span.take(trades)
        return span.trades

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
