"""The simulator's Bybit v5 market REST, over a real socket, against the recordings.

Each test serves `bybit_rest.ENDPOINTS` through the same `wrap` (limiter, faults, ledger)
that `candlevault sim` uses, from a world whose clock is paused at a fixed sim time, and
moves time only with `world.clock.step/set`.
"""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import orjson
import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

from candlevault.aggregation import aggregate
from candlevault.domain.decimals import format_units
from candlevault.domain.timeframes import D1, GridKind, civil_from_days, from_bybit_code
from candlevault.domain.times import parse_time_ms
from candlevault.domain.venues import Venue
from candlevault.simulator.bybit_rest import ENDPOINTS
from candlevault.simulator.faults import FaultSettings, MalformedKind
from candlevault.simulator.instruments import listing
from candlevault.simulator.world import SimConfig, SimWorld
from tests.contract.recorded import fixtures_dir
from tests.integration.simulator.support import app_for

START = parse_time_ms("2024-06-05T10:17:23.456Z")
MINUTE = 60_000
FORMING = START - START % MINUTE
ENVELOPE = ["retCode", "retMsg", "result", "retExtInfo", "time"]
DECIMAL = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]*[1-9])?")  # Bybit: no trailing zeros
CATEGORY_VENUE = {"spot": Venue.BYBIT_SPOT, "linear": Venue.BYBIT_LINEAR}
BYBIT_CODES = ("1", "3", "5", "15", "30", "60", "120", "240", "360", "720", "D", "W", "M")


class Bybit:
    """A client of one simulated world's Bybit endpoints."""

    def __init__(self, world: SimWorld, server: TestServer, session: ClientSession) -> None:
        self.world = world
        self._server = server
        self._session = session

    async def raw(self, path: str, **params: str | int) -> tuple[int, bytes]:
        query = {key: str(value) for key, value in params.items()}
        async with self._session.get(self._server.make_url(path), params=query) as response:
            return response.status, await response.read()

    async def get(self, path: str, **params: str | int) -> dict[str, Any]:
        status, body = await self.raw(path, **params)
        assert status == 200, body
        reply: dict[str, Any] = orjson.loads(body)
        assert list(reply) == ENVELOPE
        return reply

    async def ok(self, path: str, **params: str | int) -> dict[str, Any]:
        reply = await self.get(path, **params)
        assert (reply["retCode"], reply["retMsg"], reply["retExtInfo"]) == (0, "OK", {})
        assert reply["time"] == self.world.now_ms()
        result: dict[str, Any] = reply["result"]
        return result

    async def klines(self, **params: str | int) -> list[list[str]]:
        result = await self.ok("/v5/market/kline", **params)
        rows: list[list[str]] = result["list"]
        return rows


