"""Each venue's client, clock and symbol catalog, built on first use and then shared.

A service that serves four venues should not ask the three it never uses for their
clocks at start, and one whose venue is unreachable at start must still serve what it
holds; so each venue is brought up on first use, once (concurrent first uses share one
attempt), and a failure is retried on the next use rather than remembered.

The catalog (exchange info: every listed symbol, its precision, and for Binance the
reply as sent, which candlevault re-serves at its Binance-compatible `exchangeInfo`) is
also written to `<data dir>/catalog/<venue>.json`: when the venue cannot be reached, the
last copy serves, so a restart during an exchange outage still knows every symbol's
decimals. It is fetched again after `refresh_s`.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import msgspec

from candlevault.domain.clock import AnchoredClock, Clock, LiveClock
from candlevault.domain.errors import ExchangeUnavailable, NotFound
from candlevault.domain.venues import Venue
from candlevault.exchanges.ports import ExchangeClient, SymbolInfo

log = logging.getLogger(__name__)
RETRY_S = 60.0  # how soon an unreachable venue's exchange info is asked for again
ClockSource = Callable[[Venue], Awaitable[AnchoredClock]]
ClientSource = Callable[[Venue, Clock], ExchangeClient]


class Catalog(msgspec.Struct):
    """A venue's listed symbols, and its exchange-info reply as sent (Binance only)."""

    venue: Venue
    symbols: dict[str, SymbolInfo]
    fetched_s: float
    raw: bytes | None = None


class _CatalogFile(msgspec.Struct):
    venue: Venue
    symbols: dict[str, SymbolInfo]
    fetched_s: float
    raw_b64: str | None = None


class VenueLink(msgspec.Struct):
    """A venue brought up: its exchange clock (re-anchored by `Venues.resync`) and
    its client."""

    clock: LiveClock
    client: ExchangeClient


class Venues:
    """Clients, clocks and catalogs of every venue, each built once on first use."""

    def __init__(
        self,
        clock_of: ClockSource,
        client_of: ClientSource,
        data_dir: Path,
        *,
        refresh_s: float = 3600.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock_of = clock_of
        self._client_of = client_of
        self._dir = data_dir / "catalog"
        self._refresh_s = refresh_s
        self._monotonic = monotonic
        self._links: dict[Venue, VenueLink] = {}
        self._catalogs: dict[Venue, Catalog] = {}
        self._locks: dict[tuple[str, Venue], asyncio.Lock] = {}

    async def link(self, venue: Venue) -> VenueLink:
        """Return the venue's clock and client (built on first use)."""
        found = self._links.get(venue)
        if found is not None:
            return found
        return await self._once_link(venue)

    async def resync(self) -> None:
        """Measure every linked venue's clock again (a drifting local clock, a
        simulator whose time was moved); a venue that does not answer keeps its own."""
        for venue, link in list(self._links.items()):
            try:
                link.clock.current = await self._clock_of(venue)
            except ExchangeUnavailable as e:
                log.warning("%s clock not re-synced: %s", venue.value, e)

    def known_link(self, venue: Venue) -> VenueLink | None:
        """Return the venue's link if it was built already (no I/O)."""
        return self._links.get(venue)

    async def catalog(self, venue: Venue) -> Catalog:
        """Return the venue's catalog: fetched, refreshed when old, else the saved copy."""
        found = self._catalogs.get(venue)
        if found is not None and self._monotonic() - found.fetched_s < self._refresh_s:
            return found
        return await self._once_catalog(venue)

    def known_catalog(self, venue: Venue) -> Catalog | None:
        """Return the catalog in memory, whatever its age (no I/O: the hot path)."""
        return self._catalogs.get(venue)

    async def info(self, venue: Venue, symbol: str) -> SymbolInfo:
        """Return a listed symbol's info; NotFound if the venue does not list it."""
        catalog = self._catalogs.get(venue)
        if catalog is None or symbol not in catalog.symbols:
            catalog = await self.catalog(venue)
        info = catalog.symbols.get(symbol)
        if info is None:
            raise NotFound(f"{venue.value} does not list {symbol}")
        return info

    async def _once_link(self, venue: Venue) -> VenueLink:
        async with self._lock("link", venue):
            found = self._links.get(venue)
            if found is None:
                clock = LiveClock(await self._clock_of(venue))
                found = VenueLink(clock, self._client_of(venue, clock))
                self._links[venue] = found
            return found

    async def _once_catalog(self, venue: Venue) -> Catalog:
        async with self._lock("catalog", venue):
            found = self._catalogs.get(venue)
            if found is not None and self._monotonic() - found.fetched_s < self._refresh_s:
                return found
            try:
                found = await self._fetch(venue)
            except ExchangeUnavailable as e:
                saved = found or await asyncio.to_thread(self._load, venue)
                if saved is None:
                    raise
                log.warning("%s exchange info unavailable (%s): using the saved copy", venue, e)
                # try the venue again in a minute, not after a whole refresh period
                retry_at = self._monotonic() - self._refresh_s + RETRY_S
                found = msgspec.structs.replace(saved, fetched_s=retry_at)
            else:
                await asyncio.to_thread(self._save, found)
            self._catalogs[venue] = found
            return found

    async def _fetch(self, venue: Venue) -> Catalog:
        client = (await self.link(venue)).client
        exchange_info = getattr(client, "exchange_info", None)
        if exchange_info is not None:
            raw, symbols = await exchange_info()
        else:
            raw, symbols = None, await client.symbols()
        return Catalog(venue, symbols, self._monotonic(), raw)

    def _lock(self, what: str, venue: Venue) -> asyncio.Lock:
        return self._locks.setdefault((what, venue), asyncio.Lock())

    def _path(self, venue: Venue) -> Path:
        return self._dir / f"{venue.value}.json"

    def _save(self, catalog: Catalog) -> None:
        raw = None if catalog.raw is None else base64.b64encode(catalog.raw).decode()
        doc = _CatalogFile(catalog.venue, catalog.symbols, catalog.fetched_s, raw)
        self._dir.mkdir(parents=True, exist_ok=True)
        path = self._path(catalog.venue)
        temporary = path.with_suffix(".tmp")
        temporary.write_bytes(msgspec.json.encode(doc))
        temporary.replace(path)  # readers never see half a file

    def _load(self, venue: Venue) -> Catalog | None:
        try:
            doc = msgspec.json.decode(self._path(venue).read_bytes(), type=_CatalogFile)
        except (OSError, msgspec.DecodeError):
            return None
        raw = None if doc.raw_b64 is None else base64.b64decode(doc.raw_b64)
        return Catalog(doc.venue, doc.symbols, doc.fetched_s, raw)
