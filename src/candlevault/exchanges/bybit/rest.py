"""Bybit v5 spot and linear market data over REST: klines, instruments, server time.

One request per `klines` call (the bootstrap paginates, from the coverage ledger), every
reply decoded strictly (`schemas`), parsed to exact units with the symbol's precision and
validated (`exchanges.validate`) before it leaves. The forming candle is returned apart.

Bybit counts requests, not weight: 600 per rolling 5 s per IP, spot and linear together
(https://bybit-exchange.github.io/docs/v5/rate-limit), so every request weighs 1 and a
kline request asks for up to 1000 rows, the most the endpoint gives. Errors come as HTTP
200 with a non-zero `retCode`: the documented transient ones (server time-out, server
error, rate protection) become `ExchangeUnavailable`, any other (an unknown symbol:
10001 "Not supported symbols") `ExchangeRejected`.

The kline window (https://bybit-exchange.github.io/docs/v5/market/kline): `start` and
`end` bound open times inclusively, and with both given Bybit returns the *newest*
`limit` of them, newest first; an unaligned `start` brings the candle that contains it,
which lies outside the window and is dropped. So a window longer than 1000 minutes is cut
to its first 1000 here and the reply says so (`KlineReply.end_ms`), rather than Bybit
silently answering its last 1000.

Inception: linear publishes `launchTime`, checked with one 1m request from that minute
(the listing minute may have no trade). Spot publishes nothing, so it is found by
narrowing: monthly klines (every month since the listing fits in one reply), then 12h
klines of the first month (at most 62), then 1m klines of the first half-day (at most
720): three requests, each window small enough that Bybit's 1000-row cap cannot cut it,
whichever end of an over-full window the venue would keep.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import pairwise
from typing import Final, TypeVar

import aiohttp
import msgspec

from candlevault.domain.candles import Candle
from candlevault.domain.clock import Clock
from candlevault.domain.columns import columns_from, empty_columns
from candlevault.domain.decimals import Precision, decimals_in, parse_units
from candlevault.domain.errors import BadValue, ExchangeRejected, ExchangeUnavailable
from candlevault.domain.timeframes import H12, M1, MO1, Timeframe
from candlevault.domain.venues import Venue
from candlevault.exchanges.bybit.schemas import (
    Envelope,
    Instrument,
    KlineRow,
    instruments_decoder,
    kline_decoder,
    status_decoder,
    time_decoder,
    to_candle,
)
from candlevault.exchanges.http import VenueHttp
from candlevault.exchanges.ports import KlineReply, SymbolInfo
from candlevault.exchanges.ratelimit import RollingLimiter
from candlevault.exchanges.validate import MalformedReply, check_klines, check_order, decoded

R = TypeVar("R")
MINUTE_MS: Final = 60_000
KLINES_LIMIT: Final = 1000  # the endpoint's maximum `limit`
INSTRUMENTS_LIMIT: Final = 1000  # linear's page maximum; spot does not page
REQUEST_WEIGHT: Final = 1
CATEGORIES: Final = {Venue.BYBIT_SPOT: "spot", Venue.BYBIT_LINEAR: "linear"}
# retCodes worth asking again (https://bybit-exchange.github.io/docs/v5/error): 10000
# "Server Timeout", 10006 "Too many visits", 10016 "Server error" (or restarting), 10018
# "Exceeded the IP Rate Limit", 10429 "System level frequency protection".
TRANSIENT_CODES: Final = frozenset({10000, 10006, 10016, 10018, 10429})
PROBE: Final = (MO1, H12, M1)  # each bucket of one holds at most 1000 of the next


def refusal(
    venue: Venue, what: str, code: int, message: str
) -> ExchangeRejected | ExchangeUnavailable:
    """Return the error a non-zero `retCode` means: transient or final."""
    text = f"{venue.value} {what}: {message} (retCode {code})"
    return ExchangeUnavailable(text) if code in TRANSIENT_CODES else ExchangeRejected(text)


class BybitRest:
    """`ExchangeClient` for Bybit spot (`Venue.BYBIT_SPOT`) or linear (`Venue.BYBIT_LINEAR`)."""

    def __init__(self, venue: Venue, http: VenueHttp, clock: Clock) -> None:
        if venue not in CATEGORIES:
            raise ValueError(f"BybitRest serves bybit-spot and bybit-linear, not {venue}")
        self.venue = venue
        self.max_klines = KLINES_LIMIT
        self.request_weight = REQUEST_WEIGHT
        self._category = CATEGORIES[venue]
        self._http = http
        self._clock = clock

    @property
    def http(self) -> VenueHttp:
        """The venue's HTTP (its limiter and request counts, for metrics)."""
        return self._http

    async def symbols(self) -> dict[str, SymbolInfo]:
        """Return every listed instrument, following `nextPageCursor` to the last page."""
        found: dict[str, SymbolInfo] = {}
        cursor = ""
        seen: set[str] = set()
        while True:
            params: dict[str, str | int] = {"category": self._category}
            if self.venue is Venue.BYBIT_LINEAR:
                params["limit"] = INSTRUMENTS_LIMIT
            if cursor:
                params["cursor"] = cursor
            body = await self._get("instruments-info", params)
            page = self._result(instruments_decoder, body, "instruments-info")
            found.update((item.symbol, symbol_info(self.venue, item)) for item in page.rows)
            cursor = page.next_page_cursor or ""
            if not cursor:
                return found
            if cursor in seen:
                raise MalformedReply(f"instruments-info: cursor {cursor!r} came back again")
            seen.add(cursor)

    async def server_time_ms(self) -> int:
        """Return Bybit's clock (`timeNano`, which `timeSecond` must agree with)."""
        body = await self._get("time", {})
        result = self._result(time_decoder, body, "time")
        nano = int(result.time_nano)
        if nano // 1_000_000_000 != int(result.time_second):
            raise MalformedReply(f"time: timeNano {nano} is not timeSecond {result.time_second}")
        return nano // 1_000_000

    async def klines(
        self, symbol: str, start_ms: int, end_ms: int, precision: Precision
    ) -> KlineReply:
        """Fetch the 1m klines opening in [start_ms, end_ms]; a window of more than
        `max_klines` minutes is cut to its first `max_klines` (see `KlineReply.end_ms`)."""
        if end_ms < start_ms:
            raise ValueError(f"end_ms {end_ms} is before start_ms {start_ms}")
        first = start_ms + -start_ms % MINUTE_MS  # the first open inside the window
        end_ms = min(end_ms, first + (self.max_klines - 1) * MINUTE_MS)
        # Bybit also sends the candle containing an unaligned start: leave room for it.
        span = (end_ms - (start_ms - start_ms % MINUTE_MS)) // MINUTE_MS + 1
        limit = min(self.max_klines, span)
        rows = await self._rows(symbol, M1, start_ms, end_ms, limit)
        candles = _candles(rows, precision)
        check_order(candles, newest_first=True)
        now_ms = self._clock.now_ms()
        checked = check_klines(
            candles, start_ms=start_ms, end_ms=end_ms, now_ms=now_ms, drop_outside=True
        )
        closed = columns_from(checked.closed) if checked.closed else empty_columns(optional=False)
        forming = checked.forming
        return KlineReply(start_ms, end_ms, closed, forming)

    async def inception_ms(self, info: SymbolInfo) -> int | None:
        """Return the open time of the symbol's first 1m kline (None: it never traded)."""
        if info.listed_ms is not None:  # linear's launchTime, checked: it is not a trade
            start = info.listed_ms - info.listed_ms % MINUTE_MS
            end = start + (self.max_klines - 1) * MINUTE_MS
            opens = await self._opens(info.symbol, M1, start, end, self.max_klines)
            if opens:
                return min(opens)
        return await self._probe(info.symbol)

    # -- helpers ------------------------------------------------------------------------

    async def _probe(self, symbol: str) -> int | None:
        """Narrow from the oldest month to its oldest half-day to its first minute."""
        first = await self._oldest_month(symbol)
        if first is None:
            return None
        for coarse, fine in pairwise(PROBE):
            end = coarse.next_open(first) - 1
            limit = min(self.max_klines, (end + 1 - first) // fine.duration_ms)
            opens = await self._opens(symbol, fine, first, end, limit)
            if not opens:
                raise MalformedReply(
                    f"kline {symbol}: a {coarse} kline at {first} but no {fine} kline in it"
                )
            first = min(opens)
        return first

    async def _oldest_month(self, symbol: str) -> int | None:
        """Return the oldest monthly kline's open, paging back should 1000 be too few."""
        end: int | None = None
        oldest: int | None = None
        while True:
            opens = await self._opens(symbol, MO1, None, end, self.max_klines)
            if not opens:
                return oldest
            oldest = min(opens)
            if len(opens) < self.max_klines:
                return oldest
            end = oldest - 1

    async def _opens(
        self, symbol: str, tf: Timeframe, start: int | None, end: int | None, limit: int
    ) -> list[int]:
        """Return the open times of `tf` klines in [start, end] (newest first as sent)."""
        rows = await self._rows(symbol, tf, start, end, limit)
        opens = [int(row[0]) for row in rows]
        if opens != sorted(opens, reverse=True):
            raise MalformedReply(f"kline {symbol} {tf}: rows not in descending open time", rows)
        low = 0 if start is None else start
        return [t for t in opens if low <= t and (end is None or t <= end)]

    async def _rows(
        self, symbol: str, tf: Timeframe, start: int | None, end: int | None, limit: int
    ) -> list[KlineRow]:
        """GET /v5/market/kline: the raw rows, newest first, of the reply for `symbol`."""
        params: dict[str, str | int] = {
            "category": self._category,
            "symbol": symbol,
            "interval": tf.bybit_code or "",
            "limit": limit,
        }
        if start is not None:
            params["start"] = start
        if end is not None:
            params["end"] = end
        body = await self._get("kline", params)
        result = self._result(kline_decoder, body, f"kline {symbol}")
        if (result.symbol, result.category) != (symbol, self._category):
            raise MalformedReply(
                f"kline {symbol}: the reply is for {result.category} {result.symbol}"
            )
        return result.rows

    async def _get(self, endpoint: str, params: Mapping[str, str | int]) -> bytes:
        return await self._http.get(f"/v5/market/{endpoint}", params, REQUEST_WEIGHT)

    def _result(self, decoder: msgspec.json.Decoder[Envelope[R]], body: bytes, what: str) -> R:
        """Decode a reply: raise the refusal a non-zero `retCode` means, else the result."""
        status = decoded(status_decoder, body, what)
        if status.ret_code != 0:
            raise refusal(self.venue, what, status.ret_code, status.ret_msg)
        return decoded(decoder, body, what).result


def bybit_client(
    base_url: str,
    venue: Venue,
    session: aiohttp.ClientSession,
    clock: Clock,
    limiter: RollingLimiter | None = None,
) -> BybitRest:
    """Build the client stack of one Bybit category: limiter, HTTP, REST client.

    Bybit's budget is per IP, spot and linear together: pass the same `limiter` to both
    categories' clients (a new one is made when none is given)."""
    http = VenueHttp(session, base_url, limiter or RollingLimiter(), venue.value)
    return BybitRest(venue, http, clock)


def symbol_info(venue: Venue, item: Instrument) -> SymbolInfo:
    """Return an instrument's `SymbolInfo`: the kline decimals from its price and quantity
    steps (turnover = price × volume, so quote = price + base decimals), the listing time
    from linear's `launchTime` (spot publishes none)."""
    step = item.lot_size_filter.base_precision or item.lot_size_filter.qty_step
    if step is None:
        raise MalformedReply(f"instruments-info {item.symbol}: no basePrecision or qtyStep")
    price = _decimals(item.price_filter.tick_size, f"{item.symbol} tickSize")
    base = _decimals(step, f"{item.symbol} quantity step")
    try:
        precision = Precision(price, base, price + base, fixed=False)
    except BadValue as e:
        raise MalformedReply(f"instruments-info {item.symbol}: {e}") from e
    listed = None
    if venue is Venue.BYBIT_LINEAR:
        if item.launch_time is None:
            raise MalformedReply(f"instruments-info {item.symbol}: no launchTime")
        listed = int(item.launch_time)
    return SymbolInfo(item.symbol, precision, item.status == "Trading", listed)


def _candles(rows: list[KlineRow], precision: Precision) -> list[Candle]:
    try:
        return [to_candle(row, precision) for row in rows]
    except BadValue as e:
        raise MalformedReply(f"kline row: {e}") from e


def _decimals(text: str, what: str) -> int:
    """Return how many decimals a positive step such as '0.010' is written with."""
    try:
        scale = decimals_in(text)
        if parse_units(text, scale) <= 0:
            raise BadValue(what, text, "expected a positive step")
    except BadValue as e:
        raise MalformedReply(f"instruments-info {what}: {e}") from e
    return scale
