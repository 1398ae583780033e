"""The stream parsers (`realtime.wire`) against real recorded frames (../shared/fixtures).

Every recorded Binance and Bybit frame parses (trades, other events, acks; none is
malformed); values come out exact; the USD-M aggTrades between two kline updates
reproduce the kline's change (Δvolume, Δcount), which pins `count = l - f + 1`; Bybit's
`S` is the taker's side. Malformed frames raise `MalformedFrame`.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import pytest

from candlevault.domain.decimals import Precision, parse_units
from candlevault.domain.trades import Trade
from candlevault.realtime.wire import (
    Control,
    Event,
    MalformedFrame,
    Message,
    Trades,
    parse_binance,
    parse_bybit,
)
from tests.contract.recorded import fixtures_dir

SPOT = "binance/ws/cryptofeed_spot_combined_2021-10-12.jsonl"
USDM = "binance/ws/cryptofeed_usdm_combined_2021-07-22.jsonl"
BYBIT = "bybit/ws/cryptofeed_v5_linear_spot_2026-08-09.jsonl"
WIDE = Precision(8, 8, 8)  # at least as many decimals as any recorded value


def frames(path: str) -> Iterator[tuple[str, str]]:
    """Yield (connection, raw frame text) of every received frame of a recording."""
    with (fixtures_dir() / path).open() as lines:
        for line in lines:
            entry = json.loads(line)
            if entry["t"] == "recv":
                yield entry["conn"], entry["data"]


def wide(_: str) -> Precision:
    return WIDE


def kinds(messages: list[Message]) -> dict[str, int]:
    out: dict[str, int] = {}
    for m in messages:
        key = type(m).__name__ + ("." + m.kind if isinstance(m, Event) else "")
        out[key] = out.get(key, 0) + 1
    return out


@pytest.mark.parametrize(("path", "expected"), [
    (SPOT, {"Trades": 2, "Klines": 2}),
    (USDM, {"Trades": 91, "Klines": 67}),
])  # fmt: skip
def test_every_recorded_binance_frame_parses(path: str, expected: dict[str, int]) -> None:
    assert kinds([parse_binance(f, wide) for _, f in frames(path)]) == expected


def test_a_spot_aggtrade_parses_exactly() -> None:
    message = parse_binance(next(f for _, f in frames(SPOT) if "aggTrade" in f), wide)
    assert message == Trades(
        "NKNUSDT",
        [Trade(15683430, 35280000, 5800000000, 1633998523963, False, count=1)],
        1633998523963,
    )


def test_the_raw_form_parses_like_the_combined_one() -> None:
    for _, frame in frames(USDM):
        raw = json.dumps(json.loads(frame)["data"])
        assert parse_binance(raw, wide) == parse_binance(frame, wide)


def test_usdm_aggtrades_explain_the_kline_changes() -> None:
    """Between successive kline updates with contiguous trade ids, Σq = Δv, Σcount = ΔL."""
    p = Precision(5, 0, 5)  # CTKUSDT: "p":"1.01100", "q":"10"
    trades: list[Trade] = []
    klines: list[dict[str, Any]] = []
    for _, frame in frames(USDM):
        data = json.loads(frame)["data"]
        if data["s"] != "CTKUSDT":
            continue
        if data["e"] == "kline":
            klines.append(data["k"])
        else:
            message = parse_binance(frame, lambda s: p)
            assert isinstance(message, Trades)
            trades += message.trades
    firsts = {int(t.trade_id): t for t in trades}
    by_first = {json.loads(f)["data"]["f"]: int(json.loads(f)["data"]["a"])
                for _, f in frames(USDM) if '"CTKUSDT"' in f and "aggTrade" in f}  # fmt: skip
    checked = 0
    for a, b in itertools.pairwise(klines):
        if a["t"] != b["t"]:
            continue
        ids: list[int] = []
        next_id = a["L"] + 1
        while next_id <= b["L"] and next_id in by_first:
            trade = firsts[by_first[next_id]]
            ids.append(by_first[next_id])
            next_id += trade.count
        if next_id != b["L"] + 1:
            continue  # not fully recorded
        window = [firsts[i] for i in ids]
        assert sum(t.count for t in window) == b["L"] - a["L"] == b["n"] - a["n"]
        assert sum(t.qty for t in window) == parse_units(b["v"], 0) - parse_units(a["v"], 0)
        taker = sum(t.qty for t in window if not t.buyer_is_maker)
        assert taker == parse_units(b["V"], 0) - parse_units(a["V"], 0)
        checked += 1
    assert checked >= 5
    assert any(t.count > 1 for t in trades)


def test_every_recorded_bybit_frame_parses() -> None:
    messages = [parse_bybit(f, wide) for _, f in frames(BYBIT)]
    assert kinds(messages) == {"Trades": 120, "Klines": 96, "Control": 24}
    assert all(m.ok and m.op == "subscribe" for m in messages if isinstance(m, Control))


def test_bybit_trades_parse_exactly_with_the_taker_side() -> None:
    for _, frame in frames(BYBIT):
        if "publicTrade" not in frame:
            continue
        message = parse_bybit(frame, wide)
        assert isinstance(message, Trades)
        raw = json.loads(frame)
        assert message.event_ms == raw["ts"]
        assert message.symbol == raw["topic"].split(".")[1]
        for trade, row in zip(message.trades, raw["data"], strict=True):
            assert trade.trade_id == row["i"]
            assert isinstance(trade.trade_id, str)
            assert trade.buyer_is_maker is (row["S"] == "Sell")
            assert trade.count == 1
            assert trade.price == parse_units(row["p"], WIDE.price)
            assert trade.qty == parse_units(row["v"], WIDE.base)
            assert trade.time_ms == row["T"]


def test_the_first_linear_trade_values() -> None:
    frame = next(f for c, f in frames(BYBIT) if c == "BYBIT.ws.2" and "publicTrade" in f)
    message = parse_bybit(frame, lambda s: Precision(2, 3, 5, fixed=False))
    assert message == Trades(
        "BTCUSDT",
        [Trade("a9188a0a-82bc-50de-be60-03eedbe3cdd7", 6511420, 4, 1786310819680, True)],
        1786310819681,
    )


@pytest.mark.parametrize(("frame", "expected"), [
    ('{"result":null,"id":1}', Control(True, "result", 1, "null")),
    ('{"result":["btcusdt@aggTrade"],"id":"a"}',
     Control(True, "result", "a", '["btcusdt@aggTrade"]')),
    ('{"error":{"code":2,"msg":"Invalid request: invalid stream"},"id":2}',
     Control(False, "error", 2, "2: Invalid request: invalid stream")),
])  # fmt: skip
def test_binance_replies_are_control(frame: str, expected: Control) -> None:
    assert parse_binance(frame, wide) == expected


@pytest.mark.parametrize(("frame", "expected"), [
    ('{"success":true,"ret_msg":"pong","conn_id":"x","req_id":"7","op":"ping"}',
     Control(True, "pong", "7", "pong")),
    ('{"req_id":"1","op":"pong","args":["1675418560633"],"conn_id":"x"}',
     Control(True, "pong", "1", "")),
    ('{"success":false,"ret_msg":"Invalid symbol :[publicTrade.NOPE]","conn_id":"x",'
     '"op":"subscribe"}',
     Control(False, "subscribe", None, "Invalid symbol :[publicTrade.NOPE]")),
])  # fmt: skip
def test_bybit_replies_are_control(frame: str, expected: Control) -> None:
    assert parse_bybit(frame, wide) == expected


def test_trades_of_a_symbol_not_followed_are_an_event() -> None:
    frame = next(f for _, f in frames(SPOT) if "aggTrade" in f)
    assert parse_binance(frame, lambda s: None) == Event("aggTrade", 1633998523963)


@pytest.mark.parametrize("frame", [
    "not json",
    "[1,2]",
    '{"hello":1}',
    '{"stream":"x@aggTrade","data":{"e":"aggTrade","E":1}}',
    '{"e":"aggTrade","E":1,"s":"X","a":1,"p":1.5,"q":"1","f":1,"l":1,"T":1,"m":false}',
    '{"e":"aggTrade","E":1,"s":"X","a":1,"p":"1e5","q":"1","f":1,"l":1,"T":1,"m":false}',
    '{"e":"aggTrade","E":1,"s":"X","a":1,"p":"1.123456789","q":"1","f":1,"l":1,"T":1,"m":false}',
    '{"e":"aggTrade","E":1,"s":"X","a":1,"p":"1","q":"1","f":5,"l":4,"T":1,"m":false}',
])  # fmt: skip
def test_malformed_binance_frames_raise(frame: str) -> None:
    with pytest.raises(MalformedFrame):
        parse_binance(frame, wide)


@pytest.mark.parametrize("frame", [
    "{",
    '{"topic":"publicTrade.X","ts":1}',
    '{"topic":"publicTrade.X","ts":1,"data":[{"T":1,"s":"X","S":"Hold","v":"1","p":"1","i":"a"}]}',
    '{"topic":"publicTrade.X","ts":1,"data":[{"T":1,"s":"Y","S":"Buy","v":"1","p":"1","i":"a"}]}',
    '{"topic":"publicTrade.X","ts":1,"data":[{"T":1,"s":"X","S":"Buy","v":"1","p":"1","i":7}]}',
    '{"topic":"publicTrade.X","ts":1,"data":[{"T":1,"s":"X","S":"Buy","v":0.1,"p":"1","i":"a"}]}',
    '{"conn_id":"x"}',
])  # fmt: skip
def test_malformed_bybit_frames_raise(frame: str) -> None:
    with pytest.raises(MalformedFrame):
        parse_bybit(frame, wide)
