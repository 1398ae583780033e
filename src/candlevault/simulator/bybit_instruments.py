"""Bybit v5 instruments as `/v5/market/instruments-info` lists them, from the simulator's listings.

The shapes are those of the recorded mainnet replies (../shared/fixtures/bybit/rest/,
2026-08-09): the same keys in the same order and the same JSON types. Spot writes its
decimals without trailing zeros ("0.000001", "230"); linear writes its filters at the
contract's full scale ("0.10", "1500.000"), as recorded. Values the simulator has no
model for (order size caps, leverage, funding bounds) are fixed, plausible constants;
tick, step, precisions, coins and the launch time come from the listing.
"""

from __future__ import annotations

import uuid

from candlevault.domain.decimals import format_units
from candlevault.simulator.instruments import Listing

_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "candlevault-simulator/bybit/symbolId")


def symbol_id(listing: Listing) -> int:
    """Return a stable `symbolId` for a listing (Bybit numbers its instruments)."""
    return 1 + int.from_bytes(uuid.uuid5(_NAMESPACE, listing.symbol).bytes[:4]) % 5000


def spot_instrument(listing: Listing) -> dict[str, object]:
    """Return a spot instrument with the keys, in the order, of the recorded
    `instruments-info?category=spot` (2026-08-09): decimals without trailing zeros."""
    p = listing.precision
    step = listing.step

    def base(steps: int) -> str:
        return format_units(step * steps, p.base, False)

    return {
        "symbolId": symbol_id(listing),
        "symbol": listing.symbol,
        "baseCoin": listing.base,
        "quoteCoin": listing.quote,
        "innovation": "0",
        "status": "Trading",
        "marginTrading": "utaOnly",
        "stTag": "0",
        "lotSizeFilter": {
            "basePrecision": base(1),
            "quotePrecision": format_units(1, p.quote, False),
            "minOrderQty": base(1),
            "maxOrderQty": base(200_000_000),
            "minOrderAmt": "5",
            "maxOrderAmt": "8000000",
            "maxLimitOrderQty": base(200_000_000),
            "maxMarketOrderQty": base(100_000_000),
            "postOnlyMaxLimitOrderSize": base(1_000_000_000),  # 5x maxLimitOrderQty
        },
        "priceFilter": {"tickSize": format_units(listing.tick, p.price, False)},
        "riskParameters": {"priceLimitRatioX": "0.005", "priceLimitRatioY": "0.01"},
        "symbolType": "",
        "xstockMultiplier": "1",
    }


def linear_instrument(listing: Listing) -> dict[str, object]:
    """Return a USDT perpetual with the keys, in the order, of the recorded
    `instruments-info?category=linear` (2026-08-09): filters at the contract's full
    scale ("0.10", "1500.000"), `launchTime` the listing, `fundingInterval` in minutes."""
    p = listing.precision

    def price(ticks: int) -> str:
        return format_units(listing.tick * ticks, p.price)

    def qty(steps: int) -> str:
        return format_units(listing.step * steps, p.base)

    return {
        "symbol": listing.symbol,
        "contractType": "LinearPerpetual",
        "status": "Trading",
        "baseCoin": listing.base,
        "quoteCoin": listing.quote,
        "launchTime": str(listing.listed_ms),
        "deliveryTime": "0",
        "deliveryFeeRate": "",
        "priceScale": str(p.price),
        "leverageFilter": {"minLeverage": "1", "maxLeverage": "100.00", "leverageStep": "0.01"},
        "priceFilter": {"minPrice": price(1), "maxPrice": price(19_999_998), "tickSize": price(1)},
        "lotSizeFilter": {
            "maxOrderQty": qty(1_500_000),
            "minOrderQty": qty(1),
            "qtyStep": qty(1),
            "postOnlyMaxOrderQty": qty(1_500_000),
            "maxMktOrderQty": qty(150_000),
            "minNotionalValue": "5",
        },
        "unifiedMarginTrade": True,
        "fundingInterval": 480,
        "settleCoin": listing.quote,
        "copyTrading": "both",
        "upperFundingRate": "0.005",
        "lowerFundingRate": "-0.005",
        "isPreListing": False,
        "preListingInfo": None,
        "riskParameters": {"priceLimitRatioX": "0.01", "priceLimitRatioY": "0.02"},
        "displayName": "",
        "symbolType": "",
        "forbidUplWithdrawal": False,
        "symbolId": symbol_id(listing),
    }
