"""Binance's trade views of one market: recent trades and aggregate trades, read as of now.

Both are cut from the market's own trades (`VenueMarket.trades`, one minute at a time),
so they agree with the klines to the last digit: a closed minute's trades, or its
aggTrades, sum to its kline's volume, quote volume, taker-buy volumes and trade count.
Only what has printed exists: trades with `time_ms <= now`.

**Aggregation.** Binance aggregates "trades that fill at the time, from the same taker
order, with the same price" (binance-spot-api-docs rest-api.md, aggTrades). Our market
has no orders; its trades come in runs at a price level, so an aggTrade here is a run
of consecutive trades of one minute with the same price and the same taker side
(`buyer_is_maker`). Its fields:

- `a`, the aggregate id, is the id of its first trade (`f`). Binance numbers aggregates
  consecutively; ours are deterministic and strictly increasing but not consecutive, so
  `fromId` means "aggregates whose id is >= fromId", which pages correctly with the
  usual `fromId = last a + 1`.
- `T` is the time of its *last* trade, and an aggregate is served only once that trade
  has printed. So an aggregate never changes after it is first served, ids and times
  only grow, and paging by `startTime = last T + 1` or by `fromId` misses nothing. The
  price of that choice: in the minute still forming, the run printing right now is not
  yet served, while the forming kline already counts its printed trades.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from weakref import WeakKeyDictionary

from candlevault.domain.trades import Trade
from candlevault.simulator.market import MINUTE_MS, VenueMarket
from candlevault.simulator.path import DAY_MS


@dataclass(frozen=True, slots=True)
class AggTrade:
    """A run of trades at one price and taker side; prices and sizes in listing units."""

    agg_id: int
    price: int
    qty: int
    first_id: int
    last_id: int
    time_ms: int  # of the last trade
    buyer_is_maker: bool


_MINUTES_KEPT = 32
_TAPES: WeakKeyDictionary[VenueMarket, OrderedDict[int, list[Trade]]] = WeakKeyDictionary()


def minute_trades(market: VenueMarket, open_ms: int) -> list[Trade]:
    """Return every trade of the minute opening at `open_ms` (printed or not), in id
    order, remembering the last few minutes expanded: paging and the forming minute ask
    for the same ones again and again, and expanding costs ~1 µs a trade."""
    tape = _TAPES.get(market)
    if tape is None:
        tape = _TAPES[market] = OrderedDict()
    trades = tape.get(open_ms)
    if trades is None:
        trades = tape[open_ms] = market.trades(open_ms)
        if len(tape) > _MINUTES_KEPT:
            tape.popitem(last=False)
    else:
        tape.move_to_end(open_ms)
    return trades


def aggregate(trades: list[Trade]) -> list[AggTrade]:
    """Fold consecutive trades with the same price and taker side into aggTrades."""
    out: list[AggTrade] = []
    i, n = 0, len(trades)
    while i < n:
        first = trades[i]
        qty = first.qty
        j = i
        while (
            j + 1 < n
            and trades[j + 1].price == first.price
            and trades[j + 1].buyer_is_maker == first.buyer_is_maker
        ):
            j += 1
            qty += trades[j].qty
        last = trades[j]
        first_id = int(first.trade_id)
        out.append(
            AggTrade(
                first_id, first.price, qty, first_id, int(last.trade_id), last.time_ms,
                first.buyer_is_maker,
            )
        )  # fmt: skip
        i = j + 1
    return out


def recent_trades(market: VenueMarket, now_ms: int, limit: int) -> list[Trade]:
    """Return the newest `limit` trades printed by `now_ms`, oldest first."""
    found: list[Trade] = []
    for minute in _minutes_back(market, now_ms):
        printed = [t for t in minute_trades(market, minute) if t.time_ms <= now_ms]
        found[:0] = printed
        if len(found) >= limit:
            break
    return found[-limit:] if found else []


def aggs_forward(
    market: VenueMarket,
    now_ms: int,
    *,
    start_ms: int,
    end_ms: int | None,
    limit: int,
    keep: Callable[[AggTrade], bool] | None = None,
) -> list[AggTrade]:
    """Return the oldest `limit` aggTrades with `start_ms <= T <= end_ms` (or now)."""
    end = now_ms if end_ms is None else min(end_ms, now_ms)
    found: list[AggTrade] = []
    minute = max(start_ms - start_ms % MINUTE_MS, market.listing.listed_ms)
    while minute <= end and len(found) < limit:
        found.extend(
            agg
            for agg in aggregate(minute_trades(market, minute))
            if start_ms <= agg.time_ms <= end and (keep is None or keep(agg))
        )
        minute += MINUTE_MS
    return found[:limit]


def aggs_backward(market: VenueMarket, now_ms: int, *, end_ms: int, limit: int) -> list[AggTrade]:
    """Return the newest `limit` aggTrades with `T <= end_ms` (and printed by now)."""
    end = min(end_ms, now_ms)
    found: list[AggTrade] = []
    for minute in _minutes_back(market, end):
        found[:0] = [agg for agg in aggregate(minute_trades(market, minute)) if agg.time_ms <= end]
        if len(found) >= limit:
            break
    return found[-limit:] if found else []


def aggs_from_id(market: VenueMarket, now_ms: int, *, from_id: int, limit: int) -> list[AggTrade]:
    """Return the oldest `limit` aggTrades whose id is >= `from_id` (printed by now)."""
    minute = _minute_of_trade(market, from_id, now_ms)
    return aggs_forward(
        market, now_ms, start_ms=minute, end_ms=None, limit=limit,
        keep=lambda agg: agg.agg_id >= from_id,
    )  # fmt: skip


def _minutes_back(market: VenueMarket, upto_ms: int) -> Iterator[int]:
    """Yield minute open times from the one holding `upto_ms` back to the listing."""
    minute = upto_ms - upto_ms % MINUTE_MS
    while minute >= market.listing.listed_ms:
        yield minute
        minute -= MINUTE_MS


def _minute_of_trade(market: VenueMarket, trade_id: int, now_ms: int) -> int:
    """Return the open time of the minute holding trade `trade_id` (clamped to the
    listing and to now), or of an earlier one: reading forward from there with the id
    filter is still exact. Paging by `fromId` asks for the trade after the last one
    served, which a recently expanded minute holds or precedes; otherwise a binary
    search over days by their first trade id, then over the day's minutes. Empty
    minutes share the next trade's id, so the last minute whose first id is <=
    `trade_id` is the one that holds it."""
    for minute, trades in _TAPES.get(market, {}).items():
        if trades and int(trades[0].trade_id) <= trade_id <= int(trades[-1].trade_id) + 1:
            return minute
    listed = market.listing.listed_ms
    lo, hi = (listed - listed % DAY_MS) // DAY_MS, (now_ms - now_ms % DAY_MS) // DAY_MS
    if hi < lo:
        return listed
    while lo < hi:  # the last day whose first id is <= trade_id
        mid = (lo + hi + 1) // 2
        if market.day(mid * DAY_MS).first_ids[0] <= trade_id:
            lo = mid
        else:
            hi = mid - 1
    day = lo * DAY_MS
    index = max(0, bisect.bisect_right(market.day(day).first_ids, trade_id) - 1)
    return max(listed, day + index * MINUTE_MS)
