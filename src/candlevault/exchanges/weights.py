"""What each request costs against its venue's budget: the weight tables, by endpoint.

The limiters (`ratelimit`) spend budgets; this says what a request takes from one, as
Binance documents it and as the simulator charges it, and picks USD-M's cheapest page.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from candlevault.domain.venues import Venue

# Request weights, as documented and as simulator/binance_rest.py charges them. Spot:
# developers.binance.com/docs/binance-spot-api-docs/rest-api/general-endpoints (ping and
# time 1, exchangeInfo 20) and .../market-data-endpoints (klines 2 whatever the limit,
# aggTrades 4, trades 25). USD-M: developers.binance.com/docs/derivatives/
# usds-margined-futures/market-data/rest-api/ (Test-Connectivity, Check-Server-Time,
# Exchange-Information 1; Compressed-Aggregate-Trades-List 20; Kline-Candlestick-Data by
# `limit`: [1, 100) 1, [100, 500) 2, [500, 1000] 5, above 10, at most 1500).
BINANCE_SPOT_WEIGHTS: Final[Mapping[str, int]] = {
    "/api/v3/ping": 1,
    "/api/v3/time": 1,
    "/api/v3/exchangeInfo": 20,
    "/api/v3/klines": 2,
    "/api/v3/aggTrades": 4,
    "/api/v3/trades": 25,
}
BINANCE_USDM_WEIGHTS: Final[Mapping[str, int]] = {
    "/fapi/v1/ping": 1,
    "/fapi/v1/time": 1,
    "/fapi/v1/exchangeInfo": 1,
    "/fapi/v1/aggTrades": 20,
}
USDM_KLINES_PATH: Final = "/fapi/v1/klines"
USDM_KLINES_BANDS: Final = ((99, 1), (499, 2), (1000, 5), (1500, 10))  # (top limit, weight)
USDM_KLINES_DEFAULT_LIMIT: Final = 500  # what the venue uses when `limit` is not sent


def usdm_klines_weight(limit: int | None = None) -> int:
    """Return the weight of a USD-M klines request with `limit` (None: not sent)."""
    n = USDM_KLINES_DEFAULT_LIMIT if limit is None else limit
    for top, weight in USDM_KLINES_BANDS:
        if 1 <= n <= top:
            return weight
    raise ValueError(f"USD-M klines limit must be in [1, {USDM_KLINES_BANDS[-1][0]}], not {n}")


def usdm_klines_limit(wanted: int) -> int:
    """Return the `limit` of the next USD-M klines page that gets `wanted` candles cheapest.

    Per candle, 499 at weight 2 beats 1000 at 5 and 1500 at 10; the last page takes the
    band its remainder falls in, so exactly 1000 candles cost 5 either way, and one
    request beats three.
    """
    if wanted < 1:
        raise ValueError(f"wanted must be >= 1, not {wanted}")

    def cost(page: int) -> tuple[int, int]:  # (total weight, requests)
        full, rest = divmod(wanted, page)
        tail = usdm_klines_weight(rest) if rest else 0
        return full * usdm_klines_weight(page) + tail, full + (rest > 0)

    return min((min(wanted, top) for top, _ in USDM_KLINES_BANDS), key=cost)


def request_weight(venue: Venue, path: str, limit: int | None = None) -> int:
    """Return what one GET of `path` costs against `venue`'s limiter (Bybit: 1 each)."""
    if venue.exchange == "bybit":
        return 1
    if venue is Venue.BINANCE_USDM and path == USDM_KLINES_PATH:
        return usdm_klines_weight(limit)
    table = BINANCE_SPOT_WEIGHTS if venue is Venue.BINANCE else BINANCE_USDM_WEIGHTS
    if path not in table:
        raise ValueError(f"no known weight for {venue.value} {path}")
    return table[path]
