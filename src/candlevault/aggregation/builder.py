"""Real-time candles of one symbol from its trade stream: pure, driven by exchange time.

`CandleBuilder` folds trades (in arrival order) into 1m candles with the shared
`CandleAccumulator`, closes minutes when `advance(now_ms, alive_until_ms)` says their
time (plus a grace period for late messages) is over, and answers the open candle of
every timeframe it maintains.

The key decision is where the per-trade work goes, since a busy symbol sends far more
trades than anything else: a trade touches only its minute's accumulator (after a
range check and a duplicate check). Each higher timeframe keeps a running aggregate of
its bucket's *closed* minutes, updated once per closed minute with `_combine` (the very
rule `aggregate` uses, zero-volume minutes included), and `open_candle(tf)` folds that
with the still-open minutes lazily, on read. So the open candles are exactly what the
closed ones will be, at the cost of one minute's update per trade.

What the builder refuses to guess:
- a minute with no trades becomes Binance's flat zero-volume candle only if the feed is
  proven alive past the minute's end (`alive_until_ms`: the latest message seen on an
  unbroken connection, or the exchange's own closed kline) by the time it closes (its
  end plus the grace) and the previous close is known; a minute with trades closes only
  if the feed was alive past its end too. A later proof does not do: a message after an
  exchange outage would vouch for minutes the exchange has no candle for at all. Any
  other minute is reported `unknown` (to repair from REST, which tells an empty minute
  from an outage; `unproven` when the feed was watching it), never emitted, and makes
  the next close unknown as well, so a silent feed never writes flat candles;
- a trade for a minute already closed is not folded anywhere: it is reported `late`
  (a "correction needed" signal for that minute);
- a repeated trade id is ignored: ids are kept for the open minutes and the last
  `dedup_minutes` closed ones (a window bounded in time);
- the minute in which the feed started (`start_ms`, else the first event) is unknown
  unless the feed started exactly at its open, since earlier trades may be missing.

Open and close follow arrival order, as `fold_trades` takes trades "in venue order":
the stream's order is the venue's, and trade times tie too often to sort by them.
Only closed 1m candles are emitted; the ingest layer derives closed higher timeframes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import msgspec

from candlevault.aggregation.candles import _combine
from candlevault.aggregation.trades import CandleAccumulator
from candlevault.domain.candles import Candle
from candlevault.domain.decimals import Precision
from candlevault.domain.errors import BadRequest
from candlevault.domain.timeframes import M1, MINUTE_MS, TIMEFRAMES, Timeframe
from candlevault.domain.trades import Trade


@dataclass(slots=True)
class Closing:
    """What `advance` settled: closed 1m candles to write, minutes to repair."""

    candles: list[Candle] = field(default_factory=list)
    """Closed 1m candles, ascending (the caller writes them through ingest)."""
    unknown: list[tuple[int, int]] = field(default_factory=list)
    """Merged half-open [start_ms, end_ms) spans of minutes not emitted: fetch them."""
    late: list[Trade] = field(default_factory=list)
    """Trades that arrived, since the last `advance`, for minutes already closed."""
    unproven: list[tuple[int, int]] = field(default_factory=list)
    """The part of `unknown` the feed was watching but never proved alive past: if the
    exchange printed trades there that `seen` lacks, the feed lost them while connected."""
    seen: dict[int, Candle] = field(default_factory=dict)
    """What the feed delivered of the unproven minutes that had trades, by open time."""

    def late_minutes(self) -> list[int]:
        """Return the open times of the minutes the late trades need corrected."""
        return sorted({t.time_ms - t.time_ms % MINUTE_MS for t in self.late})


class CandleBuilder:
    """Trades of one symbol -> closed 1m candles and open candles of every timeframe."""

    __slots__ = (
        "_accs",
        "_aggs",
        "_begun",
        "_closed_through_ms",
        "_cur_acc",
        "_cur_end",
        "_cur_open",
        "_cur_seen",
        "_dedup_minutes",
        "_details",
        "_grace_ms",
        "_higher",
        "_inception_ms",
        "_known_from_ms",
        "_late",
        "_now_ms",
        "_precision",
        "_prev_close",
        "_recent_seen",
        "_seen",
        "_start_ms",
    )

    def __init__(
        self,
        precision: Precision,
        *,
        inception_ms: int | None = None,
        timeframes: Iterable[Timeframe] = TIMEFRAMES,
        trade_details: bool = True,
        grace_ms: int = 2000,
        start_ms: int | None = None,
        dedup_minutes: int = 2,
    ) -> None:
        """`trade_details` False (Bybit) leaves trade count and taker volumes None;
        `start_ms` is when the feed started delivering every trade (default: the first
        event); `inception_ms` (the listing) is needed for 3d."""
        self._precision = precision
        self._inception_ms = inception_ms
        self._higher = tuple(tf for tf in dict.fromkeys(timeframes) if tf != M1)
        for tf in self._higher:
            if not M1.divides(tf):
                raise BadRequest(f"{tf.code} cannot be built from 1m candles")
            tf.bucket_open(0, inception_ms)  # 3d without an inception fails here, early
        self._details = trade_details
        self._grace_ms = grace_ms
        self._dedup_minutes = dedup_minutes
        self._accs: dict[int, CandleAccumulator] = {}
        self._seen: dict[int, set[int | str]] = {}
        self._recent_seen: dict[int, set[int | str]] = {}
        self._aggs: dict[Timeframe, Candle] = {}
        self._late: list[Trade] = []
        self._prev_close: int | None = None
        self._start_ms = start_ms
        self._closed_through_ms: int | None = None
        self._known_from_ms: int | None = None
        self._begun = False
        self._now_ms = start_ms if start_ms is not None else 0
        # The fast path's minute: an empty range until the first trade opens one.
        self._cur_open, self._cur_end = 1, 0
        self._cur_acc: CandleAccumulator | None = None
        self._cur_seen: set[int | str] = set()

    # --- trades ------------------------------------------------------------------

    def add(self, trade: Trade) -> None:
        """Fold one trade in arrival order (late trades go to the next `Closing`)."""
        t = trade.time_ms
        if self._cur_open <= t < self._cur_end:
            seen = self._cur_seen
            tid = trade.trade_id
            if tid not in seen:
                seen.add(tid)
                self._cur_acc.add(trade)  # type: ignore[union-attr]  # set with the range
            return
        self._add_elsewhere(trade)

    def _add_elsewhere(self, trade: Trade) -> None:
        """Fold a trade outside the fast path's minute: another open minute, a new one,
        or a closed one (late, unless a duplicate)."""
        t = trade.time_ms
        if not self._begun:
            self._begin(t)
        minute = t - t % MINUTE_MS
        tid = trade.trade_id
        if minute < self._closed_through_ms:  # type: ignore[operator]  # set by _begin
            if tid not in self._recent_seen.get(minute, ()):
                self._late.append(trade)
            return
        acc = self._accs.get(minute)
        if acc is None:
            acc = self._accs[minute] = CandleAccumulator(minute, self._precision)
            seen = self._seen[minute] = set()
        else:
            seen = self._seen[minute]
        if minute > self._cur_open or self._cur_acc is None:  # a later minute: make it current
            self._cur_open, self._cur_end = minute, minute + MINUTE_MS
            self._cur_acc, self._cur_seen = acc, seen
            if t > self._now_ms:
                self._now_ms = t
        if tid not in seen:
            seen.add(tid)
            acc.add(trade)

    def _begin(self, event_ms: int) -> None:
        """Start watching at `start_ms` (else the first event): earlier minutes are not
        ours, unless restored; its own minute is whole only if the feed started at its open."""
        if self._start_ms is None:
            self._start_ms = event_ms
        start_ms = self._start_ms
        self._begun = True
        minute = start_ms - start_ms % MINUTE_MS
        if self._closed_through_ms is None:
            self._closed_through_ms = minute
        if self._known_from_ms is None:
            self._known_from_ms = minute if minute == start_ms else minute + MINUTE_MS

    def restore(self, minutes: Iterable[Candle]) -> None:
        """Resume after stored closed 1m candles (ascending, before any trade is added),
        so the open higher-timeframe candles include the minutes already written."""
        if self._begun:
            raise BadRequest("restore before the first trade or advance")
        for candle in minutes:
            open_ms = candle.open_time_ms
            if self._closed_through_ms is not None and open_ms < self._closed_through_ms:
                raise BadRequest(f"restored minute {open_ms} is not after the last one")
            if self._known_from_ms is None or open_ms != self._closed_through_ms:
                self._known_from_ms = open_ms  # a gap: the buckets before it are partial
            self._fold_closed(candle)
            self._prev_close = candle.close
            self._closed_through_ms = open_ms + MINUTE_MS

    def resume_after(self, candle: Candle) -> None:
        """Take the exchange's version of the minute closed last (one the builder could
        not vouch for, or corrected): its close is what a quiet next minute is flat at."""
        if candle.open_time_ms + MINUTE_MS == self._closed_through_ms:
            self._prev_close = candle.close

    # --- closing -----------------------------------------------------------------

    def advance(self, now_ms: int, alive_until_ms: int) -> Closing:
        """Close every minute that ended at or before `now_ms - grace`; return what closed,
        what is unknown and the late trades seen since the last call."""
        if not self._begun:
            self._begin(now_ms)
        if now_ms > self._now_ms:
            self._now_ms = now_ms
        out = Closing(late=self._late)
        self._late = []
        limit = now_ms - self._grace_ms
        minute: int = self._closed_through_ms  # type: ignore[assignment]  # set by _begin
        while minute + MINUTE_MS <= limit:
            self._close_minute(minute, alive_until_ms >= minute + MINUTE_MS, out)
            minute += MINUTE_MS
        self._closed_through_ms = minute
        if self._cur_open < minute:  # the fast path must not fold into a closed minute
            self._cur_open, self._cur_end, self._cur_acc = 1, 0, None
        return out

    def _close_minute(self, minute: int, alive: bool, out: Closing) -> None:
        acc = self._accs.pop(minute, None)
        seen = self._seen.pop(minute, None)
        if seen is not None:
            recent = self._recent_seen
            recent[minute] = seen
            while len(recent) > self._dedup_minutes:
                del recent[next(iter(recent))]
        whole = alive and minute >= self._start_ms  # type: ignore[operator]
        if acc is not None and whole:
            candle: Candle | None = self._finish(acc.candle(closed=True))
        elif acc is None and whole and self._prev_close is not None:
            flat = CandleAccumulator(minute, self._precision, self._prev_close)
            candle = self._finish(flat.candle(closed=True))
        else:
            candle = None
        if candle is None:
            self._prev_close = None
            self._known_from_ms = minute + MINUTE_MS
            _extend(out.unknown, minute)
            if not alive and minute >= self._start_ms:  # type: ignore[operator]
                _extend(out.unproven, minute)
                if acc is not None:
                    out.seen[minute] = self._finish(acc.candle(closed=True))
            return
        self._prev_close = candle.close
        self._fold_closed(candle)
        out.candles.append(candle)

    def _fold_closed(self, candle: Candle) -> None:
        """Add a closed minute to the running aggregate of every higher timeframe."""
        minute, inception, aggs = candle.open_time_ms, self._inception_ms, self._aggs
        for tf in self._higher:
            agg = aggs.get(tf)
            if agg is not None and minute <= agg.close_time_ms:
                aggs[tf] = _combine([agg, candle], agg.open_time_ms, agg.close_time_ms, False, True)
            else:
                bucket = tf.bucket_open(minute, inception)
                close_ms = tf.close_time(bucket, inception)
                aggs[tf] = _combine([candle], bucket, close_ms, False, True)

    def _finish(self, candle: Candle) -> Candle:
        if self._details:
            return candle
        return msgspec.structs.replace(
            candle, trades=None, taker_buy_base=None, taker_buy_quote=None
        )

    # --- open candles ------------------------------------------------------------

    @property
    def closed_through_ms(self) -> int | None:
        """The open time of the first minute not closed yet (None before the start)."""
        return self._closed_through_ms

    def watched_from_ms(self) -> int | None:
        """The first minute the feed watched from its open (None before the start)."""
        start = self._start_ms
        if start is None:
            return None
        return start if start % MINUTE_MS == 0 else start - start % MINUTE_MS + MINUTE_MS

    def current_minute_ms(self) -> int:
        """Return the open time of the current minute (of the latest trade or `now_ms`)."""
        now = self._now_ms
        return max(now - now % MINUTE_MS, self._cur_open)

    def open_candle(self, tf: Timeframe = M1) -> Candle | None:
        """Return the open candle of `tf` (closed=False) as it stands, or None when nothing
        is known of it (no trade yet and no known previous close)."""
        if tf != M1 and tf not in self._higher:
            raise BadRequest(f"{tf.code} is not maintained by this builder")
        if self._closed_through_ms is None:
            return None
        return self._open_candle(tf, self.current_minute_ms(), self._open_minutes())

    def pending(self, now_ms: int, alive_until_ms: int) -> list[Candle]:
        """The minutes over by `now_ms` that `advance` has not closed yet, as they stand
        (flagged closed): traded ones, and quiet ones flat at the close before them.
        Only minutes watched from their open, and either proven whole by `alive_until_ms`
        or still within the grace (where `advance` would still take their late trades)."""
        out: list[Candle] = []
        watched = self.watched_from_ms()
        minute = self._closed_through_ms
        if minute is None or watched is None:
            return out
        prev = self._prev_close
        while minute + MINUTE_MS <= now_ms:
            end = minute + MINUTE_MS
            if alive_until_ms < end and now_ms >= end + self._grace_ms:
                break  # unproven and past the grace: not the stream's to answer
            acc = self._accs.get(minute)
            if minute < watched:
                prev = None
            elif acc is not None:
                out.append(self._finish(acc.candle(closed=True)))
                prev = out[-1].close
            elif prev is not None:
                flat = CandleAccumulator(minute, self._precision, prev)
                out.append(self._finish(flat.candle(closed=True)))
            minute = end
        return out

    def open_candles(self) -> dict[Timeframe, Candle]:
        """Return the open candle of every maintained timeframe that has one."""
        out: dict[Timeframe, Candle] = {}
        if self._closed_through_ms is None:
            return out
        cur, minutes = self.current_minute_ms(), self._open_minutes()
        for tf in (M1, *self._higher):
            candle = self._open_candle(tf, cur, minutes)
            if candle is not None:
                out[tf] = candle
        return out

    def _open_minutes(self) -> list[Candle]:
        """The candles of the minutes still open (traded, not yet closed), ascending."""
        accs = self._accs
        return [self._finish(accs[m].candle(closed=False)) for m in sorted(accs)]

    def _open_candle(self, tf: Timeframe, cur: int, minutes: list[Candle]) -> Candle | None:
        """Fold the bucket's closed minutes (the running aggregate) with its open ones."""
        if tf == M1:
            bucket, close_ms = cur, cur + MINUTE_MS - 1
        else:
            bucket = tf.bucket_open(cur, self._inception_ms)
            close_ms = tf.close_time(bucket, self._inception_ms)
        group: list[Candle] = []
        agg = self._aggs.get(tf)
        if agg is not None and agg.open_time_ms == bucket:
            group.append(agg)
        group.extend(c for c in minutes if bucket <= c.open_time_ms)
        if not group:  # nothing traded in the bucket yet: flat at the last close
            prev = minutes[-1].close if minutes else self._prev_close
            if prev is None:
                return None
            group.append(self._finish(CandleAccumulator(cur, self._precision, prev).candle(False)))
        return _combine(group, bucket, close_ms, False, self._complete_from(bucket))

    def _complete_from(self, bucket: int) -> bool:
        """True when every minute of the bucket up to now (from the listing) was closed
        whole or is still open, and none of them is bound to be unknown."""
        first = max(bucket, self._inception_minute())
        known, start = self._known_from_ms, self._start_ms
        return (
            known is not None
            and known <= first
            and start is not None
            and start <= max(first, self._closed_through_ms or 0)
        )

    def _inception_minute(self) -> int:
        inception = self._inception_ms
        return 0 if inception is None else inception - inception % MINUTE_MS


def _extend(spans: list[tuple[int, int]], minute: int) -> None:
    """Add `minute` to ascending merged spans (it is at or after their end)."""
    if spans and spans[-1][1] == minute:
        spans[-1] = (spans[-1][0], minute + MINUTE_MS)
    else:
        spans.append((minute, minute + MINUTE_MS))
