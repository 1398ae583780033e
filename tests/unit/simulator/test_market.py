"""The simulator's market model: deterministic, exact, and one source for every view."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from candlevault.aggregation import aggregate, fold_trades
from candlevault.domain.candles import sanity_problems
from candlevault.domain.timeframes import D1, D3, H1, M1, M5, MO1, W1
from candlevault.domain.venues import Venue
from candlevault.simulator.instruments import DEFAULT_SYMBOLS, listing, path_spec
from candlevault.simulator.klines import KlineView
from candlevault.simulator.market import MINUTE_MS, VenueMarket
from candlevault.simulator.path import DAY_MS, PricePath

OUTAGE = (1518062400000, 1518163200000)  # 2018-02-08 04:00 .. 2018-02-09 08:00


def market(venue: Venue = Venue.BINANCE, symbol: str = "BTCUSDT", seed: int = 1) -> VenueMarket:
    found = listing(venue, symbol)
    assert found is not None
    outages = [OUTAGE] if venue is Venue.BINANCE else []
    return VenueMarket(found, PricePath(path_spec(symbol), seed), seed, outages)


minutes_since_listing = st.integers(0, 8 * 365 * 1440)
venues_symbols = st.sampled_from(
    [(v, s) for s in DEFAULT_SYMBOLS for v in Venue if listing(v, s) is not None]
)


@settings(max_examples=60)
@given(venues_symbols, minutes_since_listing)
def test_the_trades_of_a_minute_fold_to_exactly_its_candle(
    where: tuple[Venue, str], minute: int
) -> None:
    m = market(*where)
    open_ms = m.listing.listed_ms + minute * MINUTE_MS
    candle = m.minute(open_ms)
    if candle is None:
        assert m.trades(open_ms) == []
        return
    trades = m.trades(open_ms)
    folded = fold_trades(
        trades,
        open_time_ms=open_ms,
        precision=m.listing.precision,
        prev_close=m.previous_close(open_ms),
    )
    assert folded == candle
    assert sanity_problems(candle) == []
    assert all(open_ms <= t.time_ms < open_ms + MINUTE_MS for t in trades)
    ids = [t.trade_id for t in trades]
    assert ids == list(range(ids[0], ids[0] + len(ids))) if ids else candle.volume == 0
    assert all(t.price % m.listing.tick == 0 and t.qty % m.listing.step == 0 for t in trades)


@settings(max_examples=20)
@given(venues_symbols, st.integers(0, 8 * 365))
def test_trade_ids_continue_from_minute_to_minute_and_day_to_day(
    where: tuple[Venue, str], day: int
) -> None:
    m = market(*where)
    start = (
        m.listing.listed_ms - m.listing.listed_ms % DAY_MS + day * DAY_MS + DAY_MS - 3 * MINUTE_MS
    )
    expected = None
    for i in range(6):
        trades = m.trades(start + i * MINUTE_MS)
        if trades:
            if expected is not None:
                assert trades[0].trade_id == expected
            expected = trades[-1].trade_id + 1


def test_zero_volume_minutes_are_flat_at_the_previous_close() -> None:
    m = market(Venue.BINANCE, "NEOETH")
    candles = m.candles(m.listing.listed_ms, m.listing.listed_ms + 3 * DAY_MS)
    zero = [c for c in candles if c.volume == 0]
    assert len(zero) > len(candles) // 3  # an illiquid market
    previous = {c.open_time_ms + MINUTE_MS: c.close for c in candles}
    for c in zero:
        assert c.open == c.high == c.low == c.close == previous[c.open_time_ms]
        assert (c.trades, c.quote_volume, c.taker_buy_base) == (0, 0, 0)


def test_the_outage_has_no_candles_at_all() -> None:
    m = market()
    inside = m.candles(OUTAGE[0], OUTAGE[1] - 1)
    around = m.candles(OUTAGE[0] - 10 * MINUTE_MS, OUTAGE[1] + 9 * MINUTE_MS)
    assert inside == []
    assert len(around) == 20


def test_history_starts_at_the_listing() -> None:
    m = market()
    assert m.listing.listed_ms == 1502942400000  # 2017-08-17 04:00
    first = m.candles(0, m.listing.listed_ms + 5 * MINUTE_MS)
    assert first[0].open_time_ms == m.listing.listed_ms
    assert first[0].volume > 0
    assert len(first) == 6


def test_the_same_seed_is_the_same_market_and_another_seed_is_not() -> None:
    t = 1_650_000_000_000 - 1_650_000_000_000 % MINUTE_MS
    assert market(seed=7).candles(t, t + DAY_MS) == market(seed=7).candles(t, t + DAY_MS)
    assert market(seed=7).candles(t, t + DAY_MS) != market(seed=8).candles(t, t + DAY_MS)


def test_a_day_read_alone_equals_the_day_read_after_its_history() -> None:
    """Random access: no state carried from earlier reads changes a day."""
    day = 1_600_000_000_000 - 1_600_000_000_000 % DAY_MS
    fresh = market().day(day).candles
    warm = market()
    warm.candles(day - 5 * DAY_MS, day - 1)
    assert warm.day(day).candles == fresh


def test_two_processes_see_the_same_market() -> None:
    code = (
        "from tests.unit.simulator.test_market import market\n"
        "t = 1_650_000_000_000 - 1_650_000_000_000 % 60_000\n"
        "m = market(seed=3)\n"
        "print(repr(m.candles(t, t + 86_400_000)), repr(m.trades(t + 600_000)))\n"
    )
    runs = [
        _digest(
            subprocess.run(
                [sys.executable, "-c", code],
                capture_output=True,
                text=True,
                check=True,
                env={"PYTHONHASHSEED": str(seed), "PATH": ""},
            ).stdout
        )
        for seed in (1, 2)
    ]
    assert runs[0] == runs[1]
    assert runs[0] != _digest("")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.parametrize("tf", [M5, H1, D1])
def test_klines_of_every_interval_are_the_aggregation_of_the_1m_klines(tf: object) -> None:
    m = market()
    view = KlineView(m)
    now = 1_700_000_000_000
    start = now - 3 * DAY_MS
    klines = view.window(tf, now_ms=now, start_ms=start, end_ms=now - DAY_MS, limit=1000)  # type: ignore[arg-type]
    minutes = view.window(M1, now_ms=now, start_ms=start, end_ms=now, limit=10_000)
    rebuilt = {
        c.open_time_ms: c
        for c in aggregate(minutes, tf, inception_ms=m.listing.listed_ms)  # type: ignore[arg-type]
    }
    assert klines
    for k in klines:
        assert rebuilt[k.open_time_ms] == k


def test_3d_1w_1m_follow_the_listing_and_the_calendar() -> None:
    m = market()
    view = KlineView(m)
    now = m.listing.listed_ms + 40 * DAY_MS
    listed = m.listing.listed_ms
    three = view.window(D3, now_ms=now, start_ms=0, end_ms=None, limit=5)
    weeks = view.window(W1, now_ms=now, start_ms=0, end_ms=None, limit=2)
    months = view.window(MO1, now_ms=now, start_ms=0, end_ms=None, limit=2)
    assert three[0].open_time_ms == listed - listed % DAY_MS
    assert weeks[0].open_time_ms == 1502668800000  # Monday 2017-08-14
    assert months[0].open_time_ms == 1501545600000  # 2017-08-01
    assert weeks[0].complete


def test_the_newest_kline_is_the_forming_one() -> None:
    m = market()
    view = KlineView(m)
    now = 1_700_000_000_000 + 25_000  # 25 s into a minute
    newest = view.window(M1, now_ms=now, start_ms=None, end_ms=None, limit=3)
    hour = view.window(H1, now_ms=now, start_ms=None, end_ms=None, limit=1)[-1]
    assert newest[-1].open_time_ms == now - now % MINUTE_MS
    assert newest[-1].close_time_ms > now
    assert not newest[-1].closed
    assert newest[-2].closed
    whole = m.minute(newest[-1].open_time_ms)
    assert whole is not None
    assert newest[-1].volume <= whole.volume
    assert not hour.closed
    assert hour.close_time_ms > now
    later = view.window(
        M1, now_ms=now + 35_000, start_ms=newest[-1].open_time_ms, end_ms=None, limit=1
    )
    assert later[0] == whole


def test_nothing_after_now_and_nothing_before_the_listing() -> None:
    m = market()
    view = KlineView(m)
    now = 1_700_000_000_000
    assert view.window(M1, now_ms=now, start_ms=now + MINUTE_MS, end_ms=None, limit=10) == []
    assert view.window(H1, now_ms=now, start_ms=0, end_ms=m.listing.listed_ms - 1, limit=10) == []
    assert view.window(M1, now_ms=now, start_ms=None, end_ms=1_000_000, limit=10) == []
