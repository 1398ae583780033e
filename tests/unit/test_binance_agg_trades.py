"""aggTrades replies and requests, pure: what a reply must be to be trusted, and which
requests are refused before sending.

Every malformed body or row is refused whole with `MalformedReply` naming the reason, never
a crash; a well-formed reply round-trips exactly; `AggQuery` refuses exactly Binance's
documented violations.
"""

from __future__ import annotations

from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from candlevault.domain.decimals import BINANCE_SPOT, Precision, format_units
from candlevault.domain.errors import BadRequest
from candlevault.domain.trades import Trade
from candlevault.exchanges.binance.rest import HOUR_MS, AggQuery, parse_agg_trades
from candlevault.exchanges.binance.schemas import agg_trades_decoder
from candlevault.exchanges.validate import MalformedReply, decoded

USDM_BTC = Precision(2, 3, 5)


def row(a: int, t: int = 1_000, /, **changes: object) -> dict[str, object]:
    """A USD-M BTCUSDT row with aggregate id `a` covering trade ids a*10 .. a*10+1."""
    out: dict[str, object] = {
        "a": a, "p": "42000.10", "q": "0.005", "f": a * 10, "l": a * 10 + 1, "T": t, "m": False,
    }  # fmt: skip
    out.update(changes)
    return out


def parse(rows: Any, precision: Precision = USDM_BTC, query: AggQuery | None = None) -> list[Trade]:
    body = rows if isinstance(rows, bytes) else orjson.dumps(rows)
    replies = decoded(agg_trades_decoder, body, "aggTrades BTCUSDT")
    return parse_agg_trades(replies, precision, query or AggQuery(), now_ms=10**13)


def test_a_row_becomes_the_trade_the_stream_parser_would_build() -> None:
    assert parse([row(7, 1_000), row(8, 1_000, m=True, M=True)]) == [
        Trade(7, 4200010, 5, 1_000, False, count=2),
        Trade(8, 4200010, 5, 1_000, True, count=2),
    ]
    assert parse(b"[]") == []


@pytest.mark.parametrize(("body", "reason"), [
    (b"[{", "aggTrades BTCUSDT: "),
    (b'{"code":-1121,"msg":"Invalid symbol."}', "Expected `array`, got `object`"),
    (orjson.dumps([row(1, p=42000.1)]), r"Expected `str`, got `float` - at `\$\[0\].p`"),
    (orjson.dumps([row(1, a="1")]), r"Expected `int`, got `str` - at `\$\[0\].a`"),
    (orjson.dumps([row(1, T=1.5)]), r"got `float` - at `\$\[0\].T`"),
    (orjson.dumps([row(1, m=0)]), r"Expected `bool`, got `int` - at `\$\[0\].m`"),
    (orjson.dumps([{k: v for k, v in row(1).items() if k != "l"}]), "missing required field `l`"),
    (orjson.dumps([row(1), None]), r"got `null` - at `\$\[1\]`"),
])  # fmt: skip
def test_a_body_that_does_not_fit_the_schema_is_refused(body: bytes, reason: str) -> None:
    with pytest.raises(MalformedReply, match=reason):
        parse(body)


@pytest.mark.parametrize(("rows", "reason"), [
    ([row(1, f=10, l=9)], r"aggTrades 1: .*f\.\.l \[10, 9\]: expected f <= l"),
    ([row(1, p="42000.105")], "aggTrades 1: invalid decimal"),
    ([row(1, q="1e-3")], "aggTrades 1: invalid decimal"),
    ([row(1, p="")], "aggTrades 1: invalid decimal"),
    ([row(1, q="-0.005")], r"aggTrades 1: .*-0\.005.*negative"),
    ([row(2), row(2)], "id 2 after 2"),
    ([row(3), row(2)], "id 2 after 3"),
    ([row(1, 2_000), row(2, 1_999)], "time 1999 after 2000"),
    ([row(1), row(2, f=11)], r"trade ids 11..21 after 10..11"),
])  # fmt: skip
def test_an_insane_row_or_order_is_refused_whole(
    rows: list[dict[str, object]], reason: str
) -> None:
    with pytest.raises(MalformedReply, match=reason) as refused:
        parse(rows)
    assert refused.value.rows  # the offending rows, as received, for the record


