"""The aggTrades REST parser against real recordings (../shared/fixtures).

The recorded spot `/api/v3/aggTrades` body parses whole, exactly (no float anywhere),
with `count = l - f + 1`; the USD-M aggTrade frames of a live recording, cut down to the
REST row's keys (no "M"), parse to the very trades the stream parser builds from them.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import orjson
import pytest

from candlevault.domain.decimals import BINANCE_SPOT, Precision
from candlevault.domain.trades import Trade
from candlevault.exchanges.binance.rest import AggQuery, parse_agg_trades
from candlevault.exchanges.binance.schemas import agg_trades_decoder
from candlevault.exchanges.validate import MalformedReply
from candlevault.realtime.wire import Trades, parse_binance
from tests.contract.recorded import fixtures_dir

SPOT_BODY = "binance/rest/api_v3_aggTrades_BTCUSDT_2021-10-22.json"
USDM_FRAMES = "binance/ws/cryptofeed_usdm_combined_2021-07-22.jsonl"
REST_KEYS = ("a", "p", "q", "f", "l", "T", "m")
WIDE = Precision(8, 8, 8)


def spot_body() -> bytes:
    return (fixtures_dir() / SPOT_BODY).read_bytes()


def test_the_recorded_spot_body_parses_exactly() -> None:
    body = spot_body()
    rows: list[dict[str, Any]] = json.loads(body)
    trades = parse_agg_trades(agg_trades_decoder.decode(body), BINANCE_SPOT, AggQuery())
    assert len(trades) == len(rows) == 10
    assert trades[0] == Trade(966492862, 6075960000000, 841000, 1634944096633, False, count=1)
    for trade, row in zip(trades, rows, strict=True):
        assert trade.trade_id == row["a"]
        assert Decimal(trade.price) / 10**8 == Decimal(row["p"])
        assert Decimal(trade.qty) / 10**8 == Decimal(row["q"])
        assert (trade.time_ms, trade.buyer_is_maker) == (row["T"], row["m"])
        assert trade.count == row["l"] - row["f"] + 1


def test_the_recorded_body_answers_its_own_window_and_no_narrower_one() -> None:
    rows = agg_trades_decoder.decode(spot_body())
    first, last = rows[0], rows[-1]
    exact = AggQuery(start_ms=first.time_ms, end_ms=last.time_ms)
    assert len(parse_agg_trades(rows, BINANCE_SPOT, exact)) == 10
    assert len(parse_agg_trades(rows, BINANCE_SPOT, AggQuery(from_id=first.agg_id))) == 10
    for narrower in (
        AggQuery(start_ms=first.time_ms + 1),
        AggQuery(end_ms=last.time_ms - 1),
        AggQuery(from_id=first.agg_id + 1),
        AggQuery(limit=9),
    ):
        with pytest.raises(MalformedReply):
            parse_agg_trades(rows, BINANCE_SPOT, narrower)
    with pytest.raises(MalformedReply, match="after the exchange's clock"):
        parse_agg_trades(rows, BINANCE_SPOT, AggQuery(), now_ms=first.time_ms - 60_000)


def test_usdm_rows_parse_to_the_trades_the_stream_parser_builds() -> None:
    rows: dict[str, list[dict[str, Any]]] = {}
    streamed: dict[str, list[Trade]] = {}
    with (fixtures_dir() / USDM_FRAMES).open() as lines:
        for line in lines:
            entry = json.loads(line)
            if entry["t"] != "recv" or "@aggTrade" not in entry["data"]:
                continue
            data = json.loads(entry["data"])["data"]
            rows.setdefault(data["s"], []).append({k: data[k] for k in REST_KEYS})
            message = parse_binance(entry["data"], lambda _: WIDE)
            assert isinstance(message, Trades)
            streamed.setdefault(data["s"], []).extend(message.trades)
    assert sum(map(len, rows.values())) == 91
    for symbol, symbol_rows in rows.items():
        body = orjson.dumps(symbol_rows)
        assert b'"M"' not in body
        parsed = parse_agg_trades(agg_trades_decoder.decode(body), WIDE, AggQuery())
        assert parsed == streamed[symbol]
