"""The simulated world: one clock, the markets of every venue, limits, faults, the ledger.

Everything the HTTP handlers need hangs off one `SimWorld`, built from a `SimConfig`
(no I/O at construction). Markets are created lazily per (venue, symbol), sharing one
`PricePath` per symbol so the four venues of a symbol move together.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from candlevault.aggregation import Outage
from candlevault.domain.times import parse_time_ms
from candlevault.domain.venues import Venue
from candlevault.simulator.clock import SimClock
from candlevault.simulator.faults import FaultSettings, FaultSwitchboard
from candlevault.simulator.instruments import DEFAULT_SYMBOLS, Listing, listing, path_spec
from candlevault.simulator.klines import KlineView
from candlevault.simulator.limits import BinanceLimiter, BybitLimiter
from candlevault.simulator.market import VenueMarket
from candlevault.simulator.path import PricePath
from candlevault.simulator.stats import SimStats

BINANCE_OUTAGE_2018: Outage = (
    parse_time_ms("2018-02-08T04:00Z"),
    parse_time_ms("2018-02-09T08:00Z"),
)
"""Binance's maintenance outage of 8-9 February 2018, as the recorded 4h series shows it."""


@dataclass(frozen=True)
class SimConfig:
    """Everything that makes one simulated world; the defaults mirror the real venues."""

    seed: int = 1
    symbols: tuple[str, ...] = DEFAULT_SYMBOLS
    start_ms: int | None = None  # sim time at start; None: the wall clock's now
    speed: float = 1.0
    binance_weight_per_minute: int = 6000
    usdm_weight_per_minute: int = 2400
    bybit_requests_per_5s: int = 600
    bybit_lockout_s: float = 600.0
    ban_base_s: float = 120.0
    outages: tuple[Outage, ...] = (BINANCE_OUTAGE_2018,)  # Binance venues only
    listed: tuple[tuple[str, int], ...] = ()  # (symbol, first 1m open) overrides, all venues
    archive_daily_lag_s: float = 6 * 3600.0
    archive_monthly_lag_s: float = 7 * 86_400.0  # first half of the next month
    faults: FaultSettings = field(default_factory=FaultSettings)


class SimWorld:
    """The state behind every simulator endpoint."""

    def __init__(
        self,
        config: SimConfig,
        *,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        start = config.start_ms if config.start_ms is not None else int(wall() * 1000)
        self.clock = SimClock(start, config.speed, monotonic)
        self.stats = SimStats()
        self.faults = FaultSwitchboard(config.faults, config.seed)
        self.binance = BinanceLimiter(config.binance_weight_per_minute, wall, config.ban_base_s)
        self.usdm = BinanceLimiter(config.usdm_weight_per_minute, wall, config.ban_base_s)
        self.bybit = BybitLimiter(
            config.bybit_requests_per_5s, lockout_s=config.bybit_lockout_s, wall=wall
        )
        self._paths: dict[str, PricePath] = {}
        self._views: dict[tuple[Venue, str], KlineView | None] = {}

    def now_ms(self) -> int:
        """Return the sim time (candle time)."""
        return self.clock.now_ms()

    def listings(self, venue: Venue) -> list[Listing]:
        """Return what `venue` lists among the configured symbols."""
        found = (listing(venue, symbol) for symbol in self.config.symbols)
        return [item for item in found if item is not None]

    def view(self, venue: Venue, symbol: str) -> KlineView | None:
        """Return the kline view of `symbol` on `venue`, or None if not listed there."""
        key = (venue, symbol)
        if key not in self._views:
            self._views[key] = self._build_view(venue, symbol)
        return self._views[key]

    def market(self, venue: Venue, symbol: str) -> VenueMarket | None:
        """Return the market of `symbol` on `venue`, or None if not listed there."""
        view = self.view(venue, symbol)
        return view.market if view is not None else None

    def _build_view(self, venue: Venue, symbol: str) -> KlineView | None:
        found = listing(venue, symbol) if symbol in self.config.symbols else None
        if found is None:
            return None
        override = dict(self.config.listed).get(symbol)
        spec = path_spec(symbol)
        if override is not None:
            found = replace(found, listed_ms=override - override % 60_000)
            spec = replace(spec, origin_ms=min(spec.origin_ms, override - override % 86_400_000))
        path = self._paths.get(symbol)
        if path is None:
            path = self._paths[symbol] = PricePath(spec, self.config.seed)
        outages = self.config.outages if venue.exchange == "binance" else ()
        return KlineView(VenueMarket(found, path, self.config.seed, outages))
