"""Bootstrap is venue-agnostic: USD-M and Bybit spot and linear histories come out equal
to the market exactly, absent fields absent, and a second run plans nothing."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from candlevault.bootstrap.runner import AnomalyLog, Bootstrap
from candlevault.domain.timeframes import M1
from candlevault.domain.venues import Venue
from candlevault.exchanges.bybit.rest import bybit_client
from candlevault.exchanges.ports import ExchangeClient
from candlevault.ingest.writer import Ingestor
from tests.integration.bootstrap.test_bootstrap import LISTED_MS, store_at
from tests.integration.exchanges.venues import START_MS, Sim, binance_client, running_sim


def client_for(sim: Sim, venue: Venue) -> ExchangeClient:
    if venue is Venue.BINANCE_USDM:
        return binance_client(sim, venue)
    return bybit_client(sim.server.url, venue, sim.session, sim.clock)


@pytest.mark.parametrize("venue", [Venue.BINANCE_USDM, Venue.BYBIT_SPOT, Venue.BYBIT_LINEAR])
async def test_each_venue_bootstraps_to_the_market_exactly(venue: Venue, tmp_path: Path) -> None:
    async with running_sim(listed=(("ETHUSDT", LISTED_MS),)) as sim, store_at(tmp_path) as store:
        ingestor = Ingestor(store)
        log = AnomalyLog(tmp_path / "a.jsonl")
        done = await Bootstrap(client_for(sim, venue), ingestor, sim.clock, log).run("ETHUSDT")
        again = await Bootstrap(client_for(sim, venue), ingestor, sim.clock, log).run("ETHUSDT")
        stored = await store.read(venue, "ETHUSDT", M1)
        market = sim.world.market(venue, "ETHUSDT")
        assert market is not None
        expected = [c for c in market.candles(LISTED_MS, START_MS) if c.close_time_ms < START_MS]
    if venue is not Venue.BINANCE_USDM:  # Bybit publishes no trade count or taker volumes
        absent = {"trades": None, "taker_buy_base": None, "taker_buy_quote": None}
        expected = [msgspec.structs.replace(c, **absent) for c in expected]
    assert list(stored.candles()) == expected
    assert done.candles == len(expected)
    assert again.planned_requests == 0
    if venue is not Venue.BINANCE_USDM:
        assert stored.trades is None  # Bybit publishes no trade count: absent, not zeros
