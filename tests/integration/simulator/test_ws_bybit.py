"""Bybit v5 public streams on the simulator: publicTrade folds into the REST klines.

A world at 120x on 127.0.0.1:0; frames are compared with the 2026 mainnet recording
for shape (keys in order, value types) and with `/v5/market/kline` for values.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from candlevault.aggregation.trades import fold_trades
from candlevault.domain.decimals import parse_units
from candlevault.domain.trades import Trade
from candlevault.domain.venues import Venue
from candlevault.simulator.bybit_klines import render_kline
from tests.contract.recorded import fixtures_dir
from tests.integration.simulator.ws_support import WsSim, feed, running, shape
from tests.support.waiting import eventually

MINUTE_MS = 60_000
BYBIT_WS = "bybit/ws/cryptofeed_v5_linear_spot_2026-08-09.jsonl"
CATEGORIES = pytest.mark.parametrize(
    ("category", "venue"), [("linear", Venue.BYBIT_LINEAR), ("spot", Venue.BYBIT_SPOT)]
)


def trades_of(frames: list[Any]) -> list[dict[str, Any]]:
    """Return every publicTrade row, in arrival order."""
    return [
        row for f in frames if f.get("topic", "").startswith("publicTrade") for row in f["data"]
    ]


async def rest_klines(sim: WsSim, category: str, first: int, last: int) -> list[Any]:
    """Return Bybit's REST 1m rows opening in [first, last], oldest first."""
    params = {
        "category": category, "symbol": "BTCUSDT", "interval": "1",
        "start": str(first), "end": str(last),
    }  # fmt: skip
    async with sim.session.get(sim.http + "/v5/market/kline", params=params) as response:
        body = orjson.loads(await response.read())
    assert body["retCode"] == 0, body
    return list(reversed(body["result"]["list"]))


@CATEGORIES
async def test_public_trades_fold_into_the_rest_klines(category: str, venue: Venue) -> None:
    async with running() as sim, feed(sim.session, f"{sim.ws}/v5/public/{category}") as f:
        await f.send({"op": "subscribe", "args": ["publicTrade.BTCUSDT"], "req_id": "7"})
        subscribed = sim.world.now_ms()
        first = subscribed - subscribed % MINUTE_MS + MINUTE_MS
        minutes = [first + i * MINUTE_MS for i in range(3)]
        done = minutes[-1] + MINUTE_MS
        await eventually(lambda: trades_of(f.frames) and trades_of(f.frames)[-1]["T"] >= done)
        market = sim.world.market(venue, "BTCUSDT")
        assert market is not None
        p = market.listing.precision
        rows = trades_of(f.frames)
        folded = []
        for minute in minutes:
            trades = [
                Trade(r["i"], parse_units(r["p"], p.price), parse_units(r["v"], p.base), r["T"],
                      r["S"] == "Sell")
                for r in rows
                if minute <= r["T"] < minute + MINUTE_MS
            ]  # fmt: skip
            candle = fold_trades(trades, open_time_ms=minute, precision=p, prev_close=None)
            assert candle is not None
            folded.append(orjson.loads(render_kline(candle, p)))
        assert folded == await rest_klines(sim, category, minutes[0], minutes[-1])
    ack = f.frames[0]
    assert ack["success"] is True
    assert ack["op"] == "subscribe"
    assert ack["req_id"] == "7"
    seqs = [r["seq"] for r in rows]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == len(seqs)


@CATEGORIES
async def test_frames_have_the_recorded_shape(category: str, venue: Venue) -> None:
    conn = "BYBIT.ws.2" if category == "linear" else "BYBIT.ws.3"
    async with running() as sim, feed(sim.session, f"{sim.ws}/v5/public/{category}") as f:
        await f.send({"op": "subscribe", "args": ["publicTrade.BTCUSDT", "kline.1.BTCUSDT"]})
        await eventually(
            lambda: {x.get("topic") for x in f.frames} >= {"publicTrade.BTCUSDT", "kline.1.BTCUSDT"}
        )
        await f.send({"op": "ping"})
        await eventually(lambda: [x for x in f.frames if x.get("op") == "ping"])
        by_topic = {x.get("topic") or x["op"]: x for x in f.frames}
    ack = f.frames[0]
    assert list(ack) == (
        ["success", "ret_msg", "conn_id", "req_id", "op"]
        if category == "linear"
        else ["success", "ret_msg", "conn_id", "op"]
    )
    assert ack["ret_msg"] == ("" if category == "linear" else "subscribe")
    trade = by_topic["publicTrade.BTCUSDT"]
    recorded = _recorded(conn, "publicTrade.BTCUSDT")
    assert shape(trade) == shape(recorded)
    kline = by_topic["kline.1.BTCUSDT"]
    assert shape(kline) == shape(_recorded(conn, "kline.1.BTCUSDT"))
    pong = by_topic["ping"]
    assert pong["success"] is True
    assert pong["ret_msg"] == "pong"


def _recorded(conn: str, topic: str) -> Any:
    """Return the first recorded frame of `topic` on connection `conn`."""
    with (fixtures_dir() / BYBIT_WS).open() as lines:
        for line in lines:
            entry = json.loads(line)
            if entry.get("conn") == conn and entry.get("t") == "recv":
                frame = json.loads(entry["data"])
                if frame.get("topic") == topic:
                    return frame
    raise AssertionError(topic)


async def test_bad_topics_are_refused() -> None:
    async with running() as sim, feed(sim.session, f"{sim.ws}/v5/public/linear") as f:
        await f.send({"op": "subscribe", "args": ["publicTrade.NOPEUSDT"], "req_id": "1"})
        await f.send({"op": "subscribe", "args": ["orderbook.1.BTCUSDT"], "req_id": "2"})
        replies = await eventually(lambda: len(f.frames) == 2 and f.frames)
    assert [r["success"] for r in replies] == [False, False]
    assert replies[0]["ret_msg"] == "Invalid symbol :[publicTrade.NOPEUSDT]"
