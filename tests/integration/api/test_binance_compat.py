"""The Binance-compatible endpoints over real HTTP, against the simulator as the venue.

A Binance client pointed at candlevault must not be able to tell it from the venue:
`/api/v3/klines` and `/fapi/v1/klines` bodies are compared byte for byte with the
simulator's own reply to the same query (first read from the exchange, then again from
candlevault's layers), refusals with the simulator's refusals, and ccxt, an independent
client, loads markets and fetches OHLCV through candlevault exactly as from the venue.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from candlevault.domain.times import parse_time_ms
from tests.integration.api.service import Service, running_service
from tests.integration.api.test_candles import kline_requests
from tests.integration.exchanges.venues import START_MS, Sim, running_sim
from tests.integration.simulator.ccxt_support import binance_spot, connected
from tests.support.waiting import eventually

SPOT = "/api/v3"
FAPI = "/fapi/v1"
MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR
PAST = parse_time_ms("2024-01-10T00:00:00Z")  # days before START_MS: every candle closed
UNAVAILABLE = "Internal error; unable to process your request. Please try again."


async def exchange_reply(sim: Sim, path: str, params: dict[str, Any]) -> tuple[int, bytes]:
    """The simulator's own reply (what the venue says), status and body bytes."""
    query = {k: str(v) for k, v in params.items()}
    async with sim.session.get(sim.server.url + path, params=query) as reply:
        return reply.status, await reply.read()


async def assert_served_as_the_exchange(
    sim: Sim, service: Service, path: str, params: dict[str, Any]
) -> bytes:
    """Read `path` from candlevault twice (fetched, then cached) and from the simulator;
    check all three bodies are the same bytes; return them."""
    status, first = await service.raw(path, **params)
    assert status == 200, first
    status, again = await service.raw(path, **params)
    assert status == 200, again
    status, truth = await exchange_reply(sim, path, params)
    assert status == 200, truth
    assert first == truth
    assert again == truth
    return truth


# id: (query, whether the window reaches now and so ends with the forming candle)
SPOT_QUERIES: dict[str, tuple[dict[str, Any], bool]] = {
    "newest-1m-default-limit": ({"interval": "1m"}, True),
    "newest-1h": ({"interval": "1h", "limit": 48}, True),
    "newest-1d": ({"interval": "1d", "limit": 14}, True),
    "newest-1w": ({"interval": "1w", "limit": 5}, True),
    "newest-1M": ({"interval": "1M", "limit": 2}, True),
    "start-mid-minute-1m": ({"interval": "1m", "startTime": PAST + 30_000, "limit": 100}, False),
    "start-reaching-now-1m": ({"interval": "1m", "startTime": START_MS - 30 * MINUTE}, True),
    "start-reaching-now-1d": ({"interval": "1d", "startTime": PAST - 10 * DAY}, True),
    "start-end-1m": ({"interval": "1m", "startTime": PAST, "endTime": PAST + 2 * HOUR}, False),
    "start-end-limit-1h": (
        {"interval": "1h", "startTime": PAST, "endTime": PAST + DAY, "limit": 5},
        False,
    ),
    "start-end-1w": ({"interval": "1w", "startTime": PAST - 28 * DAY, "endTime": PAST}, False),
    "end-1m": ({"interval": "1m", "endTime": PAST, "limit": 60}, False),
    "end-mid-bucket-1h": ({"interval": "1h", "endTime": PAST + 30 * MINUTE, "limit": 24}, False),
    "end-1M": ({"interval": "1M", "endTime": PAST - 20 * DAY, "limit": 3}, False),
    "end-in-the-forming-month-1M": ({"interval": "1M", "endTime": PAST, "limit": 2}, True),
}


@pytest.mark.parametrize(("query", "forming"), list(SPOT_QUERIES.values()), ids=list(SPOT_QUERIES))
async def test_spot_klines_are_the_exchanges_bytes(
    tmp_path: Path, query: dict[str, Any], forming: bool
) -> None:
    async with running_sim() as sim, running_service(sim, tmp_path) as service:
        body = await assert_served_as_the_exchange(
            sim, service, f"{SPOT}/klines", {"symbol": "BTCUSDT", **query}
        )
    rows = orjson.loads(body)
    assert rows, "an empty reply proves nothing"
    last_open, last_close = rows[-1][0], rows[-1][6]
    assert (last_open <= START_MS < last_close) is forming


