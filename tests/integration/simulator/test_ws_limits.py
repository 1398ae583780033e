"""Binance's WebSocket limits on the simulator, on real sockets (ws_limits.py).

Messages: a burst one past the limit (5 a second on spot, 10 on USD-M; text, ping and
pong frames alike) is cut with 1008, the last message unanswered; a client that stays
under it in every rolling second is never cut. Streams: a `SUBSCRIBE` past the cap is
refused and the streams already there flow on; a URL past it is refused with HTTP 400.
Connections: the one past the per-IP count is refused with HTTP 429.
"""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import pytest

from candlevault.simulator.ws_hub import WsTimings
from candlevault.simulator.ws_limits import WsLimits
from tests.integration.simulator.ws_support import Feed, WsSim, feed, running
from tests.support.waiting import eventually

CAP = 3  # streams per connection, for the tests of the cap


async def send_one(f: Feed, kind: str, n: int) -> None:
    """Send one message that counts: a text request (id `n`), a ping or a pong frame."""
    if kind == "text":
        await f.send({"method": "LIST_SUBSCRIPTIONS", "id": n})
    elif kind == "ping":
        await f.ws.ping(b"")
    else:
        await f.ws.pong(b"")


def ws_stats(sim: WsSim) -> dict[str, Any]:
    """Return the "ws" counts as `/_sim/stats` shows them."""
    return sim.server.hub.stats.snapshot()


@pytest.mark.parametrize(
    ("prefix", "venue", "limit"),
    [("", "binance", 5), ("/fstream", "binance-usdm", 10)],
    ids=["spot", "usdm"],
)
@pytest.mark.parametrize("kind", ["text", "ping", "pong"])
async def test_a_burst_past_the_message_limit_is_cut_with_1008(
    prefix: str, venue: str, limit: int, kind: str
) -> None:
    async with (
        running() as sim,
        feed(sim.session, f"{sim.ws}{prefix}/ws/btcusdt@aggTrade", autoping=False) as f,
    ):
        for n in range(limit + 1):
            await send_one(f, kind, n)
        await eventually(lambda: f.closed, message=f"message {limit + 1} in a second cuts")
        assert f.ws.close_code == 1008
        if kind == "text":
            assert [r["id"] for r in f.replies()] == list(range(limit))  # the last unanswered
        elif kind == "ping":
            assert f.pongs == limit
        stats = ws_stats(sim)
    assert stats["rate_limited"] == {venue: 1}
    assert stats["disconnects"] == {venue: 1}


async def test_a_client_under_the_limit_in_every_second_is_never_cut() -> None:
    async with running() as sim, feed(sim.session, f"{sim.ws}/ws/btcusdt@aggTrade") as f:
        for burst in range(3):  # four a second: each burst starts a second after the last
            ids = list(range(4 * burst, 4 * burst + 4))
            for n in ids:
                await f.send({"method": "LIST_SUBSCRIPTIONS", "id": n})
            await eventually(lambda: [r["id"] for r in f.replies()][-4:] == ids)  # noqa: B023
            answered = time.monotonic()  # after the server saw every one of them
            await eventually(lambda: time.monotonic() - answered > 1.0)  # noqa: B023
        after = sim.world.now_ms()
        await eventually(lambda: [e for e in f.events("aggTrade") if e["T"] > after])
        assert not f.closed
        assert len(f.replies()) == 12
    assert ws_stats(sim)["rate_limited"] == {}


