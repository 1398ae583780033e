"""The simulator's ledger of what it was asked: `GET /_sim/stats`, `POST /_sim/stats/reset`.

Benchmarks and tests count exactly what candlevault requested, so the shape is fixed:

    {"venues": {"binance": {"requests": {"/api/v3/klines": 12},
                            "weight": 24, "candles": 12000,
                            "status": {"200": 12, "429": 0, "418": 0}},
                "binance-usdm": {...}, "bybit-spot": {...}, "bybit-linear": {...},
                "archive": {...}},
     "ws": {}}

All five venue keys are always present, and each venue's status counts always hold
"200", "429" and "418" (then any other status seen, in numeric order), so a reader can
index them without checking. Archive requests are counted per directory of the
data.binance.vision tree rather than per file (`/data/spot/daily/klines/*.zip`,
`.../*.CHECKSUM` apart), and their candles are the rows of the files served. "ws" is
empty here; the server fills it with the WebSocket hub's counts per venue (`WsStats`:
connections, open, messages, received, pings, pong_timeouts, disconnects, the limits'
rate_limited and refused, and the faults' dropped, duplicated, reordered, silenced).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TypedDict

from candlevault.domain.venues import Venue

ARCHIVE = "archive"
VENUES: tuple[str, ...] = (*(v.value for v in Venue), ARCHIVE)
ALWAYS_SHOWN = (200, 429, 418)
_PERIODS = frozenset({"daily", "monthly"})


class VenueSnapshot(TypedDict):
    """One venue's counts in `GET /_sim/stats`."""

    requests: dict[str, int]
    weight: int
    candles: int
    status: dict[str, int]


class StatsSnapshot(TypedDict):
    """The body of `GET /_sim/stats`."""

    venues: dict[str, VenueSnapshot]
    ws: dict[str, object]


@dataclass(slots=True)
class _VenueStats:
    requests: Counter[str] = field(default_factory=Counter)
    status: Counter[int] = field(default_factory=Counter)
    weight: int = 0
    candles: int = 0

    def snapshot(self) -> VenueSnapshot:
        shown = [*ALWAYS_SHOWN, *sorted(s for s in self.status if s not in ALWAYS_SHOWN)]
        return {
            "requests": dict(sorted(self.requests.items())),
            "weight": self.weight,
            "candles": self.candles,
            "status": {str(s): self.status[s] for s in shown},
        }


class SimStats:
    """Counts requests, weight, candles served and statuses per venue."""

    def __init__(self) -> None:
        self._venues = {name: _VenueStats() for name in VENUES}

    def record(self, venue: str, path: str, status: int, weight: int = 0, candles: int = 0) -> None:
        """Count one reply of `venue` to `path` with `status`, its weight and candle count."""
        stats = self._venues.get(venue)
        if stats is None:
            raise ValueError(f"unknown venue {venue!r}; expected one of {', '.join(VENUES)}")
        stats.requests[archive_path_key(path) if venue == ARCHIVE else path] += 1
        stats.status[status] += 1
        stats.weight += weight
        stats.candles += candles

    def snapshot(self) -> StatsSnapshot:
        """Return the ledger as the JSON-ready dict that `GET /_sim/stats` sends."""
        return {
            "venues": {name: stats.snapshot() for name, stats in self._venues.items()},
            "ws": {},
        }

    def reset(self) -> None:
        """Clear every count."""
        self._venues = {name: _VenueStats() for name in VENUES}


def archive_path_key(path: str) -> str:
    """Return the ledger key of an archive path: its directory of files plus the file kind.

    '/data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2024-01-15.zip' counts under
    '/data/spot/daily/klines/*.zip'; its '.zip.CHECKSUM' under '.../klines/*.CHECKSUM'.
    Paths outside the layout are counted as they are.
    """
    parts = path.split("/")
    for i, part in enumerate(parts[:-1]):
        if part in _PERIODS and i + 1 < len(parts) - 1:
            name = parts[-1]
            kind = "*." + name.rsplit(".", 1)[-1] if "." in name else "*"
            return "/".join([*parts[: i + 2], kind])
    return path
