"""Response schemas of the API, for the OpenAPI document.

The candle routes write their bodies from prebuilt bytes (`cache.rows`), not through
these models: they describe the shape, they are not on the hot path.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from candlevault.cache.rows import FIELDS


class CandlesBody(BaseModel):
    """Candles of one series, and how complete and from where they came."""

    venue: str = Field(examples=["binance"])
    symbol: str = Field(examples=["BTCUSDT"])
    timeframe: str = Field(examples=["1m"])
    start_time: int | None = Field(description="Open time (epoch ms) of the first bucket asked")
    end_time: int | None = Field(description="Open time (epoch ms) of the last bucket asked")
    count: int = Field(description="Rows in `candles`")
    layers: list[str] = Field(
        description="Layers that answered, in order: hot, warm, forming, exchange",
        examples=[["hot", "forming"]],
    )
    complete: bool = Field(description="Every minute of the window is present or confirmed empty")
    missing: list[list[int]] = Field(
        description="Minute spans [start_ms, end_ms) neither held nor known empty"
    )
    empty: list[list[int]] = Field(
        description="Minute spans [start_ms, end_ms) the exchange confirmed empty (outages)"
    )
    open_candle: bool = Field(description="The last row is the open (forming) candle")
    warnings: list[str] = Field(description="Why a layer could not answer (exchange down...)")
    columns: list[str] = Field(default=list(FIELDS), description="Names of the row fields")
    candles: list[list[int | str | None]] = Field(
        description="Rows in `columns` order: times and trade count as integers, prices and "
        "volumes as decimal strings exactly as the exchange wrote them; null where the venue "
        "does not publish a field (Bybit: trades, taker-buy volumes)",
        examples=[
            [
                [
                    1700000000000,
                    "37000.01000000",
                    "37010.00000000",
                    "36990.50000000",
                    "37005.00000000",
                    "12.34500000",
                    1700000059999,
                    "456789.01234567",
                    1234,
                    "6.10000000",
                    "225710.00000000",
                ]
            ]
        ],
    )


class ErrorBody(BaseModel):
    """An error: what was wrong, in a sentence."""

    detail: str


class BinanceErrorBody(BaseModel):
    """An error of the Binance-compatible routes, in Binance's words and codes."""

    code: int = Field(examples=[-1121])
    msg: str = Field(examples=["Invalid symbol."])
