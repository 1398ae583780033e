"""The simulator's Binance spot and USD-M REST, over a real socket, against the recordings.

Shapes are compared with the real replies in ../shared/fixtures/binance/rest/ (keys,
their order, JSON types, decimal formats); paging, trade views and limits are checked
against the simulator's own ground truth (`KlineView.window`, the market's trades).
"""

from __future__ import annotations

import itertools
import re
from decimal import Decimal
from typing import Any

import orjson
import pytest

from candlevault.domain.candles import kline_row
from candlevault.domain.timeframes import parse_timeframe
from candlevault.domain.times import parse_time_ms
from candlevault.domain.venues import Venue
from candlevault.simulator.instruments import listing
from tests.contract.recorded import fixtures_dir
from tests.integration.simulator.conftest import BinanceSim, StartBinance

MINUTE = 60_000
HOUR = 3_600_000
EIGHT_DECIMALS = re.compile(r"[0-9]+\.[0-9]{8}")
SPOT_DECIMAL_FIELDS = (1, 2, 3, 4, 5, 7, 9, 10)


def recorded(name: str) -> Any:
    return orjson.loads((fixtures_dir() / "binance" / "rest" / name).read_bytes())


def types_of(value: Any) -> Any:
    """The JSON shape of a value: key order and types, recursively (lists by first item)."""
    if isinstance(value, dict):
        return [(k, types_of(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [types_of(value[0])] if value else []
    return type(value).__name__


def minute_of(ms: int) -> int:
    return ms - ms % MINUTE


def ground_truth(
    sim: BinanceSim, venue: Venue, symbol: str, interval: str, **window: int | None
) -> list[list[int | str]]:
    """The rows a klines reply must hold: KlineView's candles written with `kline_row`."""
    view = sim.world.view(venue, symbol)
    assert view is not None
    candles = view.window(parse_timeframe(interval), now_ms=sim.world.now_ms(), **window)
    return [kline_row(c, view.market.listing.precision) for c in candles]


# -- shapes ----------------------------------------------------------------------------


async def test_ping_and_time_answer_like_binance(binance_sim: BinanceSim) -> None:
    for prefix in ("/api/v3", "/fapi/v1"):
        assert await binance_sim.json(f"{prefix}/ping") == {}
        served = await binance_sim.json(f"{prefix}/time")
        assert types_of(served) == types_of(recorded("api_v3_time_2021-10-10.json"))
        assert served == {"serverTime": binance_sim.world.now_ms()}
    binance_sim.world.clock.step(90_000)
    assert await binance_sim.json("/api/v3/time") == {"serverTime": binance_sim.world.now_ms()}


async def test_spot_kline_rows_have_the_recorded_shape(binance_sim: BinanceSim) -> None:
    real = recorded("api_v3_klines_BTCUSDT_1h_2024-01-15.json")
    for interval in ("1m", "1h"):
        rows = await binance_sim.json(
            "/api/v3/klines", {"symbol": "BTCUSDT", "interval": interval, "limit": 10}
        )
        assert len(rows) == 10
        for row in rows:
            assert types_of(row) == types_of(real[0])
            assert all(EIGHT_DECIMALS.fullmatch(row[i]) for i in SPOT_DECIMAL_FIELDS), row
            assert row[11] == "0"
            assert row[6] == row[0] + parse_timeframe(interval).duration_ms - 1


async def test_usdm_kline_rows_are_written_at_the_contract_precision(
    binance_sim: BinanceSim,
) -> None:
    for symbol, price, base in (("BTCUSDT", 2, 3), ("SOLUSDT", 4, 0)):
        rows = await binance_sim.json(
            "/fapi/v1/klines", {"symbol": symbol, "interval": "1m", "limit": 5}
        )
        assert len(rows) == 5
        for row in rows:
            assert [type(v) for v in row] == [int, *[str] * 5, int, str, int, str, str, str]
            for i, scale in ((1, price), (4, price), (5, base), (7, price + base)):
                assert re.fullmatch(rf"[0-9]+\.[0-9]{{{scale}}}" if scale else "[0-9]+", row[i])
        view = binance_sim.world.view(Venue.BINANCE_USDM, symbol)
        assert view is not None
        assert rows == ground_truth(
            binance_sim, Venue.BINANCE_USDM, symbol, "1m", start_ms=None, end_ms=None, limit=5
        )


async def test_agg_trades_and_trades_have_the_recorded_shapes(binance_sim: BinanceSim) -> None:
    spot_agg = recorded("api_v3_aggTrades_BTCUSDT_2021-10-22.json")
    trades = recorded("api_v3_trades_BTCUSDT_2021-10-22.json")
    served = await binance_sim.json("/api/v3/aggTrades", {"symbol": "BTCUSDT", "limit": 20})
    assert len(served) == 20
    assert {orjson.dumps(types_of(a)) for a in served} == {orjson.dumps(types_of(spot_agg[0]))}
    assert all(
        EIGHT_DECIMALS.fullmatch(a["p"]) and EIGHT_DECIMALS.fullmatch(a["q"]) for a in served
    )
    usdm = await binance_sim.json("/fapi/v1/aggTrades", {"symbol": "BTCUSDT", "limit": 20})
    assert [list(a) for a in usdm] == [["a", "p", "q", "f", "l", "T", "m"]] * 20
    assert all(re.fullmatch(r"[0-9]+\.[0-9]{2}", a["p"]) for a in usdm)
    assert all(re.fullmatch(r"[0-9]+\.[0-9]{3}", a["q"]) for a in usdm)
    served = await binance_sim.json("/api/v3/trades", {"symbol": "BTCUSDT", "limit": 20})
    assert {orjson.dumps(types_of(t)) for t in served} == {orjson.dumps(types_of(trades[0]))}
    for t in served:
        assert Decimal(t["quoteQty"]) == Decimal(t["price"]) * Decimal(t["qty"])
        assert all(EIGHT_DECIMALS.fullmatch(t[k]) for k in ("price", "qty", "quoteQty"))


async def test_spot_exchange_info_matches_the_recording_key_for_key(
    binance_sim: BinanceSim,
) -> None:
    real = recorded("api_v3_exchangeInfo_BTCUSDT_ETHUSDT_2021-10-22.json")
    served = await binance_sim.json("/api/v3/exchangeInfo")
    assert list(served) == list(real)
    assert served["serverTime"] == binance_sim.world.now_ms()
    weight, *others = served["rateLimits"]
    assert weight == {**real["rateLimits"][0], "limit": 6000}
    assert others == real["rateLimits"][1:]
    assert [s["symbol"] for s in served["symbols"]] == ["BTCUSDT", "ETHUSDT", "SOLUSDT", "NEOETH"]
    real_filters = {f["filterType"]: types_of(f) for f in real["symbols"][0]["filters"]}
    for symbol in served["symbols"]:
        assert types_of({**symbol, "filters": []}) == types_of(
            {**real["symbols"][0], "filters": []}
        )
        assert [f["filterType"] for f in symbol["filters"]] == list(real_filters)
        assert {f["filterType"]: types_of(f) for f in symbol["filters"]} == real_filters
        for f in symbol["filters"]:
            for key, value in f.items():
                if isinstance(value, str) and key not in ("filterType", "multiplierUp",
                                                          "multiplierDown"):  # fmt: skip
                    assert EIGHT_DECIMALS.fullmatch(value), (symbol["symbol"], key, value)
    btc = served["symbols"][0]
    price_filter, _, lot_size, *_ = btc["filters"]
    assert (price_filter["tickSize"], lot_size["stepSize"]) == ("0.01000000", "0.00001000")
    assert (btc["baseAsset"], btc["quoteAsset"], btc["status"]) == ("BTC", "USDT", "TRADING")


async def test_spot_exchange_info_filters_by_symbol_or_symbols(binance_sim: BinanceSim) -> None:
    one = await binance_sim.json("/api/v3/exchangeInfo", {"symbol": "ETHUSDT"})
    assert [s["symbol"] for s in one["symbols"]] == ["ETHUSDT"]
    two = await binance_sim.json("/api/v3/exchangeInfo", {"symbols": '["NEOETH","BTCUSDT"]'})
    assert [s["symbol"] for s in two["symbols"]] == ["NEOETH", "BTCUSDT"]
    for params in ({"symbol": "FOOUSDT"}, {"symbols": '["BTCUSDT","FOOUSDT"]'}):
        response = await binance_sim.get("/api/v3/exchangeInfo", params)
        assert (response.status, response.body) == (
            400,
            b'{"code":-1121,"msg":"Invalid symbol."}',
        )


async def test_usdm_exchange_info_matches_the_recording_key_for_key(
    binance_sim: BinanceSim,
) -> None:
    real = recorded("fapi_v1_exchangeInfo_2022-02-19.json")
    served = await binance_sim.json("/fapi/v1/exchangeInfo")
    assert list(served) == list(real)
    assert types_of(served["assets"]) == types_of(real["assets"])
    assert served["rateLimits"] == [
        {**real["rateLimits"][0], "limit": 2400},
        *real["rateLimits"][1:],
    ]
    assert [s["symbol"] for s in served["symbols"]] == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
    real_symbol = real["symbols"][0]
    for symbol in served["symbols"]:
        assert types_of({**symbol, "filters": []}) == types_of({**real_symbol, "filters": []})
        assert types_of(symbol["filters"]) == types_of(real_symbol["filters"])
        assert [types_of(f) for f in symbol["filters"]] == [
            types_of(f) for f in real_symbol["filters"]
        ]
        found = listing(Venue.BINANCE_USDM, symbol["symbol"])
        assert found is not None
        assert symbol["contractType"] == "PERPETUAL"
        assert symbol["onboardDate"] == found.listed_ms
        assert symbol["marginAsset"] == "USDT"
        assert (symbol["pricePrecision"], symbol["quantityPrecision"]) == (
            found.precision.price,
            found.precision.base,
        )
        notional = [f for f in symbol["filters"] if f["filterType"] == "MIN_NOTIONAL"]
        assert list(notional[0]) == ["notional", "filterType"]
    btc = served["symbols"][0]
    assert (btc["filters"][0]["tickSize"], btc["filters"][1]["stepSize"]) == ("0.10", "0.001")


async def test_a_symbol_exists_only_from_its_listing_on(binance_sim_factory: StartBinance) -> None:
    sim = await binance_sim_factory(start_ms=parse_time_ms("2019-06-01T00:00Z"))
    spot = await sim.json("/api/v3/exchangeInfo")
    assert [s["symbol"] for s in spot["symbols"]] == ["BTCUSDT", "ETHUSDT", "NEOETH"]
    assert (await sim.json("/fapi/v1/exchangeInfo"))["symbols"] == []
    response = await sim.get("/fapi/v1/klines", {"symbol": "BTCUSDT", "interval": "1m"})
    assert response.status == 400
    assert orjson.loads(response.body)["code"] == -1121


# -- kline paging ----------------------------------------------------------------------


async def test_an_unaligned_start_time_starts_at_the_next_open(binance_sim: BinanceSim) -> None:
    aligned = minute_of(binance_sim.world.now_ms()) - 300 * MINUTE
    for start, first in ((aligned, aligned), (aligned + 1, aligned + MINUTE),
                         (aligned - 1, aligned)):  # fmt: skip
        rows = await binance_sim.json(
            "/api/v3/klines", {"symbol": "BTCUSDT", "interval": "1m", "startTime": start,
                               "limit": 3},
        )  # fmt: skip
        assert [r[0] for r in rows] == [first, first + MINUTE, first + 2 * MINUTE]
    hour = aligned - aligned % HOUR - 5 * HOUR
    rows = await binance_sim.json(
        "/api/v3/klines", {"symbol": "BTCUSDT", "interval": "1h", "startTime": hour + 1,
                           "limit": 2},
    )  # fmt: skip
    assert [r[0] for r in rows] == [hour + HOUR, hour + 2 * HOUR]


async def test_end_time_bounds_the_open_time_inclusively(binance_sim: BinanceSim) -> None:
    start = minute_of(binance_sim.world.now_ms()) - 100 * MINUTE
    query = {"symbol": "BTCUSDT", "interval": "1m", "startTime": start}
    rows = await binance_sim.json("/api/v3/klines", {**query, "endTime": start + 9 * MINUTE})
    assert [r[0] for r in rows] == [start + i * MINUTE for i in range(10)]
    rows = await binance_sim.json("/api/v3/klines", {**query, "endTime": start + 9 * MINUTE - 1})
    assert len(rows) == 9
    rows = await binance_sim.json("/api/v3/klines", {**query, "endTime": start + 9 * MINUTE,
                                                     "limit": 4})  # fmt: skip
    assert [r[0] for r in rows] == [start + i * MINUTE for i in range(4)]


async def test_limit_defaults_to_500_and_pages_join_without_gap_or_overlap(
    binance_sim: BinanceSim,
) -> None:
    start = minute_of(binance_sim.world.now_ms()) - 3000 * MINUTE + 17
    query = {"symbol": "BTCUSDT", "interval": "1m"}
    whole = await binance_sim.json("/api/v3/klines", {**query, "startTime": start})
    assert len(whole) == 500
    pages: list[list[Any]] = []
    cursor = start
    while len(pages) < 5:
        page = await binance_sim.json(
            "/api/v3/klines", {**query, "startTime": cursor, "limit": 100}
        )
        pages.append(page)
        cursor = page[-1][0] + 1  # as ccxt pages on
    assert [row for page in pages for row in page] == whole
    assert whole == ground_truth(
        binance_sim, Venue.BINANCE, "BTCUSDT", "1m", start_ms=start, end_ms=None, limit=500
    )


async def test_without_start_time_the_newest_arrive_ending_with_the_forming_candle(
    binance_sim: BinanceSim,
) -> None:
    now = binance_sim.world.now_ms()
    for interval in ("1m", "1h", "1d", "1w", "3d", "1M"):
        tf = parse_timeframe(interval)
        rows = await binance_sim.json(
            "/api/v3/klines", {"symbol": "BTCUSDT", "interval": interval, "limit": 3}
        )
        assert len(rows) == 3
        assert rows[-1][0] <= now < rows[-1][6]  # the forming candle: it closes in the future
        assert all(r[6] < now for r in rows[:-1])
        assert rows == ground_truth(
            binance_sim, Venue.BINANCE, "BTCUSDT", interval, start_ms=None, end_ms=None, limit=3
        ), interval
        if tf.kind.value == "fixed":
            assert [r[0] for r in rows] == [rows[-1][0] - i * tf.duration_ms for i in (2, 1, 0)]
    end = minute_of(now) - 50 * MINUTE + 5
    rows = await binance_sim.json(
        "/api/v3/klines", {"symbol": "BTCUSDT", "interval": "1m", "endTime": end, "limit": 4}
    )
    assert [r[0] for r in rows] == [minute_of(end) - i * MINUTE for i in (3, 2, 1, 0)]


async def test_the_forming_candle_closes_as_sim_time_passes(binance_sim: BinanceSim) -> None:
    query = {"symbol": "BTCUSDT", "interval": "1m", "limit": 2}
    before = await binance_sim.json("/api/v3/klines", query)
    binance_sim.world.clock.step(2_000)  # 12:34:58.789, still the same minute
    during = await binance_sim.json("/api/v3/klines", query)
    assert during[-1][0] == before[-1][0]
    assert Decimal(during[-1][5]) >= Decimal(before[-1][5])
    assert during[-1][8] >= before[-1][8]
    binance_sim.world.clock.step(MINUTE)
    after = await binance_sim.json("/api/v3/klines", query)
    assert after[0][0] == before[-1][0]
    assert (
        after[0]
        == ground_truth(
            binance_sim, Venue.BINANCE, "BTCUSDT", "1m", start_ms=after[0][0], end_ms=None, limit=1
        )[0]
    )
    assert after[0][6] < binance_sim.world.now_ms() < after[1][6]


async def test_a_window_before_the_listing_is_empty_not_an_error(
    binance_sim: BinanceSim,
) -> None:
    before = parse_time_ms("2017-08-01T00:00Z")
    for path in ("/api/v3/klines", "/fapi/v1/klines"):
        for params in ({"startTime": before, "endTime": before + 9 * 86_400_000},
                       {"endTime": before}):  # fmt: skip
            response = await binance_sim.get(
                path, {"symbol": "BTCUSDT", "interval": "1h", **params}
            )
            assert (response.status, response.body) == (200, b"[]")
    listed = listing(Venue.BINANCE, "BTCUSDT")
    assert listed is not None
    rows = await binance_sim.json(
        "/api/v3/klines", {"symbol": "BTCUSDT", "interval": "1m", "startTime": before,
                           "limit": 2},
    )  # fmt: skip
    assert [r[0] for r in rows] == [listed.listed_ms, listed.listed_ms + MINUTE]


async def test_rows_equal_the_market_across_an_outage(binance_sim_factory: StartBinance) -> None:
    sim = await binance_sim_factory(start_ms=parse_time_ms("2018-02-09T09:10:30Z"))
    for interval, limit in (("1m", 200), ("1h", 40), ("4h", 10)):
        rows = await sim.json(
            "/api/v3/klines", {"symbol": "ETHUSDT", "interval": interval, "limit": limit}
        )
        assert len(rows) == limit
        assert rows == ground_truth(
            sim, Venue.BINANCE, "ETHUSDT", interval, start_ms=None, end_ms=None, limit=limit
        )
    gap = parse_time_ms("2018-02-08T04:00Z"), parse_time_ms("2018-02-09T08:00Z")
    rows = await sim.json(
        "/api/v3/klines", {"symbol": "ETHUSDT", "interval": "1h", "startTime": gap[0] - HOUR,
                           "limit": 3},
    )  # fmt: skip
    assert [r[0] for r in rows] == [gap[0] - HOUR, gap[1], gap[1] + HOUR]


async def test_an_hour_equals_its_minutes_and_repeats_byte_for_byte(
    binance_sim: BinanceSim,
) -> None:
    hour = binance_sim.world.now_ms() - binance_sim.world.now_ms() % HOUR - 3 * HOUR
    query = {"symbol": "BTCUSDT", "startTime": hour, "endTime": hour + HOUR - 1}
    minutes = await binance_sim.json("/api/v3/klines", {**query, "interval": "1m"})
    (hourly,) = await binance_sim.json("/api/v3/klines", {**query, "interval": "1h"})
    assert len(minutes) == 60
    assert (hourly[1], hourly[4]) == (minutes[0][1], minutes[-1][4])
    assert Decimal(hourly[2]) == max(Decimal(m[2]) for m in minutes)
    assert Decimal(hourly[3]) == min(Decimal(m[3]) for m in minutes)
    for i in (5, 7, 9, 10):
        assert Decimal(hourly[i]) == sum(Decimal(m[i]) for m in minutes)
    assert hourly[8] == sum(m[8] for m in minutes)
    first = await binance_sim.get("/api/v3/klines", {**query, "interval": "1m"})
    again = await binance_sim.get("/api/v3/klines", {**query, "interval": "1m"})
    assert first.body == again.body == orjson.dumps(minutes)


# -- trades ----------------------------------------------------------------------------


async def agg_pages(sim: BinanceSim, path: str, first: dict[str, Any]) -> list[dict[str, Any]]:
    """Read a closed minute's aggTrades page by page with fromId, as clients do."""
    out = await sim.json(path, {**first, "limit": 100})
    while True:
        page = await sim.json(path, {"symbol": first["symbol"], "fromId": out[-1]["a"] + 1,
                                     "limit": 100})  # fmt: skip
        fresh = [a for a in page if a["T"] <= first["endTime"]]
        out += fresh
        if len(fresh) < len(page) or not page:
            return out


@pytest.mark.parametrize("venue", [Venue.BINANCE, Venue.BINANCE_USDM])
async def test_a_closed_minutes_agg_trades_sum_to_its_kline(
    binance_sim: BinanceSim, venue: Venue
) -> None:
    prefix = "/api/v3" if venue is Venue.BINANCE else "/fapi/v1"
    minute = minute_of(binance_sim.world.now_ms()) - 7 * MINUTE
    window = {"symbol": "BTCUSDT", "startTime": minute, "endTime": minute + MINUTE - 1}
    (kline,) = await binance_sim.json(f"{prefix}/klines", {**window, "interval": "1m"})
    whole = await binance_sim.json(f"{prefix}/aggTrades", {**window, "limit": 1000})
    assert 0 < len(whole) < 1000
    assert await agg_pages(binance_sim, f"{prefix}/aggTrades", window) == whole
    assert [a["a"] for a in whole] == [a["f"] for a in whole]  # a = f, documented
    assert all(x["l"] + 1 == y["f"] for x, y in itertools.pairwise(whole))
    assert kline[8] == whole[-1]["l"] - whole[0]["f"] + 1
    assert Decimal(kline[5]) == sum(Decimal(a["q"]) for a in whole)
    assert Decimal(kline[7]) == sum(Decimal(a["p"]) * Decimal(a["q"]) for a in whole)
    assert Decimal(kline[9]) == sum(Decimal(a["q"]) for a in whole if not a["m"])
    assert Decimal(kline[2]) == max(Decimal(a["p"]) for a in whole)
    assert Decimal(kline[3]) == min(Decimal(a["p"]) for a in whole)
    assert (kline[1], kline[4]) == (whole[0]["p"], whole[-1]["p"])
    runs = [(x["p"], x["m"]) == (y["p"], y["m"]) for x, y in itertools.pairwise(whole)]
    assert not any(runs)  # consecutive trades at one price and side are one aggTrade


async def test_from_id_is_found_without_having_read_its_minute(
    binance_sim_factory: StartBinance,
) -> None:
    first, fresh = await binance_sim_factory(), await binance_sim_factory()
    minute = minute_of(first.world.now_ms()) - 3 * 86_400_000 - 77 * MINUTE
    window = {"symbol": "ETHUSDT", "startTime": minute, "endTime": minute + MINUTE - 1}
    whole = await first.json("/api/v3/aggTrades", {**window, "limit": 1000})
    assert len(whole) > 12
    inside = next(a for a in whole[5:] if a["l"] > a["f"])  # an id inside an aggregate
    later = whole.index(inside) + 1
    for from_id, expected in (
        (whole[5]["a"], whole[5:10]),
        (inside["f"] + 1, whole[later : later + 5]),
    ):
        served = await fresh.json(
            "/api/v3/aggTrades", {"symbol": "ETHUSDT", "fromId": from_id, "limit": 5}
        )
        assert served == expected
    oldest = await fresh.json("/api/v3/aggTrades", {"symbol": "ETHUSDT", "fromId": 0, "limit": 2})
    eth = listing(Venue.BINANCE, "ETHUSDT")
    assert eth is not None
    assert oldest[0]["a"] == 0
    assert eth.listed_ms <= oldest[0]["T"] < eth.listed_ms + 86_400_000
    ahead = await fresh.json("/api/v3/aggTrades", {"symbol": "ETHUSDT", "fromId": 10**12})
    assert ahead == []


async def test_agg_trades_by_end_time_alone_are_the_newest_before_it(
    binance_sim: BinanceSim,
) -> None:
    end = binance_sim.world.now_ms() - 10 * MINUTE + 12_345
    newest = await binance_sim.json(
        "/api/v3/aggTrades", {"symbol": "BTCUSDT", "endTime": end, "limit": 40}
    )
    window = await binance_sim.json(
        "/api/v3/aggTrades",
        {"symbol": "BTCUSDT", "startTime": end - 2 * MINUTE, "endTime": end, "limit": 1000},
    )
    assert len(newest) == 40
    assert newest == window[-40:]
    assert newest[-1]["T"] <= end


async def test_agg_trades_windows_of_more_than_an_hour_are_refused(
    binance_sim: BinanceSim,
) -> None:
    start = binance_sim.world.now_ms() - 3 * HOUR
    query = {"symbol": "BTCUSDT", "startTime": start, "limit": 5}
    assert len(await binance_sim.json("/api/v3/aggTrades", {**query, "endTime": start + HOUR})) == 5
    response = await binance_sim.get("/api/v3/aggTrades", {**query, "endTime": start + HOUR + 1})
    assert (response.status, response.body) == (
        400,
        b'{"code":-1127,"msg":"More than 1 hours between startTime and endTime."}',
    )


async def test_recent_trades_are_what_has_printed_and_fold_to_the_forming_candle(
    binance_sim: BinanceSim,
) -> None:
    now = binance_sim.world.now_ms()
    trades = await binance_sim.json("/api/v3/trades", {"symbol": "BTCUSDT", "limit": 1000})
    assert len(trades) == 1000
    assert [t["id"] for t in trades] == list(range(trades[0]["id"], trades[0]["id"] + 1000))
    assert trades[-1]["time"] <= now
    current = [t for t in trades if t["time"] >= minute_of(now)]
    assert 0 < len(current) < len(trades)
    (forming,) = await binance_sim.json(
        "/api/v3/klines", {"symbol": "BTCUSDT", "interval": "1m", "limit": 1}
    )
    assert forming[8] == len(current)
    assert Decimal(forming[5]) == sum(Decimal(t["qty"]) for t in current)
    assert Decimal(forming[7]) == sum(Decimal(t["quoteQty"]) for t in current)
    assert forming[4] == current[-1]["price"]
    binance_sim.world.clock.step(MINUTE)
    later = await binance_sim.json("/api/v3/trades", {"symbol": "BTCUSDT", "limit": 1000})
    assert later[-1]["id"] > trades[-1]["id"]


# -- errors, limits, faults ------------------------------------------------------------


def error(code: int, msg: str) -> bytes:
    return orjson.dumps({"code": code, "msg": msg})


INVALID_SYMBOL = error(-1121, "Invalid symbol.")
INVALID_INTERVAL = error(-1120, "Invalid interval.")
NOT_VALID_LIMIT = error(-1130, "Data sent for parameter 'limit' is not valid.")


def illegal(name: str) -> bytes:
    legal = r"^[\w\-._&&[^a-z]]{1,50}$" if name == "symbol" else "^[0-9]{1,20}$"
    return error(
        -1100, f"Illegal characters found in parameter '{name}'; legal range is '{legal}'."
    )


def missing(name: str) -> bytes:
    return error(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


@pytest.mark.parametrize(
    ("path", "params", "body"),
    [
        ("/api/v3/klines", {"symbol": "FOOUSDT", "interval": "1m"}, INVALID_SYMBOL),
        ("/fapi/v1/klines", {"symbol": "NEOETH", "interval": "1m"}, INVALID_SYMBOL),
        ("/api/v3/aggTrades", {"symbol": "FOOUSDT"}, INVALID_SYMBOL),
        ("/api/v3/trades", {"symbol": "FOOUSDT"}, INVALID_SYMBOL),
        ("/api/v3/klines", {"symbol": "BTCUSDT", "interval": "2m"}, INVALID_INTERVAL),
        ("/fapi/v1/klines", {"symbol": "BTCUSDT", "interval": "1H"}, INVALID_INTERVAL),
        ("/api/v3/klines", {"interval": "1m"}, missing("symbol")),
        ("/api/v3/klines", {"symbol": "BTCUSDT"}, missing("interval")),
        ("/api/v3/klines", {"symbol": "", "interval": "1m"}, missing("symbol")),
        ("/api/v3/aggTrades", {}, missing("symbol")),
        ("/api/v3/klines", {"symbol": "btcusdt", "interval": "1m"}, illegal("symbol")),
        ("/api/v3/klines", {"symbol": "BTCUSDT", "interval": "1m", "startTime": "abc"},
         illegal("startTime")),
        ("/api/v3/klines", {"symbol": "BTCUSDT", "interval": "1m", "endTime": "1e12"},
         illegal("endTime")),
        ("/api/v3/klines", {"symbol": "BTCUSDT", "interval": "1m", "limit": "-1"},
         illegal("limit")),
        ("/api/v3/aggTrades", {"symbol": "BTCUSDT", "fromId": "x"}, illegal("fromId")),
        ("/api/v3/klines", {"symbol": "BTCUSDT", "interval": "1m", "limit": "1001"},
         NOT_VALID_LIMIT),
        ("/api/v3/klines", {"symbol": "BTCUSDT", "interval": "1m", "limit": "0"}, NOT_VALID_LIMIT),
        ("/fapi/v1/klines", {"symbol": "BTCUSDT", "interval": "1m", "limit": "1501"},
         NOT_VALID_LIMIT),
        ("/api/v3/aggTrades", {"symbol": "BTCUSDT", "limit": "1001"}, NOT_VALID_LIMIT),
        ("/api/v3/trades", {"symbol": "BTCUSDT", "limit": "1001"}, NOT_VALID_LIMIT),
        ("/api/v3/aggTrades", {"symbol": "BTCUSDT", "fromId": "1", "endTime": "1"},
         error(-1128, "Combination of optional parameters invalid.")),
    ],
)  # fmt: skip
async def test_errors_are_answered_in_binances_words(
    binance_sim: BinanceSim, path: str, params: dict[str, str], body: bytes
) -> None:
    response = await binance_sim.get(path, params)
    assert response.status == 400
    assert response.content_type == "application/json"
    assert response.body == body


async def test_usdm_limit_1500_is_served(binance_sim: BinanceSim) -> None:
    rows = await binance_sim.json(
        "/fapi/v1/klines", {"symbol": "BTCUSDT", "interval": "1m", "limit": 1500}
    )
    assert len(rows) == 1500


@pytest.mark.parametrize(
    ("path", "weight"),
    [
        ("/api/v3/ping", 1),
        ("/api/v3/time", 1),
        ("/api/v3/exchangeInfo", 20),
        ("/api/v3/klines?symbol=BTCUSDT&interval=1m", 2),
        ("/api/v3/aggTrades?symbol=BTCUSDT", 4),
        ("/api/v3/trades?symbol=BTCUSDT", 25),
        ("/fapi/v1/ping", 1),
        ("/fapi/v1/time", 1),
        ("/fapi/v1/exchangeInfo", 1),
        ("/fapi/v1/aggTrades?symbol=BTCUSDT", 20),
    ],
)
async def test_each_reply_reports_the_documented_weight(
    binance_sim: BinanceSim, path: str, weight: int
) -> None:
    response = await binance_sim.get(path)
    assert response.status == 200
    assert response.headers["X-MBX-USED-WEIGHT-1M"] == str(weight)
    venue = "binance" if path.startswith("/api") else "binance-usdm"
    assert binance_sim.world.stats.snapshot()["venues"][venue]["weight"] == weight


async def test_usdm_klines_weigh_by_limit_band_in_a_lower_case_header(
    binance_sim: BinanceSim,
) -> None:
    bands = [(None, 5), (1, 1), (99, 1), (100, 2), (499, 2), (500, 5), (1000, 5), (1001, 10),
             (1500, 10)]  # fmt: skip
    for limit, weight in bands:
        binance_sim.world.usdm.reset()
        query: dict[str, str | int] = {"symbol": "BTCUSDT", "interval": "1m"}
        if limit is not None:
            query["limit"] = limit
        response = await binance_sim.get("/fapi/v1/klines", query)
        assert response.status == 200
        assert response.headers["x-mbx-used-weight-1m"] == str(weight), limit
        assert response.headers["X-MBX-USED-WEIGHT-1M"] == str(weight)  # any case reads it
        sent = [name for name, _ in response.raw_headers if name.lower() == b"x-mbx-used-weight-1m"]
        assert sent == [b"x-mbx-used-weight-1m"]
    spot = await binance_sim.get("/api/v3/klines", {"symbol": "BTCUSDT", "interval": "1m"})
    assert [n for n, _ in spot.raw_headers if n.lower() == b"x-mbx-used-weight-1m"] == [
        b"X-MBX-USED-WEIGHT-1M"
    ]


async def test_past_the_weight_limit_429_then_a_418_ban_then_service_again(
    binance_sim_factory: StartBinance,
) -> None:
    sim = await binance_sim_factory(binance_weight_per_minute=10)
    query = {"symbol": "BTCUSDT", "interval": "1m", "limit": 5}
    for used in (2, 4, 6, 8, 10):
        response = await sim.get("/api/v3/klines", query)
        assert (response.status, response.headers["X-MBX-USED-WEIGHT-1M"]) == (200, str(used))
    told = await sim.get("/api/v3/klines", query)
    assert told.status == 429
    assert told.headers["Retry-After"] == "45"  # the wall minute ends 45 s later
    assert orjson.loads(told.body) == {
        "code": -1003,
        "msg": "Too many requests; current limit of IP(127.0.0.1) is 10 requests per minute. "
        "Please use the websocket for live updates to avoid polling the API.",
    }
    sim.wall.t += 5
    banned = await sim.get("/api/v3/klines", query)
    assert banned.status == 418
    assert banned.headers["Retry-After"] == "120"
    until = round((sim.wall.t + 120) * 1000)
    assert orjson.loads(banned.body) == {
        "code": -1003,
        "msg": f"Way too many requests; IP(127.0.0.1) banned until {until}. "
        "Please use the websocket for live updates to avoid bans.",
    }
    sim.wall.t += 121
    again = await sim.get("/api/v3/klines", query)
    assert (again.status, again.headers["X-MBX-USED-WEIGHT-1M"]) == (200, "2")
    assert len(orjson.loads(again.body)) == 5
    status = sim.world.stats.snapshot()["venues"]["binance"]["status"]
    assert status == {"200": 6, "429": 1, "418": 1}


@pytest.mark.parametrize("kind", ["field_count", "non_numeric", "off_grid"])
async def test_a_malformed_fault_breaks_one_kline_row_then_clears(
    binance_sim: BinanceSim, kind: str
) -> None:
    start = minute_of(binance_sim.world.now_ms()) - 40 * MINUTE
    query = {"symbol": "BTCUSDT", "interval": "1m", "startTime": start, "limit": 30}
    clean = await binance_sim.json("/api/v3/klines", query)
    binance_sim.world.faults.update({"malformed": 1.0, "malformed_kinds": [kind]})
    broken = await binance_sim.json("/api/v3/klines", query)
    differing = [i for i, (a, b) in enumerate(zip(clean, broken, strict=True)) if a != b]
    assert len(differing) == 1
    bad = broken[differing[0]]
    good = clean[differing[0]]
    if kind == "field_count":
        assert bad == good[:11]
    elif kind == "non_numeric":
        assert bad == [*good[:4], "NaN", *good[5:]]
    else:
        assert bad == [good[0] + MINUTE // 2, *good[1:]]
    trades = await binance_sim.json("/api/v3/aggTrades", {"symbol": "BTCUSDT", "limit": 3})
    assert len(trades) == 3  # only kline replies carry malformed rows
    binance_sim.world.faults.update({"malformed": 0.0})
    assert await binance_sim.json("/api/v3/klines", query) == clean  # nothing stuck


async def test_the_ledger_counts_kline_requests_and_candles(binance_sim: BinanceSim) -> None:
    for limit in (10, 20):
        await binance_sim.json(
            "/api/v3/klines", {"symbol": "BTCUSDT", "interval": "1m", "limit": limit}
        )
    await binance_sim.json("/fapi/v1/klines", {"symbol": "ETHUSDT", "interval": "1h", "limit": 7})
    venues = binance_sim.world.stats.snapshot()["venues"]
    assert venues["binance"]["requests"] == {"/api/v3/klines": 2}
    assert (venues["binance"]["candles"], venues["binance"]["weight"]) == (30, 4)
    assert (venues["binance-usdm"]["candles"], venues["binance-usdm"]["weight"]) == (7, 1)
