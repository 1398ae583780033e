"""The simulator's server and its /_sim controls, over real sockets."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest

from candlevault.domain.times import parse_time_ms
from candlevault.simulator.faults import FaultSettings
from candlevault.simulator.server import SimServer
from candlevault.simulator.world import SimConfig, SimWorld

START = parse_time_ms("2024-03-01T12:00:00Z")
KLINES = "/api/v3/klines?symbol=BTCUSDT&interval=1m&startTime=1700000000000&limit=10"


@pytest.fixture
async def server() -> AsyncIterator[SimServer]:
    world = SimWorld(SimConfig(start_ms=START, symbols=("BTCUSDT",)))
    world.clock.pause()
    async with SimServer(world) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _json(
    session: aiohttp.ClientSession, method: str, url: str, body: object = None
) -> object:
    data = None if body is None else orjson.dumps(body)
    async with session.request(method, url, data=data) as response:
        return orjson.loads(await response.read())


async def test_the_clock_is_readable_and_drives_the_venues_time(
    server: SimServer, http: aiohttp.ClientSession
) -> None:
    clock = await _json(http, "GET", f"{server.url}/_sim/clock")
    assert clock == {"time_ms": START, "speed": 1.0, "paused": True}
    await _json(http, "POST", f"{server.url}/_sim/clock", {"action": "step", "ms": 90_000})
    binance = await _json(http, "GET", f"{server.url}/api/v3/time")
    bybit = await _json(http, "GET", f"{server.url}/v5/market/time")
    assert binance == {"serverTime": START + 90_000}
    assert isinstance(bybit, dict)
    assert int(bybit["result"]["timeSecond"]) == (START + 90_000) // 1000
    await _json(http, "POST", f"{server.url}/_sim/clock", {"action": "speed", "speed": 60})
    assert (await _json(http, "GET", f"{server.url}/_sim/clock"))["speed"] == 60.0  # type: ignore[index]


async def test_bad_control_bodies_get_a_400_naming_the_problem(
    server: SimServer, http: aiohttp.ClientSession
) -> None:
    for path, body in (
        ("/_sim/clock", {"action": "warp"}),
        ("/_sim/clock", {"action": "step", "ms": "soon"}),
        ("/_sim/faults", {"error_5xx": 2.0}),
        ("/_sim/faults", {"no_such_fault": 0.5}),
    ):
        async with http.post(f"{server.url}{path}", data=orjson.dumps(body)) as response:
            assert response.status == 400, (path, body)
            assert "error" in orjson.loads(await response.read())
    async with http.post(f"{server.url}/_sim/clock", data=b"{not json") as response:
        assert response.status == 400


async def test_faults_switch_on_and_off_at_run_time(
    server: SimServer, http: aiohttp.ClientSession
) -> None:
    await _json(http, "POST", f"{server.url}/_sim/faults", {"error_5xx": 1.0})
    async with http.get(f"{server.url}{KLINES}") as response:
        assert response.status in (500, 502, 503)
    await _json(http, "POST", f"{server.url}/_sim/faults", {"error_5xx": 0.0, "truncated": 1.0})
    async with http.get(f"{server.url}{KLINES}") as response:
        body = await response.read()
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(body)
    settings = await _json(http, "POST", f"{server.url}/_sim/faults", {"truncated": 0.0})
    assert isinstance(settings, dict)
    assert settings["truncated"] == 0.0
    async with http.get(f"{server.url}{KLINES}") as response:
        assert response.status == 200
        assert len(orjson.loads(await response.read())) == 10


async def test_a_time_out_drops_the_connection_unanswered(
    server: SimServer, http: aiohttp.ClientSession
) -> None:
    await _json(http, "POST", f"{server.url}/_sim/faults", {"timeout": 1.0, "timeout_ms": 10})
    with pytest.raises(aiohttp.ClientError):
        async with http.get(f"{server.url}{KLINES}") as response:
            await response.read()


async def test_a_dark_venue_answers_503_only_in_its_window(
    server: SimServer, http: aiohttp.ClientSession
) -> None:
    dark = {"venue": "binance", "start_ms": START, "end_ms": START + 60_000}
    await _json(http, "POST", f"{server.url}/_sim/faults", {"dark": [dark]})
    async with http.get(f"{server.url}{KLINES}") as response:
        assert response.status == 503
    async with http.get(f"{server.url}/v5/market/time") as response:
        assert response.status == 200  # only Binance is dark
    server.world.clock.step(60_000)
    async with http.get(f"{server.url}{KLINES}") as response:
        assert response.status == 200


async def test_faults_can_be_on_from_the_start() -> None:
    world = SimWorld(
        SimConfig(start_ms=START, symbols=("BTCUSDT",), faults=FaultSettings(error_5xx=1.0))
    )
    async with (
        SimServer(world) as server,
        aiohttp.ClientSession() as http,
        http.get(f"{server.url}{KLINES}") as response,
    ):
        assert response.status >= 500


async def test_the_ledger_counts_exactly_what_was_asked_and_resets(
    server: SimServer, http: aiohttp.ClientSession
) -> None:
    for _ in range(3):
        async with http.get(f"{server.url}{KLINES}") as response:
            assert response.status == 200
    async with http.get(
        f"{server.url}/v5/market/kline?category=linear&symbol=BTCUSDT&interval=1&limit=5"
    ) as response:
        assert response.status == 200
    stats = await _json(http, "GET", f"{server.url}/_sim/stats")
    assert isinstance(stats, dict)
    binance = stats["venues"]["binance"]
    assert binance["requests"] == {"/api/v3/klines": 3}
    assert binance["weight"] == 6
    assert binance["candles"] == 30
    assert binance["status"]["200"] == 3
    assert stats["venues"]["bybit-linear"]["candles"] == 5
    assert set(stats["venues"]) == {
        "binance",
        "binance-usdm",
        "bybit-spot",
        "bybit-linear",
        "archive",
    }
    await _json(http, "POST", f"{server.url}/_sim/stats/reset")
    stats = await _json(http, "GET", f"{server.url}/_sim/stats")
    assert stats["venues"]["binance"]["requests"] == {}  # type: ignore[index]


def test_it_will_not_listen_beyond_loopback_unless_told() -> None:
    world = SimWorld(SimConfig(start_ms=START))
    with pytest.raises(ValueError, match="loopback"):
        SimServer(world, host="0.0.0.0")
    assert SimServer(world, host="::1").url.startswith("http://[::1]:")
