"""WebSocket faults on the simulator's switchboard, on real sockets.

`POST /_sim/ws/drop` closes every connection now; `/_sim/faults` sets the rest: drop
every N wall seconds (`ws_drop_every_s`), a silent feed (`ws_silent`), duplicated and
reordered market frames (`ws_duplicate`, `ws_reorder`). Each test runs a world at 120x.
"""

from __future__ import annotations

import itertools
from typing import Any

import orjson

from candlevault.simulator.faults import FaultSettings
from tests.integration.simulator.ws_support import WsSim, feed, running
from tests.support.waiting import eventually

MINUTE_MS = 60_000
AGG_URL = "/ws/btcusdt@aggTrade"


async def control(sim: WsSim, path: str, body: object = None) -> Any:
    """POST `body` to a control path; fail unless it answers 200; return the answer."""
    async with sim.session.post(sim.http + path, json=body) as response:
        assert response.status == 200, await response.text()
        return orjson.loads(await response.read())


async def ws_stats(sim: WsSim) -> Any:
    """Return the "ws" section of `/_sim/stats`."""
    async with sim.session.get(sim.http + "/_sim/stats") as response:
        assert response.status == 200
        return orjson.loads(await response.read())["ws"]


def trades_of(frames: list[Any]) -> list[Any]:
    """Return the Bybit publicTrade rows among `frames`."""
    return [
        row for f in frames if f.get("topic", "").startswith("publicTrade") for row in f["data"]
    ]


async def test_drop_now_closes_every_connection_and_clients_reconnect() -> None:
    async with running() as sim:
        async with (
            feed(sim.session, f"{sim.ws}/ws/btcusdt@aggTrade") as spot,
            feed(sim.session, f"{sim.ws}/fstream/stream?streams=ethusdt@aggTrade") as usdm,
            feed(sim.session, f"{sim.ws}/v5/public/linear") as bybit,
        ):
            await bybit.send({"op": "subscribe", "args": ["publicTrade.BTCUSDT"]})
            await eventually(lambda: spot.events("aggTrade") and usdm.events("aggTrade"))
            await eventually(lambda: trades_of(bybit.frames))
            assert await control(sim, "/_sim/ws/drop") == {"dropped": 3}
            await eventually(lambda: spot.closed and usdm.closed and bybit.closed)
            assert spot.ws.close_code == 1001
        dropped_at = sim.world.now_ms()
        async with feed(sim.session, f"{sim.ws}/ws/btcusdt@aggTrade") as again:
            await eventually(lambda: [e for e in again.events("aggTrade") if e["T"] > dropped_at])
            assert not again.closed
            stats = await ws_stats(sim)
    assert stats["dropped"] == {"binance": 1, "binance-usdm": 1, "bybit-linear": 1}
    assert stats["connections"] == {"binance": 2, "binance-usdm": 1, "bybit-linear": 1}
    assert stats["open"]["binance"] == 1


async def test_drop_now_with_nothing_open_drops_nothing() -> None:
    async with running() as sim:
        assert await control(sim, "/_sim/ws/drop") == {"dropped": 0}


async def test_drop_every_n_seconds_drops_repeatedly_until_cleared() -> None:
    url = "/ws/btcusdt@aggTrade"
    async with running() as sim:
        settings = await control(sim, "/_sim/faults", {"ws_drop_every_s": 0.2})
        assert settings["ws_drop_every_s"] == 0.2
        for _ in range(3):
            async with feed(sim.session, sim.ws + url) as f:
                await eventually(lambda: f.closed, message="dropped within the period")
                assert f.ws.close_code == 1001
        assert (await ws_stats(sim))["dropped"]["binance"] >= 3
        await control(sim, "/_sim/faults", {"ws_drop_every_s": 0})
        async with feed(sim.session, sim.ws + url) as f:
            # 90 s of market at 120x is 0.75 s of wall time: several periods of 0.2 s.
            await eventually(
                lambda: (
                    f.events("aggTrade")
                    and f.events("aggTrade")[-1]["T"] - f.events("aggTrade")[0]["T"] > 90_000
                )
            )
            assert not f.closed


