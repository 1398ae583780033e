"""Engines chosen in one place: the store, a venue's client stack and the exchange clock,
built from the settings (ARCHITECTURE.md: "ports at each boundary ... chosen from
settings in one place, never imported by the layers above"). The CLI and, later, the
app's lifespan call these; nothing else reads the settings.
"""

from __future__ import annotations

import aiohttp

from candlevault.config import Settings
from candlevault.domain.clock import AnchoredClock, Clock
from candlevault.domain.venues import Venue
from candlevault.exchanges.binance.rest import BinanceRest
from candlevault.exchanges.bybit.rest import BybitRest, bybit_client
from candlevault.exchanges.clock import sim_clock, venue_clock
from candlevault.exchanges.http import VenueHttp
from candlevault.exchanges.ports import ExchangeClient
from candlevault.exchanges.ratelimit import (
    BINANCE_SPOT_LIMIT,
    BINANCE_USDM_LIMIT,
    USED_WEIGHT_HEADER,
    RollingLimiter,
    WeightLimiter,
)
from candlevault.storage.ports import CandleStore


async def open_store(settings: Settings, *, readonly: bool = False) -> CandleStore:
    """Open the warm store: MongoDB when configured, else SQLite under the data dir
    (writable: taking the data dir's writer lock; `readonly`: beside a writer)."""
    if settings.mongo_url:
        from candlevault.storage.mongo import MongoStore

        return await MongoStore.open(settings.mongo_url)
    from candlevault.storage.sqlite import FILE_NAME, SqliteStore

    return await SqliteStore.open(settings.data_dir / FILE_NAME, readonly=readonly)


class ClientStacks:
    """Every venue's client, built once, with one limiter per budget: Binance spot and
    USD-M have a weight budget each (their own hosts); Bybit's 600 requests per 5 s are
    one budget per IP for spot and linear together."""

    def __init__(self, settings: Settings, session: aiohttp.ClientSession) -> None:
        self.settings = settings
        self.session = session
        self._bybit: RollingLimiter | None = None
        self.clients: dict[Venue, BinanceRest | BybitRest] = {}

    def client(self, venue: Venue, clock: Clock) -> ExchangeClient:
        """Return `venue`'s client, built on first use: its limiter, HTTP and REST client."""
        found = self.clients.get(venue)
        if found is None:
            found = self.clients[venue] = self._build(venue, clock)
        return found

    def _build(self, venue: Venue, clock: Clock) -> BinanceRest | BybitRest:
        settings = self.settings
        if venue in (Venue.BINANCE, Venue.BINANCE_USDM):
            spot = venue is Venue.BINANCE
            url = settings.binance_rest_url if spot else settings.binance_usdm_rest_url
            limiter = WeightLimiter(BINANCE_SPOT_LIMIT if spot else BINANCE_USDM_LIMIT)
            http = VenueHttp(
                self.session, url, limiter, venue.value, weight_header=USED_WEIGHT_HEADER
            )
            return BinanceRest(venue, http, clock, on_limits=limiter.set_limit)
        if self._bybit is None:
            self._bybit = RollingLimiter()
        return bybit_client(settings.bybit_rest_url, venue, self.session, clock, self._bybit)


async def exchange_clock(
    settings: Settings, venue: Venue, session: aiohttp.ClientSession
) -> AnchoredClock:
    """The exchange's clock: the simulator's when `clock_url` is set, else the venue's."""
    if settings.clock_url:
        return await sim_clock(session, settings.clock_url)
    probe = ClientStacks(settings, session)._build(venue, AnchoredClock(0, 0.0, lambda: 0.0))
    return await venue_clock(probe)