Serve = Callable[..., Awaitable[Bybit]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start the Bybit endpoints of a new world (SimConfig fields as keywords) on port 0."""
    async with contextlib.AsyncExitStack() as stack:

        async def start(**config: Any) -> Bybit:
            wall = config.pop("wall", None)
            world = SimWorld(
                SimConfig(start_ms=START, **config), **({"wall": wall} if wall else {})
            )
            world.clock.pause()
            app = app_for(world, ENDPOINTS)
            server = await stack.enter_async_context(TestServer(app, host="127.0.0.1", port=0))
            session = await stack.enter_async_context(ClientSession())
            return Bybit(world, server, session)

        yield start


def recorded(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((fixtures_dir() / "bybit" / "rest" / name).read_text())
    return data


def shape(value: object) -> object:
    """Keys in order and JSON types, recursively; a list by its first element."""
    if isinstance(value, dict):
        return [(key, shape(item)) for key, item in value.items()]
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


def opens(rows: list[list[str]]) -> list[int]:
    return [int(row[0]) for row in rows]


def decimals(value: object) -> list[str]:
    """Every string of a JSON value that looks like a decimal number."""
    if isinstance(value, dict):
        return [text for item in value.values() for text in decimals(item)]
    if isinstance(value, list):
        return [text for item in value for text in decimals(item)]
    return [value] if isinstance(value, str) and value[:1].isdigit() else []


def listed_ms(venue: Venue, symbol: str = "BTCUSDT") -> int:
    found = listing(venue, symbol)
    assert found is not None
    return found.listed_ms


# -- envelope and shapes ---------------------------------------------------------------


async def test_time_reports_sim_time_in_the_recorded_shape(serve: Serve) -> None:
    bybit = await serve()
    assert list(recorded("v5_market_instruments-info_linear_2026-08-09_trimmed.json")) == ENVELOPE
    result = await bybit.ok("/v5/market/time")
    assert shape(result) == shape(recorded("v5_market_time_2023-09-14.json")["result"])
    assert result == {"timeSecond": str(START // 1000), "timeNano": str(START * 1_000_000)}
    bybit.world.clock.step(1500)
    assert (await bybit.ok("/v5/market/time"))["timeSecond"] == str((START + 1500) // 1000)


@pytest.mark.parametrize("category", ["spot", "linear"])
async def test_kline_reply_has_the_recorded_shape(serve: Serve, category: str) -> None:
    bybit = await serve()
    name = f"v5_market_kline_{category}_BTCUSDT_D_2023-09-12_to_14_TESTNET.json"
    result = await bybit.ok(
        "/v5/market/kline", category=category, symbol="BTCUSDT", interval="D", limit=3
    )
    assert shape(result) == shape(recorded(name)["result"])
    assert (result["symbol"], result["category"]) == ("BTCUSDT", category)
    rows = result["list"]
    assert len(rows) == 3
    assert all(len(row) == 7 and all(isinstance(x, str) for x in row) for row in rows)
    assert all(DECIMAL.fullmatch(x) for row in rows for x in row)
    assert opens(rows) == [
        FORMING - FORMING % D1.duration_ms - i * D1.duration_ms for i in range(3)
    ]


async def test_spot_instruments_have_the_recorded_shape_and_no_cursor(serve: Serve) -> None:
    bybit = await serve()
    sample = recorded("v5_market_instruments-info_spot_2026-08-09_trimmed.json")["result"]
    result = await bybit.ok("/v5/market/instruments-info", category="spot", limit=1)
    assert list(result) == ["category", "list"] == list(sample)  # no nextPageCursor at all
    assert result["category"] == "spot"
    assert {item["symbol"] for item in result["list"]} == {"BTCUSDT", "ETHUSDT", "SOLUSDT"}
    for item in result["list"]:
        assert shape(item) == shape(sample["list"][0])
        found = listing(Venue.BYBIT_SPOT, item["symbol"])
        assert found is not None
        p = found.precision
        assert item["priceFilter"]["tickSize"] == format_units(found.tick, p.price, False)
        assert item["lotSizeFilter"]["basePrecision"] == format_units(found.step, p.base, False)
        assert all(DECIMAL.fullmatch(text) for text in decimals(item["lotSizeFilter"]))


async def test_linear_instruments_page_with_a_cursor_in_the_recorded_shape(serve: Serve) -> None:
    bybit = await serve()
    sample = recorded("v5_market_instruments-info_linear_2026-08-09_trimmed.json")["result"]
    everything = await bybit.ok("/v5/market/instruments-info", category="linear")
    assert list(everything) == ["category", "list", "nextPageCursor"] == list(sample)
    assert everything["nextPageCursor"] == ""
    paged: list[dict[str, Any]] = []
    cursor = ""
    for _ in range(5):
        page = await bybit.ok(
            "/v5/market/instruments-info", category="linear", limit=1, cursor=cursor
        )
        paged += page["list"]
        cursor = page["nextPageCursor"]
        if not cursor:
            break
    assert cursor == ""
    assert paged == everything["list"]
    assert [item["symbol"] for item in paged] == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
    for item in paged:
        assert shape(item) == shape(sample["list"][1])  # the recorded BTCUSDT
        assert item["contractType"] == "LinearPerpetual"
        assert item["launchTime"] == str(listed_ms(Venue.BYBIT_LINEAR, item["symbol"]))
    sol = paged[2]
    assert (sol["priceFilter"]["tickSize"], sol["lotSizeFilter"]["qtyStep"]) == ("0.010", "0.1")
    one = await bybit.ok("/v5/market/instruments-info", category="linear", symbol="ETHUSDT")
    assert [item["symbol"] for item in one["list"]] == ["ETHUSDT"]


# -- kline windows -----------------------------------------------------------------------


async def test_kline_values_are_the_markets_and_hours_aggregate_their_minutes(
    serve: Serve,
) -> None:
    bybit = await serve()
    market = bybit.world.market(Venue.BYBIT_SPOT, "BTCUSDT")
    assert market is not None
    p = market.listing.precision
    hour = FORMING - FORMING % 3_600_000
    minutes = await bybit.klines(
        category="spot", symbol="BTCUSDT", interval=1, start=hour - 3 * 3_600_000, end=hour - 1
    )
    assert len(minutes) == 180
    for row in minutes:
        candle = market.minute(int(row[0]))
        assert candle is not None
        expected = [candle.open, candle.high, candle.low, candle.close]
        assert row[1:5] == [format_units(x, p.price, False) for x in expected]
        assert row[5:] == [
            format_units(candle.volume, p.base, False),
            format_units(candle.quote_volume, p.quote, False),
        ]
    hours = await bybit.klines(
        category="spot", symbol="BTCUSDT", interval=60, start=hour - 3 * 3_600_000, end=hour - 1
    )
    assert opens(hours) == [hour - 3_600_000, hour - 2 * 3_600_000, hour - 3 * 3_600_000]
    for row in hours:
        inside = [
            m for m in reversed(minutes) if int(row[0]) <= int(m[0]) < int(row[0]) + 3_600_000
        ]
        traded = [m for m in inside if Decimal(m[5]) > 0]
        assert (row[1], row[4]) == (traded[0][1], traded[-1][4])
        assert Decimal(row[2]) == max(Decimal(m[2]) for m in traded)
        assert Decimal(row[3]) == min(Decimal(m[3]) for m in traded)
        assert Decimal(row[5]) == sum(Decimal(m[5]) for m in inside)
        assert Decimal(row[6]) == sum(Decimal(m[6]) for m in inside)


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        ({}, [FORMING - i * MINUTE for i in range(5)]),  # newest, the forming one first
        ({"end": FORMING - 10 * MINUTE + 30_000}, [FORMING - (10 + i) * MINUTE for i in range(5)]),
        (  # start and end with more than `limit` inside: the newest `limit` of them
            {"start": FORMING - 100 * MINUTE, "end": FORMING - 50 * MINUTE},
            [FORMING - (50 + i) * MINUTE for i in range(5)],
        ),
        (  # start alone: the oldest `limit` from start, newest first
            {"start": FORMING - 100 * MINUTE},
            [FORMING - (96 + i) * MINUTE for i in range(5)],
        ),
        (  # an unaligned start includes the candle that contains it
            {"start": FORMING - 100 * MINUTE + 30_000},
            [FORMING - (96 + i) * MINUTE for i in range(5)],
        ),
        (  # both bounds inclusive
            {"start": FORMING - 3 * MINUTE, "end": FORMING - MINUTE},
            [FORMING - MINUTE, FORMING - 2 * MINUTE, FORMING - 3 * MINUTE],
        ),
        ({"start": START + MINUTE}, []),  # the future
        ({"end": listed_ms(Venue.BYBIT_SPOT) - 1}, []),  # before the listing
        (  # a window over the listing starts at the listing
            {"start": listed_ms(Venue.BYBIT_SPOT) - 7 * MINUTE, "limit": 3},
            [listed_ms(Venue.BYBIT_SPOT) + i * MINUTE for i in (2, 1, 0)],
        ),
    ],
)
async def test_kline_window_follows_bybit(
    serve: Serve, window: dict[str, int], expected: list[int]
) -> None:
    bybit = await serve()
    params: dict[str, str | int] = {"limit": 5, **window}
    rows = await bybit.klines(category="spot", symbol="BTCUSDT", interval=1, **params)
    assert opens(rows) == expected


@pytest.mark.parametrize(("code", "span"), [("60", 3_600_000), ("D", 86_400_000)])
@pytest.mark.parametrize("with_end", [False, True])
async def test_an_unaligned_start_includes_the_candle_that_contains_it(
    serve: Serve, code: str, span: int, with_end: bool
) -> None:
    bybit = await serve()
    first = FORMING - FORMING % span - 5 * span
    window: dict[str, str | int] = {"start": first + 17 * MINUTE}
    if with_end:
        window["end"] = first + 2 * span + 1
    rows = await bybit.klines(category="spot", symbol="ETHUSDT", interval=code, limit=3, **window)
    assert opens(rows) == [first + 2 * span, first + span, first]


async def test_kline_limit_defaults_to_200_and_accepts_1000(serve: Serve) -> None:
    bybit = await serve()
    assert len(await bybit.klines(category="linear", symbol="ETHUSDT", interval=1)) == 200
    rows = await bybit.klines(category="linear", symbol="ETHUSDT", interval=5, limit=1000)
    assert opens(rows) == [FORMING - FORMING % 300_000 - i * 300_000 for i in range(1000)]


async def test_the_forming_candle_holds_the_trades_so_far_and_then_closes(
    serve: Serve,
) -> None:
    bybit = await serve()
    market = bybit.world.market(Venue.BYBIT_LINEAR, "BTCUSDT")
    assert market is not None
    p = market.listing.precision
    trades = market.trades(FORMING)

    def volume_by(now_ms: int) -> str:
        done = sum(t.qty for t in trades if t.time_ms <= now_ms)
        return format_units(done, p.base, False)

    assert volume_by(START) != volume_by(FORMING + MINUTE)  # trades are still to come
    query: dict[str, str | int] = {"category": "linear", "symbol": "BTCUSDT", "interval": 1}
    before = await bybit.klines(**query, limit=3)
    bybit.world.clock.step(20_000)
    during = await bybit.klines(**query, limit=3)
    assert opens(during) == opens(before) == [FORMING, FORMING - MINUTE, FORMING - 2 * MINUTE]
    assert during[1:] == before[1:]  # closed candles do not change
    assert (before[0][5], during[0][5]) == (volume_by(START), volume_by(START + 20_000))
    bybit.world.clock.set(FORMING + MINUTE)
    after = await bybit.klines(**query, limit=3)
    assert opens(after) == [FORMING + MINUTE, FORMING, FORMING - MINUTE]
    closed = market.minute(FORMING)
    assert closed is not None
    assert after[1][4:6] == [
        format_units(closed.close, p.price, False),
        volume_by(FORMING + MINUTE),
    ]


@pytest.mark.parametrize("code", ["15", "120", "720", "D", "W", "M"])
async def test_a_forming_candle_is_the_aggregation_of_its_minutes_so_far(
    serve: Serve, code: str
) -> None:
    bybit = await serve()
    now = parse_time_ms("2024-05-31T21:47:13.500Z")  # late in a day, a week and a month
    bybit.world.clock.set(now)
    tf = from_bybit_code(code)
    (row,) = await bybit.klines(category="spot", symbol="ETHUSDT", interval=code, limit=1)
    view = bybit.world.view(Venue.BYBIT_SPOT, "ETHUSDT")
    assert view is not None
    market = view.market
    minutes = [*market.candles(tf.bucket_open(now), now - now % MINUTE - 1)]
    live = market.forming(now - now % MINUTE, now)
    assert live is not None
    (expected,) = aggregate([*minutes, live], tf, inception_ms=market.listing.listed_ms)
    p = market.listing.precision
    assert row == [
        str(tf.bucket_open(now)),
        *(format_units(x, p.price, False) for x in (expected.open, expected.high)),
        *(format_units(x, p.price, False) for x in (expected.low, expected.close)),
        format_units(expected.volume, p.base, False),
        format_units(expected.quote_volume, p.quote, False),
    ]


@pytest.mark.parametrize("code", BYBIT_CODES)
async def test_each_bybit_interval_code_maps_to_its_grid(serve: Serve, code: str) -> None:
    bybit = await serve()
    rows = await bybit.klines(category="spot", symbol="SOLUSDT", interval=code, limit=3)
    tf = from_bybit_code(code)
    found = opens(rows)
    assert found[0] == tf.bucket_open(START)
    if tf.kind is GridKind.MONTH:
        assert [civil_from_days(t // D1.duration_ms)[2] for t in found] == [1, 1, 1]
    else:
        assert found[0] - found[1] == found[1] - found[2] == tf.duration_ms


@pytest.mark.parametrize("code", ["480", "4320", "8h", "1m", "d", ""])
async def test_interval_codes_bybit_lacks_are_refused(serve: Serve, code: str) -> None:
    bybit = await serve()
    reply = await bybit.get("/v5/market/kline", category="spot", symbol="BTCUSDT", interval=code)
    assert reply == {
        "retCode": 10001,
        "retMsg": "Invalid period!",
        "result": {},
        "retExtInfo": {},
        "time": START,
    }


# -- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "params", "message", "result"),
    [
        ("kline", {"category": "spot", "symbol": "NOPEUSDT"}, "Not supported symbols", {}),
        ("kline", {"category": "spot", "symbol": "btcusdt"}, "Not supported symbols", {}),
        ("kline", {"category": "spot", "symbol": "NEOETH"}, "Not supported symbols", {}),
        ("kline", {"category": "inverse", "symbol": "BTCUSD"}, "Not supported symbols", {}),
        ("kline", {"category": "option"}, "params error: Category is invalid", {}),
        ("kline", {"limit": 0}, "params error: limit invalid", {}),
        ("kline", {"limit": 1001}, "params error: limit invalid", {}),
        ("kline", {"limit": "ten"}, "params error: limit invalid", {}),
        ("kline", {"start": "2024-06-01"}, "params error: start invalid", {}),
        ("kline", {"end": -5}, "params error: end invalid", {}),
        (
            "recent-trade",
            {"category": "linear", "symbol": "NOPEUSDT"},
            "params error: symbol invalid",
            {"category": "", "list": []},
        ),
        ("recent-trade", {"category": None}, "params error: Category is invalid", {}),
        ("recent-trade", {"category": "spot", "limit": 61}, "params error: limit invalid", {}),
        ("recent-trade", {"limit": 1001}, "params error: limit invalid", {}),
        ("instruments-info", {"category": "swap"}, "params error: Category is invalid", {}),
    ],
)
async def test_errors_are_http_200_with_a_retcode(
    serve: Serve, path: str, params: dict[str, str | int | None], message: str, result: object
) -> None:
    bybit = await serve()
    given = {"category": "linear", "symbol": "BTCUSDT", "interval": "60", **params}
    query = {key: value for key, value in given.items() if value is not None}
    reply = await bybit.get(f"/v5/market/{path}", **query)
    assert reply == {
        "retCode": 10001,
        "retMsg": message,
        "result": result,
        "retExtInfo": {},
        "time": START,
    }


# -- recent trades ----------------------------------------------------------------------


def quiet_minute(bybit: Bybit, venue: Venue, symbol: str, most: int) -> int:
    """Return the first minute from START whose trades number 1 to `most`."""
    market = bybit.world.market(venue, symbol)
    assert market is not None
    for t in range(FORMING, FORMING + 1440 * MINUTE, MINUTE):
        candle = market.minute(t)
        if candle is not None and 0 < (candle.trades or 0) <= most:
            return t
    raise AssertionError("no quiet minute within a day")


@pytest.mark.parametrize(
    ("category", "symbol", "most"), [("spot", "SOLUSDT", 60), ("linear", "BTCUSDT", 1000)]
)
async def test_recent_trades_are_the_markets_and_a_minute_sums_to_its_kline(
    serve: Serve, category: str, symbol: str, most: int
) -> None:
    bybit = await serve()
    venue = CATEGORY_VENUE[category]
    minute = quiet_minute(bybit, venue, symbol, most)
    bybit.world.clock.set(minute + MINUTE)  # that minute just closed
    result = await bybit.ok("/v5/market/recent-trade", category=category, symbol=symbol)
    assert list(result) == ["category", "list"]
    assert result["category"] == category
    rows = result["list"]
    assert len(rows) == (60 if category == "spot" else 500)  # the default limits
    assert [int(row["time"]) for row in rows] == sorted(
        (int(row["time"]) for row in rows), reverse=True
    )
    market = bybit.world.market(venue, symbol)
    assert market is not None
    trades = list(reversed(market.trades(minute)))
    inside = [row for row in rows if minute <= int(row["time"]) < minute + MINUTE]
    assert len(inside) == len(trades)
    p = market.listing.precision
    for row, trade in zip(inside, trades, strict=True):
        assert Decimal(row["price"]) == Decimal(format_units(trade.price, p.price))
        assert Decimal(row["size"]) == Decimal(format_units(trade.qty, p.base))
        assert row["side"] == ("Sell" if trade.buyer_is_maker else "Buy")
        assert row["time"] == str(trade.time_ms)
    (kline,) = await bybit.klines(
        category=category, symbol=symbol, interval=1, start=minute, end=minute
    )
    assert Decimal(kline[5]) == sum(Decimal(row["size"]) for row in inside)
    bought = sum(Decimal(row["size"]) for row in inside if row["side"] == "Buy")
    candle = market.minute(minute)
    assert candle is not None
    assert candle.taker_buy_base is not None
    assert bought == Decimal(format_units(candle.taker_buy_base, p.base))


async def test_recent_trade_rows_are_formatted_as_each_category_sends_them(serve: Serve) -> None:
    bybit = await serve()
    spot = await bybit.ok("/v5/market/recent-trade", category="spot", symbol="BTCUSDT", limit=5)
    linear = await bybit.ok("/v5/market/recent-trade", category="linear", symbol="SOLUSDT")
    keys = [
        "execId",
        "symbol",
        "price",
        "size",
        "side",
        "time",
        "isBlockTrade",
        "isRPITrade",
        "seq",
    ]
    for row in spot["list"] + linear["list"]:
        assert list(row) == keys
        assert (row["isBlockTrade"], row["isRPITrade"]) == (False, False)
        assert int(row["time"]) <= START
    assert (len(spot["list"]), len(linear["list"])) == (5, 500)
    assert all(row["execId"].isdigit() for row in spot["list"])
    assert all(DECIMAL.fullmatch(row["price"]) for row in spot["list"])
    # linear writes the contract's full scale, as the recorded publicTrade frames do
    assert all(re.fullmatch(r"[0-9]+\.[0-9]{3}", row["price"]) for row in linear["list"])
    assert all(re.fullmatch(r"[0-9]+\.[0-9]", row["size"]) for row in linear["list"])


async def test_linear_exec_ids_are_uuids_stable_across_worlds_of_one_seed(serve: Serve) -> None:
    first, second, other = await serve(seed=7), await serve(seed=7), await serve(seed=8)
    query: dict[str, str | int] = {"category": "linear", "symbol": "ETHUSDT", "limit": 1000}
    ids = [row["execId"] for row in (await first.ok("/v5/market/recent-trade", **query))["list"]]
    assert all(uuid.UUID(text).version == 5 and str(uuid.UUID(text)) == text for text in ids)
    assert len(set(ids)) == len(ids) == 1000
    again = await second.ok("/v5/market/recent-trade", **query)
    assert [row["execId"] for row in again["list"]] == ids
    elsewhere = await other.ok("/v5/market/recent-trade", **query)
    assert [row["execId"] for row in elsewhere["list"]] != ids


# -- limits, faults, ledger -----------------------------------------------------------------


class Wall:
    """A wall clock the test moves (rate limits run in wall time)."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_past_the_ip_limit_bybit_answers_403_until_the_lockout_ends(serve: Serve) -> None:
    wall = Wall()
    bybit = await serve(bybit_requests_per_5s=3, bybit_lockout_s=60.0, wall=wall)
    query: dict[str, str | int] = {"category": "spot", "symbol": "BTCUSDT", "interval": 1}
    for _ in range(3):
        assert (await bybit.raw("/v5/market/kline", **query))[0] == 200
    assert await bybit.raw("/v5/market/time") == (403, b"403, access too frequent")
    wall.now += 10  # past the 5 s window, still locked out
    assert (await bybit.raw("/v5/market/kline", **query))[0] == 403
    wall.now += 51  # the lock-out is over: served again
    assert (await bybit.raw("/v5/market/kline", **query))[0] == 200
    venues = bybit.world.stats.snapshot()["venues"]
    assert venues["bybit-spot"]["status"]["403"] == 1
    assert venues["bybit-linear"]["status"]["403"] == 1  # /v5/market/time
    assert venues["bybit-spot"]["status"]["200"] == 4


@pytest.mark.parametrize("kind", ["field_count", "non_numeric", "off_grid"])
async def test_a_malformed_fault_breaks_one_kline_row_and_clears(
    serve: Serve, kind: MalformedKind
) -> None:
    faulty = await serve(faults=FaultSettings(malformed=1.0, malformed_kinds=(kind,)))
    clean = await serve()
    query: dict[str, str | int] = {
        "category": "spot",
        "symbol": "ETHUSDT",
        "interval": 1,
        "limit": 20,
    }
    broken, good = await faulty.klines(**query), await clean.klines(**query)
    (i,) = [j for j, (a, b) in enumerate(zip(broken, good, strict=True)) if a != b]
    if kind == "field_count":
        assert broken[i] == good[i][:6]
    elif kind == "non_numeric":
        assert broken[i] == [*good[i][:4], "NaN", *good[i][5:]]
    else:
        assert broken[i] == [str(int(good[i][0]) + 30_000), *good[i][1:]]
    trades = await faulty.ok("/v5/market/recent-trade", category="spot", symbol="ETHUSDT")
    assert trades == await clean.ok("/v5/market/recent-trade", category="spot", symbol="ETHUSDT")
    faulty.world.faults.update({"malformed": 0.0})
    assert await faulty.klines(**query) == good


async def test_the_ledger_counts_requests_and_rows_per_category(serve: Serve) -> None:
    bybit = await serve()
    await bybit.klines(category="spot", symbol="BTCUSDT", interval=1, limit=7)
    await bybit.klines(category="linear", symbol="BTCUSDT", interval="D", limit=5)
    await bybit.klines(symbol="BTCUSDT", interval="W", limit=2)  # category defaults to linear
    await bybit.get("/v5/market/kline", category="spot", symbol="NOPE", interval=1)
    await bybit.ok("/v5/market/recent-trade", category="spot", symbol="BTCUSDT")
    venues = bybit.world.stats.snapshot()["venues"]
    spot, linear = venues["bybit-spot"], venues["bybit-linear"]
    assert spot["requests"] == {"/v5/market/kline": 2, "/v5/market/recent-trade": 1}
    assert (spot["candles"], spot["weight"]) == (7, 3)
    assert linear["requests"] == {"/v5/market/kline": 2}
    assert (linear["candles"], linear["weight"]) == (7, 2)
