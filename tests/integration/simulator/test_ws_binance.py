"""Binance streams on the simulator: live trades are the REST trades, controls answer as documented.

Each test runs a world at 120x on 127.0.0.1:0 and reads real sockets; what a client
folds from the aggTrade stream must equal `/api/v3/klines` for the same closed minutes.
"""

from __future__ import annotations

import itertools
from typing import Any

import orjson
import pytest

from candlevault.aggregation.trades import fold_trades
from candlevault.domain.candles import kline_row
from candlevault.domain.decimals import Precision, parse_units
from candlevault.domain.times import parse_time_ms
from candlevault.domain.trades import Trade
from candlevault.domain.venues import Venue
from candlevault.simulator.ws_hub import WsTimings
from candlevault.simulator.ws_limits import WsLimits
from tests.integration.simulator.ws_support import (
    WsSim,
    feed,
    recorded_frame,
    running,
    shape,
)
from tests.support.waiting import eventually

MINUTE_MS = 60_000
SPOT_WS = "binance/ws/cryptofeed_spot_combined_2021-10-12.jsonl"
USDM_WS = "binance/ws/cryptofeed_usdm_combined_2021-07-22.jsonl"
# No message limit (Binance's is 5 a second), for tests that send bursts or pong fast.
UNLIMITED = {"binance": WsLimits(messages=None)}


def agg_trade(event: dict[str, Any], precision: Precision) -> Trade:
    """Parse an aggTrade payload into a trade standing for its `l - f + 1` fills."""
    return Trade(
        event["a"],
        parse_units(event["p"], precision.price),
        parse_units(event["q"], precision.base),
        event["T"],
        event["m"],
        event["l"] - event["f"] + 1,
    )


def precision_of(sim: WsSim, venue: Venue, symbol: str) -> Precision:
    """Return the listing precision of `symbol` on `venue`."""
    market = sim.world.market(venue, symbol)
    assert market is not None
    return market.listing.precision


async def rest_rows(sim: WsSim, path: str, symbol: str, first: int, last: int) -> list[Any]:
    """Return the REST 1m kline rows opening in [first, last]."""
    params = {"symbol": symbol, "interval": "1m", "startTime": str(first), "endTime": str(last)}
    async with sim.session.get(sim.http + path, params=params) as response:
        assert response.status == 200
        rows: list[Any] = orjson.loads(await response.read())
    return rows


@pytest.mark.parametrize(
    ("venue", "prefix", "path"),
    [(Venue.BINANCE, "", "/api/v3/klines"), (Venue.BINANCE_USDM, "/fstream", "/fapi/v1/klines")],
    ids=["spot", "usdm"],
)
async def test_agg_trades_fold_into_the_rest_klines_of_the_same_minutes(
    venue: Venue, prefix: str, path: str
) -> None:
    async with running() as sim, feed(sim.session, f"{sim.ws}{prefix}/ws/btcusdt@aggTrade") as f:
        subscribed = sim.world.now_ms()
        first = subscribed - subscribed % MINUTE_MS + MINUTE_MS
        minutes = [first + i * MINUTE_MS for i in range(3)]
        done = minutes[-1] + MINUTE_MS
        await eventually(lambda: f.events("aggTrade") and f.events("aggTrade")[-1]["T"] >= done)
        events = f.events("aggTrade")
        precision = precision_of(sim, venue, "BTCUSDT")
        ids = [(e["f"], e["l"]) for e in events]
        assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(ids)), "a gap"
        assert [e["T"] for e in events] == sorted(e["T"] for e in events)
        folded = []
        for minute in minutes:
            trades = [
                agg_trade(e, precision) for e in events if minute <= e["T"] < minute + MINUTE_MS
            ]
            candle = fold_trades(trades, open_time_ms=minute, precision=precision, prev_close=None)
            assert candle is not None
            folded.append(kline_row(candle, precision))
        assert folded == await rest_rows(sim, path, "BTCUSDT", minutes[0], minutes[-1])


