"""Bad input and an unreachable exchange at the v1 candles endpoint, over real HTTP.

Every refusal is a 4xx with a message that names what was wrong, never a 500: domain
errors answer `{"detail": "<message>"}` (400 malformed, 404 unknown), FastAPI's own
validation answers 422 naming the parameter. With the exchange failing every request,
a read of minutes candlevault does not hold degrades to what it holds (200, the missing
span listed) and completes once the exchange is back; a symbol on a venue whose symbol
list was never fetched cannot be judged at all (503), and is served once it is back.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from candlevault.domain.times import parse_time_ms
from tests.integration.api.service import Service, running_service
from tests.integration.api.test_candles import CANDLES, MINUTE, kline_requests, sim_klines
from tests.integration.exchanges.venues import running_sim
from tests.support.waiting import eventually

PAST = parse_time_ms("2024-01-10T00:00:00Z")  # days before the sim's now: all closed
ALL_FAILING = {"error_5xx": 1.0}  # every REST request to every venue answers 5xx
HEALED = {"error_5xx": 0.0}


@dataclass(frozen=True)
class Refusal:
    """A bad request, the status it gets and a word its message must quote."""

    symbol: str
    timeframe: str
    query: dict[str, Any]
    status: int
    mention: str
    costs_no_klines: bool = True  # refused before any kline request reaches the exchange


REFUSALS = {
    "unknown-timeframe": Refusal("BTCUSDT", "7m", {}, 400, "7m"),
    "timeframe-case": Refusal("BTCUSDT", "1H", {}, 400, "1H"),
    "8h-on-bybit": Refusal("BTCUSDT", "8h", {"venue": "bybit-spot"}, 400, "bybit-spot"),
    "unknown-venue": Refusal("BTCUSDT", "1m", {"venue": "nowhere"}, 404, "nowhere"),
    "symbol-not-listed": Refusal("NOPEUSDT", "1m", {}, 404, "NOPEUSDT"),
    "symbol-with-a-dot": Refusal("BTC.USDT", "1m", {}, 400, "BTC.USDT"),
    "symbol-with-a-space": Refusal("BTC USDT", "1m", {}, 400, "BTC USDT"),
    "symbol-too-long": Refusal("A" * 33, "1m", {}, 400, "A" * 33),
    "bad-start-date": Refusal("BTCUSDT", "1m", {"start_time": "yesterday"}, 400, "yesterday"),
    "bad-end-date": Refusal("BTCUSDT", "1m", {"end_time": "2024-13-01"}, 400, "2024-13-01"),
    "start-after-end": Refusal(
        "BTCUSDT",
        "1m",
        {"start_time": "2024-01-10T00:00:00Z", "end_time": "2024-01-09T00:00:00Z"},
        400,
        "start_time <= end_time",
    ),
}

# id: (query, the parameter FastAPI names)
INVALID: dict[str, tuple[dict[str, Any], str]] = {
    "limit-0": ({"limit": 0}, "limit"),
    "limit-1501": ({"limit": 1501}, "limit"),
    "limit-not-a-number": ({"limit": "abc"}, "limit"),
    "unknown-cache-strategy": ({"cache_strategy": "sometimes"}, "cache_strategy"),
}


@pytest.mark.parametrize("case", list(REFUSALS.values()), ids=list(REFUSALS))
async def test_bad_input_is_refused_with_a_message(tmp_path: Path, case: Refusal) -> None:
    async with running_sim() as sim, running_service(sim, tmp_path) as service:
        status, body = await service.get(CANDLES.format(case.symbol, case.timeframe), **case.query)
        if case.costs_no_klines:
            assert await kline_requests(sim) == 0
    assert status == case.status, body
    assert set(body) == {"detail"}
    assert isinstance(body["detail"], str)
    assert case.mention in body["detail"]


@pytest.mark.parametrize(("query", "name"), list(INVALID.values()), ids=list(INVALID))
async def test_invalid_parameters_answer_422_naming_them(
    tmp_path: Path, query: dict[str, Any], name: str
) -> None:
    async with running_sim() as sim, running_service(sim, tmp_path) as service:
        status, body = await service.get(CANDLES.format("BTCUSDT", "1m"), **query)
        assert await kline_requests(sim) == 0
    assert status == 422, body
    [error] = body["detail"]
    assert error["loc"] == ["query", name]
    assert error["msg"]


async def test_a_symbol_is_upper_cased_not_refused(tmp_path: Path) -> None:
    """`parse_symbol` normalises case, so `btcusdt` reads BTCUSDT (the Binance-compatible
    endpoints refuse it with -1100, as Binance does)."""
    query = {"start_time": str(PAST), "limit": 5}
    async with running_sim() as sim, running_service(sim, tmp_path) as service:
        status, lower = await service.get(CANDLES.format("btcusdt", "1m"), **query)
        assert status == 200, lower
        _, upper = await service.get(CANDLES.format("BTCUSDT", "1m"), **query)
    assert lower["symbol"] == "BTCUSDT"
    assert lower["candles"] == upper["candles"]
    assert len(lower["candles"]) == 5


async def test_a_slash_in_the_symbol_is_no_route(tmp_path: Path) -> None:
    """`BTC/USDT`, even escaped, is two path segments: no such route (404, not 500)."""
    async with running_sim() as sim, running_service(sim, tmp_path) as service:
        status, body = await service.get(CANDLES.format("BTC%2FUSDT", "1m"))
        assert await kline_requests(sim) == 0
    assert (status, body) == (404, {"detail": "Not Found"})


async def read(service: Service, start_ms: int, limit: int) -> dict[str, Any]:
    """Read BTCUSDT 1m from `start_ms` (a window in the past); fail unless it is a 200."""
    status, body = await service.get(
        CANDLES.format("BTCUSDT", "1m"), start_time=str(start_ms), limit=limit
    )
    assert status == 200, body
    assert isinstance(body, dict)
    return body


async def test_exchange_down_serves_what_is_held_then_completes_when_back(
    tmp_path: Path,
) -> None:
    """The sim runs fast so that the failed span's backoff (one minute of exchange
    time) passes in a moment once the exchange is back."""
    async with (
        running_sim(paused=False, speed=600) as sim,
        running_service(sim, tmp_path) as service,
    ):
        truth = await sim_klines(sim, symbol="BTCUSDT", interval="1m", startTime=PAST, limit=20)
        held = await read(service, PAST, 10)
        assert held["complete"] is True
        await sim.control("/_sim/faults", ALL_FAILING)
        degraded = await read(service, PAST, 20)  # 10 minutes held, 10 not
        await sim.control("/_sim/faults", HEALED)

        async def completed() -> dict[str, Any]:
            body = await read(service, PAST, 20)
            assert body["complete"] is True, body["missing"]
            return body

        healed = await eventually(completed)
    assert degraded["candles"] == [row[:11] for row in truth[:10]]
    assert degraded["complete"] is False
    assert degraded["missing"] == [[PAST + 10 * MINUTE, PAST + 20 * MINUTE]]
    assert "exchange" not in degraded["layers"]  # it answered nothing
    assert any(w.startswith("exchange unavailable") for w in degraded["warnings"])
    assert degraded["end_time"] == PAST + 19 * MINUTE  # the window asked, not what was found
    assert healed["candles"] == [row[:11] for row in truth]
    assert healed["missing"] == []


async def test_exchange_down_for_a_venue_never_listed_answers_503_then_recovers(
    tmp_path: Path,
) -> None:
    """Without the venue's symbol list candlevault cannot tell a listed symbol from a
    typo, nor its decimals: 503 with the reason; the list is asked again next time."""
    async with running_sim() as sim, running_service(sim, tmp_path) as service:
        await sim.control("/_sim/faults", ALL_FAILING)
        path = CANDLES.format("BTCUSDT", "1m")
        status, refused = await service.get(path, start_time=str(PAST), limit=10)
        assert await kline_requests(sim) == 0
        await sim.control("/_sim/faults", HEALED)
        healed = await read(service, PAST, 10)
        truth = await sim_klines(sim, symbol="BTCUSDT", interval="1m", startTime=PAST, limit=10)
    assert status == 503, refused
    assert set(refused) == {"detail"}
    assert "exchangeInfo" in refused["detail"]
    assert healed["complete"] is True
    assert healed["candles"] == [row[:11] for row in truth]