async def test_a_silent_feed_stays_open_answers_controls_and_resumes() -> None:
    async with (
        running() as sim,
        feed(sim.session, f"{sim.ws}/ws/btcusdt@aggTrade", autoping=False) as f,
        feed(sim.session, f"{sim.ws}/v5/public/linear") as bybit,
    ):
        await bybit.send({"op": "subscribe", "args": ["publicTrade.BTCUSDT"], "req_id": "1"})
        await eventually(lambda: f.events("aggTrade") and trades_of(bybit.frames))
        await control(sim, "/_sim/faults", {"ws_silent": True})
        stats = sim.server.hub.stats
        await eventually(lambda: stats.silenced["binance"] and stats.silenced["bybit-linear"])
        sent, bybit_sent = stats.messages["binance"], stats.messages["bybit-linear"]
        await eventually(lambda: len(f.events("aggTrade")) == sent)
        await eventually(lambda: sum(1 for x in bybit.frames if "topic" in x) == bybit_sent)
        silenced = stats.silenced["binance"]

        await f.send({"method": "SUBSCRIBE", "params": ["ethusdt@aggTrade"], "id": 1})
        await f.ws.ping(b"still there?")
        await bybit.send({"op": "ping", "req_id": "2"})
        await eventually(lambda: f.replies() == [{"result": None, "id": 1}] and f.pongs == 1)
        await eventually(lambda: [x for x in bybit.frames if x.get("op") == "ping"])
        await eventually(lambda: stats.silenced["binance"] > silenced + 20)  # the market prints on
        assert len(f.events("aggTrade")) == sent
        assert sum(1 for x in bybit.frames if "topic" in x) == bybit_sent
        assert not f.closed
        assert not bybit.closed

        silent_until = sim.world.now_ms()
        await control(sim, "/_sim/faults", {"ws_silent": False})
        await eventually(
            lambda: (
                {e["s"] for e in f.events("aggTrade") if e["T"] > silent_until}
                == {"BTCUSDT", "ETHUSDT"}
            )
        )
        await eventually(lambda: [t for t in trades_of(bybit.frames) if t["T"] > silent_until])
        snapshot = await ws_stats(sim)
    assert snapshot["silenced"]["binance"] > 20
    assert snapshot["dropped"] == {}
    assert snapshot["duplicated"] == snapshot["reordered"] == {}


async def test_duplicate_share_one_sends_every_agg_trade_twice() -> None:
    faults = FaultSettings(ws_duplicate=1.0)
    async with running(faults=faults) as sim, feed(sim.session, f"{sim.ws}{AGG_URL}") as f:
        await eventually(lambda: len(f.events("aggTrade")) >= 40)
        events = f.events("aggTrade")
        stats = await ws_stats(sim)
    pairs = len(events) // 2
    firsts, seconds = events[0 : 2 * pairs : 2], events[1 : 2 * pairs : 2]
    assert firsts == seconds
    assert all(b["a"] > a["a"] for a, b in itertools.pairwise(firsts)), "in order"
    assert all(b["f"] == a["l"] + 1 for a, b in itertools.pairwise(firsts)), "no gap"
    assert stats["duplicated"]["binance"] >= pairs
    assert stats["messages"]["binance"] == 2 * stats["duplicated"]["binance"]


async def test_reorder_share_one_swaps_frames_but_loses_none() -> None:
    faults = FaultSettings(ws_reorder=1.0)
    async with running(faults=faults) as sim, feed(sim.session, f"{sim.ws}{AGG_URL}") as f:
        subscribed = sim.world.now_ms()
        minute = subscribed - subscribed % MINUTE_MS + MINUTE_MS
        end = minute + MINUTE_MS - 1
        await eventually(lambda: sim.world.now_ms() > end)
        params = {"symbol": "BTCUSDT", "startTime": str(minute), "endTime": str(end)}
        async with sim.session.get(
            sim.http + "/api/v3/aggTrades", params={**params, "limit": "1000"}
        ) as response:
            assert response.status == 200
            rest: list[dict[str, Any]] = orjson.loads(await response.read())
        assert 10 < len(rest) < 1000

        def window() -> list[dict[str, Any]]:
            seen = [e for e in f.events("aggTrade") if minute <= e["T"] <= end]
            return sorted(({k: e[k] for k in rest[0]} for e in seen), key=lambda e: e["a"])

        await eventually(lambda: window() == rest)
        ids = [e["a"] for e in f.events("aggTrade")]
        stats = await ws_stats(sim)
    assert len(ids) == len(set(ids)), "no frame twice"
    assert any(b < a for a, b in itertools.pairwise(ids)), "some frames out of order"
    assert stats["reordered"]["binance"] >= len(rest) // 2 - 1