async def test_combined_stream_frames_have_the_recorded_shape() -> None:
    url_streams = "btcusdt@aggTrade/ethusdt@trade/btcusdt@kline_1m"
    async with running() as sim, feed(sim.session, f"{sim.ws}/stream?streams={url_streams}") as f:
        await eventually(lambda: f.events("aggTrade") and f.events("trade") and f.events("kline"))
        wrapped = {frame["stream"]: frame for frame in f.frames}
    for stream, kind, recorded in [
        ("btcusdt@aggTrade", "aggTrade", recorded_frame(SPOT_WS, '"e":"aggTrade')),
        ("btcusdt@kline_1m", "kline", recorded_frame(SPOT_WS, '"e":"kline')),
    ]:
        assert shape(wrapped[stream]) == shape(recorded), kind
    trade = wrapped["ethusdt@trade"]
    assert list(trade) == ["stream", "data"]
    assert list(trade["data"]) == ["e", "E", "s", "t", "p", "q", "b", "a", "T", "m", "M"]
    assert len(trade["data"]["p"].split(".")[1]) == 8  # spot writes 8 decimals


async def test_usdm_agg_trades_have_the_recorded_shape() -> None:
    async with running() as sim:
        url = f"{sim.ws}/fstream/stream?streams=btcusdt@aggTrade"
        async with feed(sim.session, url) as f:
            await eventually(lambda: f.frames)
    assert shape(f.frames[0]) == shape(recorded_frame(USDM_WS, '"e":"aggTrade'))


async def test_live_subscribe_list_unsubscribe_and_refusals() -> None:
    timings = WsTimings(limits=UNLIMITED)  # nine requests at once
    async with running(timings=timings) as sim, feed(sim.session, f"{sim.ws}/ws") as f:
        await f.send(
            {"method": "SUBSCRIBE", "params": ["btcusdt@aggTrade", "ethusdt@trade"], "id": 1}
        )
        await f.send({"method": "LIST_SUBSCRIPTIONS", "id": 2})
        await f.send({"method": "UNSUBSCRIBE", "params": ["ethusdt@trade"], "id": 3})
        await f.send({"method": "LIST_SUBSCRIPTIONS", "id": 4})
        await f.send({"method": "SUBSCRIBE", "params": ["btcusdt@nonsense"], "id": 5})
        await f.send({"method": "SUBSCRIBE", "params": ["btcusdt@aggTrade"], "id": -1})
        await f.send({"method": "PUBLISH", "params": [], "id": 7})
        await f.send({"method": "GET_PROPERTY", "params": ["combined"], "id": 8})
        await f.ws.send_str("not json")
        replies = await eventually(lambda: len(f.replies()) == 9 and f.replies())
        await eventually(lambda: f.events("aggTrade"))
    assert replies[:5] == [
        {"result": None, "id": 1},
        {"result": ["btcusdt@aggTrade", "ethusdt@trade"], "id": 2},
        {"result": None, "id": 3},
        {"result": ["btcusdt@aggTrade"], "id": 4},
        {"error": {"code": 2, "msg": "Invalid request: invalid stream"}, "id": 5},
    ]
    assert replies[5] == {
        "error": {"code": 2, "msg": "Invalid request: request ID must be an unsigned integer"},
        "id": None,
    }
    assert replies[6]["error"]["code"] == 2
    assert replies[6]["error"]["msg"].startswith("Invalid request: unknown variant `PUBLISH`")
    assert replies[7] == {"result": False, "id": 8}
    assert replies[8]["error"]["code"] == 3
    raw = [frame for frame in f.frames if "e" in frame]
    assert raw
    assert all("stream" not in frame for frame in raw)


