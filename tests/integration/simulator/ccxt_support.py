"""ccxt pointed at the simulator, and the simulator's ground truth in ccxt's terms.

ccxt is the independent client of issue 4's "Done when": it knows the real venues'
wire formats and pagination, not ours. Each exchange is built with options that keep
`load_markets` on the public market endpoints the simulator serves (no currencies, no
margin pairs, no inverse or option markets). Every URL in its `urls["api"]` is rewritten
to the simulator's loopback address and checked, and every request ccxt then sends is
checked again before it leaves: a test must never reach for a real venue.

Ground truth is read in-process from the same `SimWorld` and written the way the venue
writes it (`format_units` at the listing's precision), then parsed with `float()`,
exactly as ccxt parses the venue's strings, so rows compare equal to the last bit.
"""

from __future__ import annotations

import contextlib
import itertools
import re
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import ccxt.async_support as ccxt

from candlevault.domain.candles import Candle
from candlevault.domain.decimals import Precision, format_units
from candlevault.domain.timeframes import Timeframe
from candlevault.domain.trades import Trade
from candlevault.domain.venues import Venue
from candlevault.simulator.market import VenueMarket
from candlevault.simulator.world import SimWorld

MINUTE_MS = 60_000
Ohlcv = list[float]  # ccxt's row: [open_time_ms, open, high, low, close, volume]
MakeExchange = Callable[[], ccxt.Exchange]

_ORIGIN = re.compile(r"^[a-z]+://[^/]+")


def binance_spot() -> ccxt.Exchange:
    """Return ccxt's `binance` limited to spot markets and public endpoints."""
    # fetchCurrencies and fetchMargins would read /sapi (keyed) endpoints.
    options = {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False, "fetchMargins": False}
    return ccxt.binance({"options": options})


def binance_usdm() -> ccxt.Exchange:
    """Return ccxt's `binanceusdm` limited to linear markets and public endpoints."""
    options = {
        "fetchMarkets": {"types": ["linear"]},
        "fetchCurrencies": False,
        "fetchMargins": False,
    }
    return ccxt.binanceusdm({"options": options})


def bybit() -> ccxt.Exchange:
    """Return ccxt's `bybit` limited to spot and linear markets and public endpoints."""
    # bybit's fetch_currencies ignores this option but sends nothing without API keys.
    options = {"fetchMarkets": {"types": ["spot", "linear"]}, "fetchCurrencies": False}
    return ccxt.bybit({"options": options})


@dataclass
class Connected:
    """A ccxt exchange pointed at the simulator, and the paths of what it asked for."""

    exchange: ccxt.Exchange
    paths: list[str] = field(default_factory=list)


@contextlib.asynccontextmanager
async def connected(make: MakeExchange, base_url: str) -> AsyncIterator[Connected]:
    """Build an exchange, point it at `base_url`, record its requests; close it after."""
    exchange = make()
    try:
        point_at(exchange, base_url)
        client = Connected(exchange)
        _record_requests(client, base_url)
        yield client
    finally:
        await exchange.close()


def point_at(exchange: ccxt.Exchange, base_url: str) -> None:
    """Rewrite the scheme and host of every URL in `exchange.urls["api"]` to `base_url`,
    then check that each one, as ccxt will resolve it, targets the simulator only."""
    assert urlsplit(base_url).hostname == "127.0.0.1", base_url
    exchange.urls["api"] = _rewrite(exchange.urls["api"], base_url)
    if getattr(exchange, "hostname", None):  # bybit writes "https://api.{hostname}"
        exchange.hostname = urlsplit(base_url).netloc
    urls = list(api_urls(exchange.urls["api"]))
    assert urls, f"{exchange.id} has no API URL"
    for url in urls:
        resolved = exchange.implode_hostname(url)
        assert urlsplit(resolved).hostname == "127.0.0.1", f"{exchange.id} would reach {url}"
        assert resolved == base_url or resolved.startswith(base_url + "/"), resolved


