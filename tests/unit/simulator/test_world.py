"""The simulated world's configuration: outages and listings are the user's to set."""

from __future__ import annotations

from candlevault.domain.times import parse_time_ms
from candlevault.domain.venues import Venue
from candlevault.simulator.world import BINANCE_OUTAGE_2018, SimConfig, SimWorld

LO, HI = BINANCE_OUTAGE_2018


def _minutes(world: SimWorld, venue: Venue, lo: int, hi: int) -> int:
    market = world.market(venue, "BTCUSDT")
    assert market is not None
    return len(market.candles(lo, hi - 1))


def test_the_default_outage_is_binances_of_february_2018() -> None:
    world = SimWorld(SimConfig(start_ms=parse_time_ms("2024-01-01")))
    assert _minutes(world, Venue.BINANCE, LO, HI) == 0
    assert _minutes(world, Venue.BINANCE, LO - 60_000, LO) == 1


def test_outages_are_configurable() -> None:
    none = SimWorld(SimConfig(start_ms=parse_time_ms("2024-01-01"), outages=()))
    assert _minutes(none, Venue.BINANCE, LO, HI) == (HI - LO) // 60_000
    window = (parse_time_ms("2023-05-01T10:00Z"), parse_time_ms("2023-05-01T11:30Z"))
    other = SimWorld(SimConfig(start_ms=parse_time_ms("2024-01-01"), outages=(window,)))
    assert _minutes(other, Venue.BINANCE, *window) == 0
    assert _minutes(other, Venue.BINANCE_USDM, *window) == 0
    assert _minutes(other, Venue.BYBIT_LINEAR, *window) == 90  # Binance's outage only


def test_listings_are_configurable_on_every_venue() -> None:
    listed = parse_time_ms("2021-03-04T05:06Z")
    world = SimWorld(SimConfig(start_ms=parse_time_ms("2024-01-01"), listed=(("BTCUSDT", listed),)))
    for venue in Venue:
        market = world.market(venue, "BTCUSDT")
        assert market is not None
        first = market.candles(0, listed + 10 * 60_000)
        assert first[0].open_time_ms == listed
        assert first[0].volume > 0
    assert world.market(Venue.BINANCE, "NOTLISTED") is None
