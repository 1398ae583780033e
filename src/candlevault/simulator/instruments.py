"""What the simulator lists: per venue and symbol, the listing time, the precision and
the size of the market.

Known symbols get parameters close to their real listings (Binance BTCUSDT opened
2017-08-17 04:00 UTC); any other symbol gets stable parameters derived from its name,
so `--symbols FOOUSDT` works and means the same market in every process. Tick and
step are chosen so that price × quantity is exact at the quote precision, as on
BTCUSDT (0.01 × 0.00001 at 8 decimals): every quote volume is then an exact sum.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import NamedTuple

from candlevault.domain.decimals import Precision, format_units, parse_units
from candlevault.domain.times import format_time_ms, parse_time_ms
from candlevault.domain.venues import Venue


@dataclass(frozen=True, slots=True)
class Listing:
    """One symbol on one venue. Prices and sizes are units of `precision`."""

    venue: Venue
    symbol: str
    listed_ms: int  # open time of the first 1m candle
    precision: Precision
    tick: int  # price step, in price units
    step: int  # quantity step, in base units
    trades_per_day: int  # at listing; grows by `growth_per_year`
    growth_per_year: float
    qty_per_trade: int  # mean trade size, in steps
    liquidity: float  # 1.0: a trade almost every minute; 0.05: mostly empty minutes
    base: str
    quote: str

    @property
    def exact_quote(self) -> bool:
        """True when every price × quantity is a whole number of quote units."""
        excess = self.precision.price + self.precision.base - self.precision.quote
        return excess <= 0 or (self.tick * self.step) % (10**excess) == 0


@dataclass(frozen=True, slots=True)
class PathSpec:
    """The price path a symbol follows on every venue (arbitrage keeps venues together)."""

    symbol: str
    origin_ms: int  # 00:00 UTC of the earliest listing day
    start_price: float  # in quote currency at origin
    daily_vol: float  # standard deviation of the daily log return


_DAY = 86_400_000
_BINANCE_SPOT = Precision(8, 8, 8)


class _VenueSpec(NamedTuple):
    listed: str  # ISO UTC
    price_dp: int
    base_dp: int
    tick: str
    step: str
    trades_per_day: int
    qty_per_trade: int  # in steps


@dataclass(frozen=True, slots=True)
class _Known:
    start: str
    price: float
    vol: float
    base: str
    quote: str
    venues: dict[Venue, _VenueSpec]
    liquidity: float = 1.0


_KNOWN: dict[str, _Known] = {
    "BTCUSDT": _Known(
        "2017-08-17T04:00",
        4261.48,
        0.035,
        "BTC",
        "USDT",
        {
            Venue.BINANCE: _VenueSpec("2017-08-17T04:00", 8, 8, "0.01", "0.00001", 40_000, 3000),
            Venue.BINANCE_USDM: _VenueSpec("2019-09-08T17:57", 2, 3, "0.10", "0.001", 60_000, 40),
            Venue.BYBIT_SPOT: _VenueSpec(
                "2021-06-30T10:00", 2, 6, "0.01", "0.000001", 30_000, 20_000
            ),
            Venue.BYBIT_LINEAR: _VenueSpec("2020-03-25T10:36", 1, 3, "0.1", "0.001", 50_000, 30),
        },
    ),
    "ETHUSDT": _Known(
        "2017-08-17T04:00",
        301.13,
        0.045,
        "ETH",
        "USDT",
        {
            Venue.BINANCE: _VenueSpec("2017-08-17T04:00", 8, 8, "0.01", "0.0001", 25_000, 200),
            Venue.BINANCE_USDM: _VenueSpec("2019-11-27T07:00", 2, 3, "0.01", "0.001", 40_000, 800),
            Venue.BYBIT_SPOT: _VenueSpec(
                "2021-07-05T12:00", 2, 5, "0.01", "0.00001", 20_000, 40_000
            ),
            Venue.BYBIT_LINEAR: _VenueSpec("2020-10-21T11:00", 2, 2, "0.01", "0.01", 30_000, 50),
        },
    ),
    "SOLUSDT": _Known(
        "2020-08-11T06:00",
        2.85,
        0.06,
        "SOL",
        "USDT",
        {
            Venue.BINANCE: _VenueSpec("2020-08-11T06:00", 8, 8, "0.01", "0.001", 20_000, 5000),
            Venue.BINANCE_USDM: _VenueSpec("2020-09-14T09:00", 4, 0, "0.0100", "1", 20_000, 3),
            Venue.BYBIT_SPOT: _VenueSpec("2021-07-05T12:00", 2, 3, "0.01", "0.001", 10_000, 5000),
            Venue.BYBIT_LINEAR: _VenueSpec("2021-06-14T08:00", 3, 1, "0.010", "0.1", 20_000, 30),
        },
    ),
    "NEOETH": _Known(
        "2017-09-28T09:00",
        0.1138,
        0.05,
        "NEO",
        "ETH",
        {Venue.BINANCE: _VenueSpec("2017-09-28T09:00", 8, 8, "0.000001", "0.01", 900, 500)},
        liquidity=0.08,
    ),
}

DEFAULT_SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "NEOETH")
"""The default market: three liquid USDT pairs and an illiquid one (many empty minutes)."""


def path_spec(symbol: str) -> PathSpec:
    """Return the price path of a symbol (known, or derived from its name)."""
    known = _KNOWN.get(symbol)
    if known is not None:
        origin = parse_time_ms(known.start)
        return PathSpec(symbol, origin - origin % _DAY, known.price, known.vol)
    h = _name_hash(symbol)
    origin = parse_time_ms("2019-01-01") + (h % 1000) * _DAY
    price = 10 ** ((h >> 12) % 600 / 100 - 2)  # 0.01 .. 10_000
    return PathSpec(symbol, origin, round(price, 6), 0.03 + (h >> 24) % 50 / 1000)


def listing(venue: Venue, symbol: str) -> Listing | None:
    """Return the listing of `symbol` on `venue`, or None if that venue does not list it."""
    known = _KNOWN.get(symbol)
    if known is not None:
        spec = known.venues.get(venue)
        if spec is None:
            return None
        return _make(venue, symbol, known.base, known.quote, spec, known.liquidity)
    path = path_spec(symbol)
    h = _name_hash(f"{venue.value}:{symbol}")
    base, quote = (symbol[:-4], "USDT") if symbol.endswith("USDT") else (symbol[:-3], symbol[-3:])
    # about five significant digits, as exchanges set ticks
    price_dp = max(0, min(8, 5 - math.floor(math.log10(path.start_price))))
    base_dp = 8 - price_dp if venue is Venue.BINANCE else min(6, 8 - price_dp)
    spec = _VenueSpec(
        listed=format_time_ms(path.origin_ms + (h % 48) * 1_800_000),
        price_dp=price_dp,
        base_dp=base_dp,
        tick=format_units(1, price_dp),
        step=format_units(1, base_dp),
        trades_per_day=1_000 + h % 30_000,
        qty_per_trade=1 + (h >> 8) % 500,
    )
    return _make(venue, symbol, base or symbol, quote, spec, (0.05, 0.5, 1.0)[h % 3])


def _make(
    venue: Venue, symbol: str, base: str, quote: str, spec: _VenueSpec, liquidity: float
) -> Listing:
    if venue is Venue.BINANCE:
        precision = _BINANCE_SPOT
    else:  # contract precision; Bybit writes without trailing zeros
        fixed = venue.exchange == "binance"
        precision = Precision(spec.price_dp, spec.base_dp, spec.price_dp + spec.base_dp, fixed)
    listed_ms = parse_time_ms(spec.listed)
    return Listing(
        venue=venue,
        symbol=symbol,
        listed_ms=listed_ms - listed_ms % 60_000,
        precision=precision,
        tick=parse_units(spec.tick, precision.price),
        step=parse_units(spec.step, precision.base),
        trades_per_day=spec.trades_per_day,
        growth_per_year=1.6,
        qty_per_trade=spec.qty_per_trade,
        liquidity=liquidity,
        base=base,
        quote=quote,
    )


def _name_hash(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