async def test_klines_close_with_the_rest_values() -> None:
    async with running() as sim, feed(sim.session, f"{sim.ws}/ws/btcusdt@kline_1m") as f:
        finals = lambda: [e for e in f.events("kline") if e["k"]["x"]]  # noqa: E731
        await eventually(lambda: len(finals()) >= 2)
        precision = precision_of(sim, Venue.BINANCE, "BTCUSDT")
        assert precision.fixed
        for event in finals():
            k = event["k"]
            (row,) = await rest_rows(sim, "/api/v3/klines", "BTCUSDT", k["t"], k["t"])
            fields = [k["t"], k["o"], k["h"], k["l"], k["c"], k["v"], k["T"], k["q"], k["n"]]
            assert fields == row[:9]
            assert [k["V"], k["Q"]] == row[9:11]
            assert k["L"] - k["f"] + 1 == k["n"]
            assert event["E"] > k["T"]
        updates = [e for e in f.events("kline") if not e["k"]["x"]]
        assert updates


async def test_server_pings_and_drops_a_client_that_never_pongs() -> None:
    timings = WsTimings(ping_every_s=0.05, pong_within_s=0.2, limits=UNLIMITED)  # 20 pongs/s
    async with running(timings=timings) as sim:
        async with feed(sim.session, f"{sim.ws}/ws/btcusdt@aggTrade") as polite:
            await eventually(lambda: sim.server.hub.stats.pings["binance"] >= 5)
            assert not polite.closed  # aiohttp answers the pings: still connected
        async with feed(sim.session, f"{sim.ws}/ws/btcusdt@aggTrade", autoping=False) as mute:
            await eventually(lambda: mute.closed, message="a client that never pongs is cut")
        stats = sim.server.hub.stats.snapshot()
        assert stats["pong_timeouts"] == {"binance": 1}


async def test_a_dark_window_sends_nothing_and_the_feed_resumes() -> None:
    async with running() as sim, feed(sim.session, f"{sim.ws}/ws/btcusdt@aggTrade") as f:
        now = sim.world.now_ms()
        dark = {"venue": "binance", "start_ms": now, "end_ms": now + 2 * MINUTE_MS}
        async with sim.session.post(sim.http + "/_sim/faults", json={"dark": [dark]}) as r:
            assert r.status == 200
        await eventually(
            lambda: f.events("aggTrade") and f.events("aggTrade")[-1]["T"] > dark["end_ms"] + 5000
        )
        times = [e["T"] for e in f.events("aggTrade")]
        async with sim.session.get(sim.http + "/_sim/stats") as r:
            ws_stats = (await r.json())["ws"]
    assert ws_stats["connections"] == {"binance": 1}
    assert ws_stats["open"] == {"binance": 1}
    assert ws_stats["messages"]["binance"] == len(times)
    assert not [t for t in times if dark["start_ms"] + 10_000 < t <= dark["end_ms"]]


async def test_a_kline_that_never_traded_gets_no_event() -> None:
    """NEOETH in 2017 has many minutes without a trade: those get no kline event, not even
    a final one; every minute that traded gets exactly one final event."""
    start = parse_time_ms("2017-10-02T12:00:30Z")
    async with (
        running(start_ms=start, symbols=("NEOETH",), speed=600.0) as sim,
        feed(sim.session, f"{sim.ws}/ws/neoeth@kline_1m") as f,
    ):
        first = sim.world.now_ms() - sim.world.now_ms() % MINUTE_MS + MINUTE_MS
        end = first + 20 * MINUTE_MS
        # Frames come in event-time order: once a kline of a later minute has come, every
        # event of the minutes before `end` has too.
        await eventually(lambda: [e for e in f.events("kline") if e["k"]["t"] >= end], timeout=10)
        rows = await rest_rows(sim, "/api/v3/klines", "NEOETH", first, end - MINUTE_MS)
    traded = {row[0] for row in rows if row[8] > 0}
    quiet = {row[0] for row in rows if row[8] == 0}
    assert traded
    assert quiet, "the window should hold minutes without a trade"
    events = [e["k"] for e in f.events("kline") if first <= e["k"]["t"] < end]
    assert {k["t"] for k in events} == traded
    assert sorted(k["t"] for k in events if k["x"]) == sorted(traded)
    assert all(k["n"] > 0 for k in events)
