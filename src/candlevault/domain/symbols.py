"""Symbols and venue-qualified instruments, validated before they reach a key or a path.

A symbol becomes part of storage keys, Redis keys and file names, so only
`[A-Z0-9_-]{1,32}` passes: enough for dated contracts (`BTCUSDT_250328`,
`BTCUSDT-14AUG26`), nothing that could escape a path or a key layout.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from candlevault.domain.errors import BadValue
from candlevault.domain.venues import Venue, parse_venue

_SYMBOL = re.compile(r"[A-Z0-9_-]{1,32}")


def parse_symbol(text: str) -> str:
    """Return the symbol upper-cased, or raise BadValue if it is not `[A-Z0-9_-]{1,32}`."""
    symbol = text.strip().upper() if isinstance(text, str) else ""
    if not _SYMBOL.fullmatch(symbol):
        raise BadValue("symbol", text, "expected 1 to 32 of A-Z, 0-9, '_' or '-'")
    return symbol


class Instrument(NamedTuple):
    """A symbol on a venue: the unit that history, streams and leases belong to."""

    venue: Venue
    symbol: str

    def __str__(self) -> str:
        return f"{self.venue.value}:{self.symbol}"


def parse_instrument(text: str, default_venue: Venue) -> Instrument:
    """Parse 'BTCUSDT' or a venue-qualified 'binance-usdm:BTCUSDT'."""
    venue_text, sep, symbol_text = text.strip().rpartition(":")
    venue = parse_venue(venue_text) if sep else default_venue
    return Instrument(venue, parse_symbol(symbol_text))
