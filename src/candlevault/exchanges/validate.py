"""What a kline reply must be before anything of it is stored.

Every client hands its parsed rows here. A reply is refused whole (`MalformedReply`, with
the reason logged and recorded) when a row is insane (low above open, negative volume),
rows are out of order or repeated, an open time is off the 1m grid, a close time is not
open + 59,999 ms, a row opens after the exchange's clock (give or take a few seconds
of our reading of it), or (Binance) a row lies outside the asked window; Bybit returns
rows around the window, which are dropped. The candle whose close time is not yet past the
exchange's clock is the forming one: returned apart, never as closed.

Real history holds rows the exchange returns the same way every time (off-grid klines
around old maintenance windows): `MalformedReply.rows` keeps the offending raw rows, so
that the bootstrap can tell a persistent anomaly (same rows twice) from a corrupted
reply and record it in the ledger instead of refetching in a loop.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from itertools import islice, pairwise
from operator import le, lt
from typing import TypeVar

import msgspec

from candlevault.domain.candles import Candle, sanity_problems
from candlevault.domain.columns import CandleColumns
from candlevault.domain.errors import ExchangeError

T = TypeVar("T")
MINUTE_MS = 60_000
CLOCK_SLACK_MS = 5_000  # how far a candle's open may be past our reading of the clock


class MalformedReply(ExchangeError):
    """A reply that cannot be stored; `rows` are the offending rows as received."""

    def __init__(self, reason: str, rows: Sequence[object] = ()) -> None:
        super().__init__(reason)
        self.reason = reason
        self.rows = list(rows)


class Checked(msgspec.Struct):
    """The closed candles of a reply (ascending), its forming candle, rows dropped."""

    closed: list[Candle]
    forming: Candle | None
    dropped: int = 0


def check_klines(
    candles: Sequence[Candle],
    *,
    start_ms: int,
    end_ms: int,
    now_ms: int,
    drop_outside: bool = False,
) -> Checked:
    """Validate 1m candles (any order the venue sends them) answering [start_ms, end_ms].

    `now_ms` is the exchange's clock; `drop_outside` drops rows outside the window
    instead of refusing the reply (Bybit's windows overlap their edges)."""
    rows = sorted(candles, key=lambda c: c.open_time_ms)
    for a, b in pairwise(rows):
        if a.open_time_ms == b.open_time_ms:
            raise MalformedReply(f"open time {a.open_time_ms} repeated", [a, b])
    for candle in rows:  # before dropping: a corrupted time must not pass as "outside"
        if candle.open_time_ms % MINUTE_MS:
            raise MalformedReply(f"open time {candle.open_time_ms} off the 1m grid", [candle])
    inside = [c for c in rows if start_ms <= c.open_time_ms <= end_ms]
    dropped = len(rows) - len(inside)
    if dropped and not drop_outside:
        outside = [c for c in rows if not start_ms <= c.open_time_ms <= end_ms]
        raise MalformedReply(f"{dropped} rows outside [{start_ms}, {end_ms}]", outside)
    for candle in inside:
        _check_row(candle)
    # Our reading of the exchange's clock can lag its own by a little at a minute's turn.
    future = [c for c in inside if c.open_time_ms > now_ms + CLOCK_SLACK_MS]
    if future:
        raise MalformedReply(f"{len(future)} rows open after the exchange's clock", future)
    closed = [c for c in inside if c.close_time_ms < now_ms]
    still_open = inside[len(closed) :]  # a suffix: the forming candle, and within the slack
    if not still_open:  # a candle our clock does not see closed yet (not returned at all)
        return Checked(closed, None, dropped)
    forming = msgspec.structs.replace(still_open[-1], closed=False)
    return Checked(closed, forming, dropped + len(still_open) - 1)


def check_columns(
    rows: CandleColumns, *, start_ms: int, end_ms: int, now_ms: int
) -> tuple[CandleColumns, Candle | None]:
    """`check_order` (ascending) and `check_klines` on columns, with the same verdicts and
    reasons: a whole Binance reply checked without building a `Candle` per row."""
    _check_ascending(rows.open_time_ms, rows)
    opens = rows.open_time_ms
    if not opens:
        return rows, None
    _check_shape(rows, start_ms, end_ms)
    if opens[-1] > now_ms + CLOCK_SLACK_MS:
        future = [c for c in rows.candles() if c.open_time_ms > now_ms + CLOCK_SLACK_MS]
        raise MalformedReply(f"{len(future)} rows open after the exchange's clock", future)
    n = bisect_left(rows.close_time_ms, now_ms)  # closes ascend with opens
    if n == len(rows):
        return rows, None
    forming = msgspec.structs.replace(rows.candle(len(rows) - 1), closed=False)
    return rows.slice(0, n), forming


def _check_ascending(opens: list[int], rows: CandleColumns) -> None:
    if all(map(lt, opens, islice(opens, 1, None))):
        return
    if all(map(le, opens, islice(opens, 1, None))):
        t = next(a for a, b in pairwise(opens) if a == b)
        same = [c for c in rows.candles() if c.open_time_ms == t]
        raise MalformedReply(f"open time {t} repeated", same)
    raise MalformedReply("rows not in ascending open time", list(rows.candles()))


def _check_shape(rows: CandleColumns, start_ms: int, end_ms: int) -> None:
    """Grid, window, close times and sanity, in `check_klines`' order of complaints."""
    opens = rows.open_time_ms
    for i, t in enumerate(opens):
        if t % MINUTE_MS:
            raise MalformedReply(f"open time {t} off the 1m grid", [rows.candle(i)])
    if opens[0] < start_ms or opens[-1] > end_ms:
        outside = [c for c in rows.candles() if not start_ms <= c.open_time_ms <= end_ms]
        raise MalformedReply(f"{len(outside)} rows outside [{start_ms}, {end_ms}]", outside)
    expected = [t + MINUTE_MS - 1 for t in opens]
    pairs = zip(rows.close_time_ms, expected, strict=True)
    wrong = next((i for i, (got, want) in enumerate(pairs) if got != want), None)
    insane = _first_insane(rows)
    first = min((i for i in (wrong, insane) if i is not None), default=None)
    if first is not None:
        _check_row(rows.candle(first))


def _first_insane(rows: CandleColumns) -> int | None:
    """The first row `sanity_problems` would object to, found without a Candle per row."""
    cols = zip(
        rows.open, rows.high, rows.low, rows.close, rows.volume, rows.quote_volume, strict=True
    )
    for i, (o, h, lo, c, v, qv) in enumerate(cols):
        if not (lo <= o <= h and lo <= c <= h and v >= 0 and qv >= 0):
            return i
    trades, taker_base, taker_quote = rows.trades, rows.taker_buy_base, rows.taker_buy_quote
    if trades is not None and taker_base is not None and taker_quote is not None:
        extra = zip(trades, taker_base, taker_quote, rows.volume, rows.quote_volume, strict=True)
        for i, (n, tb, tq, v, qv) in enumerate(extra):
            if not (n >= 0 and 0 <= tb <= v and 0 <= tq <= qv):
                return i
    return None


def decoded(decoder: msgspec.json.Decoder[T], body: bytes, what: str) -> T:
    """Decode a reply strictly; a body that does not fit the schema is malformed."""
    try:
        return decoder.decode(body)
    except msgspec.DecodeError as e:
        raise MalformedReply(f"{what}: {e}") from e


def check_order(candles: Sequence[Candle], *, newest_first: bool) -> None:
    """Refuse a reply whose rows are not in the venue's documented order."""
    opens = [c.open_time_ms for c in candles]
    expected = sorted(opens, reverse=newest_first)
    if opens != expected:
        raise MalformedReply(
            f"rows not in {'descending' if newest_first else 'ascending'} open time", candles
        )


def _check_row(candle: Candle) -> None:
    if candle.open_time_ms % MINUTE_MS:
        raise MalformedReply(f"open time {candle.open_time_ms} off the 1m grid", [candle])
    if candle.close_time_ms != candle.open_time_ms + MINUTE_MS - 1:
        raise MalformedReply(
            f"close time {candle.close_time_ms} is not open time + 59999", [candle]
        )
    problems = sanity_problems(candle)
    if problems:
        raise MalformedReply(f"{'; '.join(problems)} at {candle.open_time_ms}", [candle])