FAPI_QUERIES = {
    "newest-1m": {"interval": "1m", "limit": 30},
    "newest-1M": {"interval": "1M", "limit": 2},
    "start-beyond-spot-limit-1m": {"interval": "1m", "startTime": PAST, "limit": 1500},
    "start-end-8h": {"interval": "8h", "startTime": PAST - 3 * DAY, "endTime": PAST},
    "end-1d": {"interval": "1d", "endTime": PAST, "limit": 7},
}


@pytest.mark.parametrize("query", list(FAPI_QUERIES.values()), ids=list(FAPI_QUERIES))
async def test_usdm_klines_are_the_exchanges_bytes(tmp_path: Path, query: dict[str, Any]) -> None:
    async with running_sim() as sim, running_service(sim, tmp_path) as service:
        body = await assert_served_as_the_exchange(
            sim, service, f"{FAPI}/klines", {"symbol": "BTCUSDT", **query}
        )
        assert orjson.loads(body)
        assert await kline_requests(sim, "binance") == 0  # asked of the USD-M venue only


@pytest.mark.parametrize(
    ("prefix", "venue"), [(SPOT, "binance"), (FAPI, "binance-usdm")], ids=["spot", "usdm"]
)
async def test_exchange_info_lists_only_the_symbols_held(
    tmp_path: Path, prefix: str, venue: str
) -> None:
    async with running_sim() as sim, running_service(sim, tmp_path) as service:
        status, before = await service.get(f"{prefix}/exchangeInfo")
        assert status == 200, before
        assert before["symbols"] == []  # nothing read, nothing tracked: nothing held
        status, _ = await service.raw(f"{prefix}/klines", symbol="BTCUSDT", interval="1h")
        assert status == 200
        status, after = await service.get(f"{prefix}/exchangeInfo")
        assert status == 200, after
        status, raw = await exchange_reply(sim, f"{prefix}/exchangeInfo", {})
        assert status == 200
    venues = orjson.loads(raw)
    listed = {s["symbol"] for s in venues["symbols"]}
    assert {"BTCUSDT", "ETHUSDT"} <= listed  # the venue lists more than candlevault holds
    held = [s for s in venues["symbols"] if s["symbol"] == "BTCUSDT"]
    assert after == {**venues, "symbols": held}  # every other field as the venue sent it
    assert after["serverTime"] == START_MS  # the venue's clock, paused


@pytest.mark.parametrize("prefix", [SPOT, FAPI], ids=["spot", "usdm"])
async def test_ping_and_time_answer_as_the_venue(tmp_path: Path, prefix: str) -> None:
    async with running_sim() as sim, running_service(sim, tmp_path) as service:
        # time first, before anything brought the venue up: still the venue's clock
        status, now = await service.get(f"{prefix}/time")
        assert status == 200, now
        assert now == {"serverTime": START_MS}
        assert now["serverTime"] == sim.world.now_ms()
        assert await service.get(f"{prefix}/ping") == (200, {})


REFUSALS = {
    "no-symbol": (SPOT, {"interval": "1m"}, -1102),
    "no-interval": (SPOT, {"symbol": "BTCUSDT"}, -1102),
    "bad-interval": (SPOT, {"symbol": "BTCUSDT", "interval": "2m"}, -1120),
    "interval-case": (SPOT, {"symbol": "BTCUSDT", "interval": "1H"}, -1120),
    "unknown-symbol": (SPOT, {"symbol": "NOPEUSDT", "interval": "1m"}, -1121),
    "lower-case-symbol": (SPOT, {"symbol": "btcusdt", "interval": "1m"}, -1100),
    "limit-0": (SPOT, {"symbol": "BTCUSDT", "interval": "1m", "limit": 0}, -1130),
    "limit-1001": (SPOT, {"symbol": "BTCUSDT", "interval": "1m", "limit": 1001}, -1130),
    "usdm-limit-0": (FAPI, {"symbol": "BTCUSDT", "interval": "1m", "limit": 0}, -1130),
    "usdm-limit-1501": (FAPI, {"symbol": "BTCUSDT", "interval": "1m", "limit": 1501}, -1130),
    "usdm-unknown-symbol": (FAPI, {"symbol": "NOPEUSDT", "interval": "1m"}, -1121),
    "start-not-digits": (SPOT, {"symbol": "BTCUSDT", "interval": "1m", "startTime": "abc"}, -1100),
    "start-negative": (SPOT, {"symbol": "BTCUSDT", "interval": "1m", "startTime": -5}, -1100),
    "limit-not-digits": (SPOT, {"symbol": "BTCUSDT", "interval": "1m", "limit": "ten"}, -1100),
}