async def test_subscribing_past_the_stream_cap_is_refused_and_the_feed_flows_on() -> None:
    timings = WsTimings(limits={"binance": WsLimits(messages=None, streams=CAP)})
    async with running(timings=timings) as sim, feed(sim.session, f"{sim.ws}/ws") as f:
        await f.send({"method": "SUBSCRIBE", "params": ["btcusdt@aggTrade"], "id": 1})
        await f.send(
            {"method": "SUBSCRIBE", "params": ["ethusdt@aggTrade", "ethusdt@aggTrade"], "id": 2}
        )
        await f.send({"method": "SUBSCRIBE", "params": ["btcusdt@trade", "ethusdt@trade"], "id": 3})
        await f.send({"method": "SUBSCRIBE", "params": ["btcusdt@aggTrade"], "id": 4})  # held
        await f.send({"method": "SUBSCRIBE", "params": ["btcusdt@trade"], "id": 5})
        await f.send({"method": "LIST_SUBSCRIPTIONS", "id": 6})
        await f.send({"method": "SUBSCRIBE", "params": ["ethusdt@trade"], "id": 7})
        replies = await eventually(lambda: len(f.replies()) == 7 and f.replies())
        refused_at = sim.world.now_ms()
        await eventually(
            lambda: (
                {e["s"] for e in f.events("aggTrade") if e["T"] > refused_at}
                == {"BTCUSDT", "ETHUSDT"}
                and [e for e in f.events("trade") if e["T"] > refused_at]
            )
        )
        assert not f.closed
    too_many = "Invalid request: too many streams; a connection can listen to a maximum of 3"
    assert replies == [
        {"result": None, "id": 1},
        {"result": None, "id": 2},
        {"error": {"code": 2, "msg": too_many}, "id": 3},
        {"result": None, "id": 4},
        {"result": None, "id": 5},
        {"result": ["btcusdt@aggTrade", "ethusdt@aggTrade", "btcusdt@trade"], "id": 6},
        {"error": {"code": 2, "msg": too_many}, "id": 7},
    ]
    assert {e["s"] for e in f.events("trade")} == {"BTCUSDT"}


async def test_a_url_past_the_stream_cap_is_refused_before_the_upgrade() -> None:
    timings = WsTimings(limits={"binance": WsLimits(streams=CAP)})
    four = "btcusdt@aggTrade/ethusdt@aggTrade/btcusdt@trade/ethusdt@trade"
    three_and_no_stream = "btcusdt@aggTrade/ethusdt@aggTrade/btcusdt@trade/nonsense"
    async with running(timings=timings) as sim:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            async with sim.session.ws_connect(f"{sim.ws}/stream?streams={four}"):
                pass
        assert refused.value.status == 400
        async with sim.session.get(f"{sim.http}/ws/{four}") as response:
            assert response.status == 400
            body = await response.json()
        assert body["code"] == 2
        assert body["msg"].endswith("maximum of 3")
        async with feed(sim.session, f"{sim.ws}/ws/{three_and_no_stream}") as f:
            await eventually(lambda: f.events("aggTrade") and f.events("trade"))
            assert not f.closed
        stats = ws_stats(sim)
    assert stats["refused"] == {"binance": 2}
    assert stats["connections"] == {"binance": 1}


async def test_connections_past_the_per_ip_count_are_refused_with_429() -> None:
    spot = WsLimits(connections=2, connections_per_s=300.0)
    timings = WsTimings(limits={"binance": spot, "binance-usdm": WsLimits()})
    async with running(timings=timings) as sim:
        for _ in range(2):
            async with feed(sim.session, f"{sim.ws}/ws/btcusdt@aggTrade") as f:
                await eventually(lambda: f.events("aggTrade"))
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            async with sim.session.ws_connect(f"{sim.ws}/ws/btcusdt@aggTrade"):
                pass
        assert refused.value.status == 429
        async with sim.session.get(f"{sim.http}/ws/btcusdt@aggTrade") as r:
            assert r.status == 429
            assert (await r.json())["code"] == -1003
        async with feed(sim.session, f"{sim.ws}/fstream/ws/btcusdt@aggTrade") as usdm:
            await eventually(lambda: usdm.events("aggTrade"))  # another venue, its own count
        stats = ws_stats(sim)
    assert stats["refused"] == {"binance": 2}
    assert stats["connections"] == {"binance": 2, "binance-usdm": 1}