@pytest.mark.parametrize(("query", "reason"), [
    (AggQuery(from_id=2), "id 1 below fromId 2"),
    (AggQuery(start_ms=1_001), "1 rows before 1001"),
    (AggQuery(end_ms=1_499), "1 rows after 1499"),
    (AggQuery(limit=1), "2 rows for limit 1"),
])  # fmt: skip
def test_rows_the_request_did_not_ask_for_are_refused(query: AggQuery, reason: str) -> None:
    with pytest.raises(MalformedReply, match=reason):
        parse([row(1, 1_000), row(2, 1_500)], query=query)


def test_a_trade_from_the_future_is_refused() -> None:
    rows = agg_trades_decoder.decode(orjson.dumps([row(1, 100_000)]))
    with pytest.raises(MalformedReply, match="after the exchange's clock"):
        parse_agg_trades(rows, USDM_BTC, AggQuery(), now_ms=90_000)
    assert parse_agg_trades(rows, USDM_BTC, AggQuery(), now_ms=96_000)  # within the slack


def test_query_params_send_only_what_was_chosen() -> None:
    assert AggQuery(from_id=5, limit=10).params("BTCUSDT") == {
        "symbol": "BTCUSDT", "limit": 10, "fromId": 5,
    }  # fmt: skip
    assert AggQuery(start_ms=0, end_ms=HOUR_MS - 1).params("X") == {
        "symbol": "X", "limit": 1000, "startTime": 0, "endTime": HOUR_MS - 1,
    }  # fmt: skip


small = st.none() | st.integers(-2, 2 * HOUR_MS)


@given(from_id=small, start=small, end=small, limit=st.integers(-1, 1002))
def test_a_query_is_refused_exactly_when_binance_would_refuse_it(
    from_id: int | None, start: int | None, end: int | None, limit: int
) -> None:
    values = [v for v in (from_id, start, end) if v is not None]
    refused = (
        not 1 <= limit <= 1000
        or any(v < 0 for v in values)
        or (from_id is not None and (start is not None or end is not None))
        or (start is not None and end is not None and not 0 <= end - start < HOUR_MS)
    )
    try:
        AggQuery(from_id, start, end, limit)
    except BadRequest:
        assert refused
    else:
        assert not refused


@st.composite
def replies(draw: st.DrawFn) -> list[dict[str, object]]:
    """A valid reply: ids and trade ids strictly increasing, times never going back."""
    rows: list[dict[str, object]] = []
    agg_id, trade_id, t = draw(st.integers(0, 10**12)), draw(st.integers(0, 10**12)), 10**12
    for _ in range(draw(st.integers(0, 30))):
        count = draw(st.integers(1, 5))
        price, qty = draw(st.integers(1, 10**15)), draw(st.integers(0, 10**15))
        rows.append({
            "a": agg_id, "p": format_units(price, 8, True), "q": format_units(qty, 8, True),
            "f": trade_id, "l": trade_id + count - 1, "T": t, "m": draw(st.booleans()),
            "M": True,
        })  # fmt: skip
        agg_id += draw(st.integers(1, 3))
        trade_id += count + draw(st.integers(0, 2))
        t += draw(st.integers(0, 500))
    return rows


@given(replies())
def test_a_valid_reply_round_trips_exactly(rows: list[dict[str, object]]) -> None:
    trades = parse(rows, BINANCE_SPOT)
    back = [
        (t.trade_id, format_units(t.price, 8, True), format_units(t.qty, 8, True), t.time_ms,
         t.buyer_is_maker, t.count)
        for t in trades
    ]  # fmt: skip
    assert back == [(r["a"], r["p"], r["q"], r["T"], r["m"], r["l"] - r["f"] + 1) for r in rows]  # type: ignore[operator]


@given(replies().filter(lambda rows: len(rows) >= 2), st.data())
def test_a_reply_with_two_rows_swapped_is_refused(
    rows: list[dict[str, object]], data: st.DataObject
) -> None:
    i = data.draw(st.integers(0, len(rows) - 2))
    rows[i], rows[i + 1] = rows[i + 1], rows[i]
    with pytest.raises(MalformedReply, match="aggTrades: id"):
        parse(rows, BINANCE_SPOT)


def test_msgspec_strictness_is_what_the_schema_relies_on() -> None:
    """A float time that happens to be whole is still not an int (strict decoding)."""
    with pytest.raises(msgspec.ValidationError):
        agg_trades_decoder.decode(orjson.dumps([row(1, T=1000.0)]))