def api_urls(value: object) -> Iterator[str]:
    """Yield every string in a (nested) `urls["api"]` value."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from api_urls(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from api_urls(item)


def _rewrite(value: Any, base_url: str) -> Any:
    if isinstance(value, str):
        rewritten, count = _ORIGIN.subn(base_url, value)
        assert count == 1, f"not a URL: {value!r}"
        return rewritten
    if isinstance(value, dict):
        return {key: _rewrite(item, base_url) for key, item in value.items()}
    if isinstance(value, list):
        return [_rewrite(item, base_url) for item in value]
    return value


def _record_requests(client: Connected, base_url: str) -> None:
    """Wrap the exchange's one HTTP entry point: refuse anything but the simulator,
    and note each request's path."""
    send = client.exchange.fetch

    async def fetch(url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        assert url.startswith(base_url + "/"), f"{client.exchange.id} asked {url}"
        client.paths.append(urlsplit(url).path)
        return await send(url, method, headers, body)

    client.exchange.fetch = fetch


# -- ground truth: klines --------------------------------------------------------------


def number(units: int, scale: int) -> float:
    """Return units of 10**-scale as ccxt reads the venue's string of them."""
    return float(format_units(units, scale))


def as_ohlcv(candle: Candle, precision: Precision) -> Ohlcv:
    """Return a candle as ccxt's row of it."""
    p = precision.price
    return [
        candle.open_time_ms,
        number(candle.open, p),
        number(candle.high, p),
        number(candle.low, p),
        number(candle.close, p),
        number(candle.volume, precision.base),
    ]


def truth_ohlcv(
    world: SimWorld,
    venue: Venue,
    symbol: str,
    tf: Timeframe,
    *,
    start_ms: int,
    end_ms: int | None = None,
) -> list[Ohlcv]:
    """Return every kline of `symbol` opening in [start_ms, end_ms] (default: up to
    now, the forming one included) as ccxt rows."""
    view = world.view(venue, symbol)
    assert view is not None, f"{symbol} is not listed on {venue}"
    now = world.now_ms()
    precision = view.market.listing.precision
    out: list[Ohlcv] = []
    t = start_ms
    while True:
        page = view.window(tf, now_ms=now, start_ms=t, end_ms=end_ms, limit=5000)
        out += [as_ohlcv(candle, precision) for candle in page]
        if len(page) < 5000:
            return out
        t = page[-1].open_time_ms + 1


def assert_series(rows: list[list[Any]], tf: Timeframe) -> None:
    """Check that ccxt's rows are on the grid and strictly ascending (no duplicates)."""
    opens = [row[0] for row in rows]
    assert opens == sorted(set(opens)), "not strictly ascending, or duplicated"
    assert all(t % tf.duration_ms == 0 for t in opens), "an open time off the grid"


def gaps(rows: list[list[Any]], tf: Timeframe) -> list[tuple[int, int]]:
    """Return (open before, open after) wherever consecutive rows skip a bucket."""
    pairs = itertools.pairwise(rows)
    return [(a[0], b[0]) for a, b in pairs if b[0] - a[0] != tf.duration_ms]


# -- ground truth: trades --------------------------------------------------------------


def side(trade: Trade) -> str:
    """Return ccxt's side of a trade: the taker's ("sell" when the buyer made)."""
    return "sell" if trade.buyer_is_maker else "buy"


def minute_tape(market: VenueMarket, *, from_ms: int, now_ms: int) -> list[Trade]:
    """Return every trade of the minutes from `from_ms`'s to `now_ms`'s, in id order,
    those of the current minute not yet printed included."""
    tape: list[Trade] = []
    minute = from_ms - from_ms % MINUTE_MS
    while minute <= now_ms:
        tape += market.trades(minute)
        minute += MINUTE_MS
    return tape


def newest_printed(market: VenueMarket, now_ms: int, count: int) -> list[Trade]:
    """Return the newest `count` trades with `time_ms <= now_ms`, oldest first."""
    found: list[Trade] = []
    minute = now_ms - now_ms % MINUTE_MS
    while len(found) < count and minute >= market.listing.listed_ms:
        found[:0] = [t for t in market.trades(minute) if t.time_ms <= now_ms]
        minute -= MINUTE_MS
    return found[-count:]


def assert_aggregates(aggs: list[dict[str, Any]], tape: list[Trade], precision: Precision) -> None:
    """Check ccxt's Binance aggTrades against the trades they aggregate: each one covers
    trade ids `f`..`l` of one price and one taker side, its amount is their summed
    quantity, its time the last one's; together they cover a run of ids without a gap."""
    by_id = {int(t.trade_id): t for t in tape}
    for agg in aggs:
        first, last = agg["info"]["f"], agg["info"]["l"]
        members = [by_id[i] for i in range(first, last + 1)]
        assert agg["id"] == str(first)
        assert {t.price for t in members} == {members[0].price}, agg
        assert {t.buyer_is_maker for t in members} == {members[0].buyer_is_maker}, agg
        assert agg["price"] == number(members[0].price, precision.price), agg
        assert agg["amount"] == number(sum(t.qty for t in members), precision.base), agg
        assert agg["side"] == side(members[0]), agg
        assert agg["timestamp"] == members[-1].time_ms, agg
    ids = [(agg["info"]["f"], agg["info"]["l"]) for agg in aggs]
    assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(ids)), "ids skipped"


def decimal_sum(values: list[float]) -> Decimal:
    """Sum ccxt's floats exactly: each is the shortest repr of the venue's decimal."""
    return sum((Decimal(repr(v)) for v in values), Decimal(0))
