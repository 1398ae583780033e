"""The trades a stream missed of the minute it (re)started in, fetched by id: Binance.

REST klines carry no trade ids, so they cannot be merged with what a stream saw of an
open minute; aggTrades can: each has the venue's aggregate id, the same on the stream
and on REST. While the stream's trades are held (`live.buffer`), the minute's trades up
to the first held id are fetched (`backfill`: aggTrades, by time then by `fromId`); if
the stream's first trade arrived only during the fetch, the gap between the last fetched
id and the first held one is fetched too. The stream was subscribed before the first
fetch, so nothing falls between the two. The caller folds both, in id order; ids seen
twice are ignored by the builder.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from candlevault.aggregation.builder import CandleBuilder
from candlevault.domain.trades import Trade
from candlevault.domain.venues import Venue
from candlevault.exchanges.ports import SymbolInfo
from candlevault.realtime.symbol import LiveSymbol

Backfill = Callable[[Venue, SymbolInfo, int, int | None], Awaitable[list[Trade]]]
"""(venue, info, from_ms, until_id): the trades with T >= from_ms and id < until_id (or up
to now), in id order."""
ROUNDS = 4


async def missed_trades(
    backfill: Backfill, live: LiveSymbol, builder: CandleBuilder, minute: int
) -> list[Trade] | None:
    """Return the minute's trades before the held ones, None if `builder` was replaced
    meanwhile (the feed broke again); raise what `backfill` raises."""
    got: list[Trade] = []
    from_ms = minute
    for _ in range(ROUNDS):
        held = live.buffer
        until = int(held[0].trade_id) if held else None
        for trade in await backfill(live.venue, live.info, from_ms, until):
            if not got or int(trade.trade_id) > int(got[-1].trade_id):
                got.append(trade)
        held = live.buffer
        if live.builder is not builder or held is None:
            return None
        # Contiguous with the stream (ids follow on), or nothing held yet: the stream,
        # subscribed before the fetch, has the rest.
        if not held or not got or int(got[-1].trade_id) + 1 >= int(held[0].trade_id):
            break
        from_ms = got[-1].time_ms
    return got
