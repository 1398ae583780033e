"""Binance's request validation: query parameters checked and refused in Binance's words.

Every refusal is HTTP 400 with `{"code": ..., "msg": ...}`, worded as Binance sends it.
Sources, checked for each wording:

- binance/binance-spot-api-docs `errors.md` (2025-01-09), the code list: -1100
  "Illegal characters found in parameter '%s'; legal range is '%s'.", -1102 "Mandatory
  parameter '%s' was not sent, was empty/null, or malformed.", -1120 "Invalid
  interval.", -1121 "Invalid symbol.", -1127 "More than %s hours between startTime and
  endTime.", -1128 "Combination of optional parameters invalid.", -1130 "Data sent for
  parameter '%s' is not valid.", -1151 "Symbol is present multiple times in the list.".
  ccxt's binance.py `exceptions` map (ccxt 4.5.90) quotes -1120, -1121, -1127 and -1128
  the same way.
- The filled-in forms as live servers send them: "Illegal characters found in parameter
  'startTime'; legal range is '^[0-9]{1,20}$'." (a user's note of a live /api/v3/klines
  reply), the same for 'limit' (-1 sent) and 'fromId' (a table of live api.binance.com
  replies in the tests of a fork of tensaix2j's binacpp C++ client); "Mandatory
  parameter 'symbol' was not sent, ..." and "... 'interval' ..." (the same table);
  the symbol pattern `'^[\\w\\-._&&[^a-z]]{1,50}$'` (python-binance's tests, 2025);
  "Data sent for parameter 'limit' is not valid." for a limit past the maximum (ccxt
  issue #9904, a Binance futures reply; ccxt PR #14498: a limit over the maximum is
  refused, not capped).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from candlevault.domain.venues import Venue
from candlevault.simulator.http import VenueError
from candlevault.simulator.klines import KlineView
from candlevault.simulator.world import SimWorld

DIGITS_RANGE = "^[0-9]{1,20}$"
# Java's class intersection: word characters, '-', '.', but no lower-case letter.
SYMBOL_RANGE = r"^[\w\-._&&[^a-z]]{1,50}$"
SYMBOL_PATTERN = r"[A-Z0-9_\-.]{1,50}"
_DIGITS = re.compile(r"[0-9]{1,20}")
_SYMBOL = re.compile(SYMBOL_PATTERN)

ErrorBody = Mapping[str, int | str]

INVALID_SYMBOL: ErrorBody = {"code": -1121, "msg": "Invalid symbol."}
INVALID_INTERVAL: ErrorBody = {"code": -1120, "msg": "Invalid interval."}
BAD_COMBINATION: ErrorBody = {"code": -1128, "msg": "Combination of optional parameters invalid."}
DUPLICATE_SYMBOLS: ErrorBody = {
    "code": -1151,
    "msg": "Symbol is present multiple times in the list.",
}


def refuse(body: ErrorBody) -> VenueError:
    """Return the 400 reply that carries Binance error `body`."""
    return VenueError(400, dict(body))


def illegal(name: str, legal_range: str) -> VenueError:
    """Return Binance's -1100 refusal of a parameter that does not match its pattern."""
    msg = f"Illegal characters found in parameter '{name}'; legal range is '{legal_range}'."
    return refuse({"code": -1100, "msg": msg})


def not_valid(name: str) -> VenueError:
    """Return Binance's -1130 refusal of a well-formed but unacceptable value."""
    return refuse({"code": -1130, "msg": f"Data sent for parameter '{name}' is not valid."})


def mandatory(query: Mapping[str, str], name: str) -> str:
    """Return a mandatory parameter, or refuse the request (-1102) if it is missing."""
    value = query.get(name)
    if not value:
        msg = f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
        raise refuse({"code": -1102, "msg": msg})
    return value


def symbol_param(query: Mapping[str, str]) -> str:
    """Return the mandatory `symbol`, checked against Binance's pattern."""
    symbol = mandatory(query, "symbol")
    if _SYMBOL.fullmatch(symbol) is None:
        raise illegal("symbol", SYMBOL_RANGE)
    return symbol


def optional_int(query: Mapping[str, str], name: str) -> int | None:
    """Return an optional LONG/INT parameter (ASCII digits only), None if not sent."""
    value = query.get(name)
    if value is None:
        return None
    if _DIGITS.fullmatch(value) is None:
        raise illegal(name, DIGITS_RANGE)
    return int(value)


def limit_param(query: Mapping[str, str], default: int, maximum: int) -> int:
    """Return `limit` (default if not sent); refuse 0 and anything above `maximum`."""
    limit = optional_int(query, "limit")
    if limit is None:
        return default
    if not 1 <= limit <= maximum:
        raise not_valid("limit")
    return limit


def listed_view(world: SimWorld, venue: Venue, symbol: str) -> KlineView:
    """Return the market view of `symbol`, or refuse with -1121 if `venue` does not
    list it at the current sim time (a symbol does not exist before its listing)."""
    view = world.view(venue, symbol)
    if view is None or view.market.listing.listed_ms > world.now_ms():
        raise refuse(INVALID_SYMBOL)
    return view
