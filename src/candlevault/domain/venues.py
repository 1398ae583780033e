"""The four venues candlevault speaks to, named the same everywhere (CLI, API, storage)."""

from __future__ import annotations

from enum import StrEnum

from candlevault.domain.errors import BadValue


class Venue(StrEnum):
    """A market on an exchange: the value is the public name."""

    BINANCE = "binance"
    BINANCE_USDM = "binance-usdm"
    BYBIT_SPOT = "bybit-spot"
    BYBIT_LINEAR = "bybit-linear"

    @property
    def exchange(self) -> str:
        """Return the exchange behind the venue: 'binance' or 'bybit'."""
        return "bybit" if self.value.startswith("bybit") else "binance"


_BY_NAME = {v.value: v for v in Venue}


def parse_venue(text: str) -> Venue:
    """Parse a venue name such as 'binance-usdm' (case-insensitive)."""
    venue = _BY_NAME.get(text.strip().lower()) if isinstance(text, str) else None
    if venue is None:
        raise BadValue("venue", text, f"expected one of {', '.join(_BY_NAME)}")
    return venue
