"""The trades -> candle fold explains Binance's own live kline updates.

Recording: USD-M combined stream, 2021-07-22 (fixtures README, "Trades -> kline").
Between two successive `kline_1m` updates of one candle, the aggTrades whose trade ids
run from L1+1 to L2 must account exactly for the change in every field.
"""

from __future__ import annotations

from collections import defaultdict
from itertools import pairwise
from typing import Any

from candlevault.aggregation import CandleAccumulator, fold_trades
from candlevault.domain.candles import Candle
from candlevault.domain.decimals import Precision, decimals_in, parse_units
from candlevault.domain.trades import Trade
from tests.contract.recorded import fixtures_dir, jsonl_frames

RECORDING = "cryptofeed_usdm_combined_2021-07-22.jsonl"


def _stream() -> tuple[dict[str, list[dict[str, Any]]], dict[str, list[dict[str, Any]]]]:
    klines: dict[str, list[dict[str, Any]]] = defaultdict(list)
    trades: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for frame in jsonl_frames(fixtures_dir() / "binance" / "ws" / RECORDING):
        data = frame["data"]
        if data["e"] == "kline":
            klines[data["s"]].append(data["k"])
        elif data["e"] == "aggTrade":
            trades[data["s"]].append(data)
    return klines, trades


def _precision(kline: dict[str, Any]) -> Precision:
    """USD-M writes each field at the contract's precision, fixed width."""
    return Precision(decimals_in(kline["o"]), decimals_in(kline["v"]), decimals_in(kline["q"]))


def _candle(k: dict[str, Any], p: Precision) -> Candle:
    return Candle(
        open_time_ms=k["t"],
        open=parse_units(k["o"], p.price),
        high=parse_units(k["h"], p.price),
        low=parse_units(k["l"], p.price),
        close=parse_units(k["c"], p.price),
        volume=parse_units(k["v"], p.base),
        close_time_ms=k["T"],
        quote_volume=parse_units(k["q"], p.quote),
        trades=k["n"],
        taker_buy_base=parse_units(k["V"], p.base),
        taker_buy_quote=parse_units(k["Q"], p.quote),
        closed=k["x"],
    )


def _between(
    aggs: list[dict[str, Any]], first_id: int, last_id: int
) -> list[dict[str, Any]] | None:
    """The aggTrades covering trade ids first_id..last_id exactly, or None if not recorded."""
    picked = sorted(
        (a for a in aggs if first_id <= a["f"] and a["l"] <= last_id), key=lambda a: a["f"]
    )
    expected = first_id
    for agg in picked:
        if agg["f"] != expected:
            return None
        expected = agg["l"] + 1
    return picked if expected == last_id + 1 else None


def _trade(agg: dict[str, Any], p: Precision) -> Trade:
    return Trade(
        trade_id=agg["a"],
        price=parse_units(agg["p"], p.price),
        qty=parse_units(agg["q"], p.base),
        time_ms=agg["T"],
        buyer_is_maker=agg["m"],
        count=agg["l"] - agg["f"] + 1,
    )


def test_agg_trades_explain_every_fully_recorded_kline_update() -> None:
    klines, trades = _stream()
    checked = 0
    for symbol, updates in klines.items():
        for k1, k2 in pairwise(updates):
            if k1["t"] != k2["t"] or k2["L"] == k1["L"]:
                continue
            aggs = _between(trades[symbol], k1["L"] + 1, k2["L"])
            if aggs is None:
                continue
            p = _precision(k1)
            before, after = _candle(k1, p), _candle(k2, p)
            acc = CandleAccumulator(before.open_time_ms, p)
            for agg in aggs:
                acc.add(_trade(agg, p))
            delta = acc.candle(closed=False)

            assert after.volume == before.volume + delta.volume
            assert after.quote_volume == before.quote_volume + delta.quote_volume
            assert after.taker_buy_base == (before.taker_buy_base or 0) + (
                delta.taker_buy_base or 0
            )
            assert after.taker_buy_quote == (before.taker_buy_quote or 0) + (
                delta.taker_buy_quote or 0
            )
            assert after.trades == (before.trades or 0) + (delta.trades or 0)
            assert after.high == max(before.high, delta.high)
            assert after.low == min(before.low, delta.low)
            assert after.close == delta.close
            checked += 1
    assert checked == 33


def test_a_new_candle_is_the_fold_of_its_own_trades() -> None:
    """The first update of a candle whose first trades were all recorded equals their fold."""
    klines, trades = _stream()
    checked = 0
    for symbol, updates in klines.items():
        for k in updates:
            aggs = _between(trades[symbol], k["f"], k["L"])
            if aggs is None:
                continue
            p = _precision(k)
            folded = fold_trades(
                [_trade(a, p) for a in aggs],
                open_time_ms=k["t"],
                precision=p,
                prev_close=None,
                closed=k["x"],
            )
            assert folded == _candle(k, p)
            checked += 1
    assert checked == 15