@pytest.mark.parametrize(("prefix", "query", "code"), list(REFUSALS.values()), ids=list(REFUSALS))
async def test_klines_refuse_as_the_exchange_does(
    tmp_path: Path, prefix: str, query: dict[str, Any], code: int
) -> None:
    async with running_sim() as sim, running_service(sim, tmp_path) as service:
        status, body = await service.raw(f"{prefix}/klines", **query)
        venue = "binance" if prefix == SPOT else "binance-usdm"
        assert await kline_requests(sim, venue) == 0  # refused before any exchange work
        refusal = orjson.loads(body)
        assert (status, refusal["code"]) == (400, code), refusal
        assert set(refusal) == {"code", "msg"}
        assert isinstance(refusal["msg"], str)
        assert refusal["msg"]
        # the venue refuses the same query in the same bytes
        assert await exchange_reply(sim, f"{prefix}/klines", query) == (status, body)


async def test_a_start_after_the_end_is_empty_on_spot_and_refused_on_usdm(tmp_path: Path) -> None:
    query = {"symbol": "BTCUSDT", "interval": "1m", "startTime": PAST, "endTime": PAST - 1}
    async with running_sim() as sim, running_service(sim, tmp_path) as service:
        spot = await service.raw(f"{SPOT}/klines", **query)
        status, body = await service.raw(f"{FAPI}/klines", **query)
        assert await kline_requests(sim) == 0
        assert spot == await exchange_reply(sim, f"{SPOT}/klines", query)
    assert spot == (200, b"[]")
    assert status == 400
    assert orjson.loads(body) == {"code": -1023, "msg": "Start time is greater than end time."}


async def test_klines_answer_an_error_not_a_window_with_holes_while_the_exchange_is_down(
    tmp_path: Path,
) -> None:
    """A Binance client cannot see `complete: false`: a window candlevault could not
    fill must be refused (-1001, retry) rather than served short, and served whole once
    the exchange is back. The sim runs fast so that the failed window's backoff (one
    minute of exchange time) passes in a moment."""
    held = {"symbol": "BTCUSDT", "interval": "1m", "startTime": PAST, "limit": 10}
    wider = {**held, "limit": 20}
    async with (
        running_sim(paused=False, speed=600) as sim,
        running_service(sim, tmp_path) as service,
    ):
        await assert_served_as_the_exchange(sim, service, f"{SPOT}/klines", held)
        await sim.control("/_sim/faults", {"error_5xx": 1.0})
        status, body = await service.raw(f"{SPOT}/klines", **wider)  # 10 held, 10 not
        assert status == 503, body
        refusal = orjson.loads(body)
        assert refusal == {"code": -1001, "msg": UNAVAILABLE}
        await sim.control("/_sim/faults", {"error_5xx": 0.0})
        _, truth = await exchange_reply(sim, f"{SPOT}/klines", wider)
        assert len(orjson.loads(truth)) == 20

        async def served_whole() -> bool:
            status, body = await service.raw(f"{SPOT}/klines", **wider)
            return status == 200 and body == truth

        await eventually(served_whole)


async def test_ccxt_through_candlevault_gets_what_the_exchange_serves(tmp_path: Path) -> None:
    since, limit = PAST + 7 * MINUTE, 300
    async with running_sim() as sim, running_service(sim, tmp_path) as service:
        # candlevault's exchangeInfo lists the symbols it holds: read BTCUSDT once
        status, _ = await service.raw(f"{SPOT}/klines", symbol="BTCUSDT", interval="1m", limit=1)
        assert status == 200
        async with connected(binance_spot, sim.server.url) as direct:
            truth = await direct.exchange.fetch_ohlcv("BTC/USDT", "1m", since, limit)
        async with connected(binance_spot, service.url) as client:
            markets = await client.exchange.load_markets()
            before = await kline_requests(sim)
            first = await client.exchange.fetch_ohlcv("BTC/USDT", "1m", since, limit)
            asked = await kline_requests(sim)
            assert asked > before  # the first fetch had to reach the exchange
            again = await client.exchange.fetch_ohlcv("BTC/USDT", "1m", since, limit)
            assert await kline_requests(sim) == asked  # served from candlevault's layers
    assert list(markets) == ["BTC/USDT"]
    assert markets["BTC/USDT"] == direct.exchange.markets["BTC/USDT"]
    assert client.paths == ["/api/v3/exchangeInfo", "/api/v3/klines", "/api/v3/klines"]
    assert len(truth) == limit
    assert truth[0][0] == since
    assert first == truth
    assert again == truth
