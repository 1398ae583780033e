"""The WebSocket side of `candlevault serve`: per venue, a pool of stream connections
feeding one `LiveCandles`.

Each connection's `StreamSupervisor` is the feed its symbols are tracked on, so a drop
repairs only that connection's symbols; `LiveCandles` is handed the two things it
needs from the service: REST repairs (`repair`, the runtime's planner-driven fill) and,
on Binance, the backfill of a (re)started minute by aggTrades (`backfill`), counted in
the service's exchange requests as "backfill". A feed found losing trades while
connected is reconnected (`on_silent`).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from typing import Any

import aiohttp
import msgspec

from candlevault.config import Settings
from candlevault.domain.clock import Clock
from candlevault.domain.decimals import Precision
from candlevault.domain.trades import Trade
from candlevault.domain.venues import Venue
from candlevault.exchanges.binance.rest import BinanceRest
from candlevault.exchanges.ports import SymbolInfo
from candlevault.ingest.writer import Ingestor
from candlevault.realtime.live import Feed, LiveCandles
from candlevault.realtime.pool import MAX_STREAMS, VenueStreams
from candlevault.realtime.repairs import Repair
from candlevault.realtime.supervisor import StreamSupervisor
from candlevault.service.stats import ServiceStats
from candlevault.service.venues import Venues

Spawn = Callable[[Coroutine[Any, Any, None]], None]
BACKFILL_REACH_MS = 60_000  # trades up to a minute past the exchange clock's now


class Streams:
    """The service's stream pools, one per venue, and the `LiveCandles` they feed."""

    def __init__(
        self,
        settings: Settings,
        session: aiohttp.ClientSession,
        venues: Venues,
        ingestor: Ingestor,
        clock_of: Callable[[Venue], Clock],
        repair: Repair,
        stats: ServiceStats,
        spawn: Spawn,
    ) -> None:
        self.settings = settings
        self.session = session
        self.venues = venues
        self.ingestor = ingestor
        self.stats = stats
        self.spawn = spawn
        self.clock_of = clock_of
        self.live = LiveCandles(
            ingestor,
            clock_of,
            repair,
            backfill=self.backfill,
            on_silent=self.on_silent,
            grace_ms=round(settings.stream_grace_s * 1000),
        )
        self.pools: dict[Venue, VenueStreams] = {}

    async def start(
        self, venue: Venue, listed: Mapping[str, SymbolInfo], symbols: list[str]
    ) -> None:
        """Stream `symbols` of `venue` (those listed), over as many connections as the
        venue's per-connection limit needs."""
        infos = {s: listed[s] for s in symbols if s in listed}
        per_symbol = 2 if self.settings.stream_klines else 1
        pool = VenueStreams(
            venue,
            MAX_STREAMS[venue] // per_symbol,
            lambda chosen: self._supervisor(venue, chosen),
            self.spawn,
        )
        for supervisor in pool.plan({s: info.precision for s, info in infos.items()}):
            for symbol in supervisor.symbols:
                inception = (await self.ingestor.coverage(venue, symbol)).inception_ms
                self.live.track(venue, infos[symbol], inception, feed=supervisor)
        self.pools[venue] = pool
        pool.start()

    async def add(self, venue: Venue, info: SymbolInfo) -> None:
        """Stream one more symbol of a venue already streaming."""
        pool = self.pools.get(venue)
        if pool is None:
            return
        inception = (await self.ingestor.coverage(venue, info.symbol)).inception_ms
        supervisor = await pool.subscribe(info.symbol, info.precision)
        self.live.track(venue, info, inception, feed=supervisor)

    async def remove(self, venue: Venue, symbol: str) -> None:
        """Stop streaming `symbol` (its history stays)."""
        self.live.untrack(venue, symbol)
        pool = self.pools.get(venue)
        if pool is not None:
            await pool.unsubscribe(symbol)

    def health(self, venue: Venue) -> dict[str, object]:
        """The venue's connections together, and the builders' minute counts."""
        pool = self.pools.get(venue)
        if pool is None:
            return {"state": "starting"}
        health: dict[str, object] = msgspec.to_builtins(pool.health())
        up = [self.live.is_up(s) for s in pool.supervisors]
        health["state"] = "up" if up and all(up) else "down"
        health["connections"] = len(pool.supervisors)
        health.update(self.live.health())
        return health

    async def backfill(
        self, venue: Venue, info: SymbolInfo, from_ms: int, until_id: int | None
    ) -> list[Trade]:
        """The aggTrades of `info.symbol` from `from_ms` (to `until_id`, else to now)."""
        link = await self.venues.link(venue)
        client = link.client
        if not isinstance(client, BinanceRest):
            return []
        path = client.agg_trades_path
        counts = client.http.counts
        requests, weight = counts.requests.get(path, 0), counts.weight.get(path, 0)
        try:
            return await client.agg_trades_between(
                info.symbol,
                info.precision,
                start_ms=from_ms,
                until_id=until_id,
                until_ms=link.clock.now_ms() + BACKFILL_REACH_MS,
            )
        finally:
            requests = counts.requests.get(path, 0) - requests
            weight = counts.weight.get(path, 0) - weight
            if requests:
                now = link.clock.now_ms()
                self.stats.exchange_request(
                    venue.value, info.symbol, "backfill", requests, weight, now
                )

    def on_silent(self, feed: Feed) -> None:
        """A feed lost trades while connected: reconnect it (the gap is repaired)."""
        if isinstance(feed, StreamSupervisor):
            self.spawn(feed.reconnect())

    def _supervisor(self, venue: Venue, symbols: dict[str, Precision]) -> StreamSupervisor:
        """One connection's supervisor, itself the feed its symbols are tracked on."""
        live = self.live
        holder: list[StreamSupervisor] = []

        def on_alive(event_ms: int) -> None:
            feed = holder[0]
            if not live.is_up(feed):
                live.connected(feed, event_ms)
            live.on_alive(feed, event_ms)

        supervisor = StreamSupervisor(
            venue,
            self._url(venue),
            symbols,
            session=self.session,
            on_trades=lambda symbol, trades: live.on_trades(venue, symbol, trades),
            on_alive=on_alive,
            on_gap=lambda start, end: live.gap(holder[0], start, end),
            on_klines=(
                (lambda symbol, candles: live.on_klines(venue, symbol, candles))
                if self.settings.stream_klines
                else None
            ),
            silence_s=self.settings.stream_silence_s,
        )
        holder.append(supervisor)
        return supervisor

    def _url(self, venue: Venue) -> str:
        settings = self.settings
        return {
            Venue.BINANCE: settings.binance_ws_url,
            Venue.BINANCE_USDM: settings.binance_usdm_ws_url,
            Venue.BYBIT_SPOT: settings.bybit_spot_ws_url,
            Venue.BYBIT_LINEAR: settings.bybit_linear_ws_url,
        }[venue]
