"""Klines of any interval from one venue market, at a given sim time, as exchanges page them.

Every interval is aggregated from the market's 1m candles with the domain core (the same
rules candlevault applies), so a higher-timeframe kline always equals the aggregation of
its 1m klines. The bucket holding `now` is the forming candle: its minutes so far, the
current one folded from the trades already printed, `closed` false and its close time in
the future, as on the real exchanges; nothing after `now` exists yet.

Closed buckets are immutable, so they are memoised; only the forming one is rebuilt.
"""

from __future__ import annotations

from collections import OrderedDict

from candlevault.aggregation import aggregate
from candlevault.domain.candles import Candle
from candlevault.domain.timeframes import D1, DAY_MS, H1, HOUR_MS, M1, Timeframe
from candlevault.simulator.market import MINUTE_MS, VenueMarket


class KlineView:
    """Query one market's klines; `now_ms` is passed in by the caller's clock."""

    def __init__(self, market: VenueMarket, memo_size: int = 200_000) -> None:
        self.market = market
        self._listed = market.listing.listed_ms
        self._memo: OrderedDict[tuple[str, int], Candle | None] = OrderedDict()
        self._memo_size = memo_size

    def window(
        self,
        tf: Timeframe,
        *,
        now_ms: int,
        start_ms: int | None,
        end_ms: int | None,
        limit: int,
    ) -> list[Candle]:
        """Return klines as Binance pages them: with `start_ms`, the oldest `limit` whose
        open time is in [start_ms, end_ms]; without, the newest `limit` up to `end_ms`.
        `end_ms` defaults to now; nothing opens after now."""
        end = now_ms if end_ms is None else min(end_ms, now_ms)
        if start_ms is not None:
            return self._forward(tf, start_ms, end, limit, now_ms)
        return self._backward(tf, end, limit, now_ms)

    def bucket(self, tf: Timeframe, open_ms: int, now_ms: int) -> Candle | None:
        """Return the kline opening at `open_ms` (None: no trading data in it)."""
        if open_ms > now_ms:
            return None
        if tf.close_time(open_ms, self._listed) >= now_ms:
            return self._forming(tf, open_ms, now_ms)
        key = (tf.code, open_ms)
        if key in self._memo:
            self._memo.move_to_end(key)
            return self._memo[key]
        candle = self._closed(tf, open_ms)
        self._memo[key] = candle
        if len(self._memo) > self._memo_size:
            self._memo.popitem(last=False)
        return candle

    def _forward(self, tf: Timeframe, start: int, end: int, limit: int, now: int) -> list[Candle]:
        first = max(start, tf.bucket_open(self._listed, self._listed))
        t = tf.bucket_open(first, self._listed)
        if t < first:
            t = tf.next_open(t, self._listed)
        if tf is M1:
            return self._minutes_forward(t, end, limit, now)
        out: list[Candle] = []
        while t <= end and len(out) < limit:
            candle = self.bucket(tf, t, now)
            if candle is not None:
                out.append(candle)
            t = tf.next_open(t, self._listed)
        return out

    def _backward(self, tf: Timeframe, end: int, limit: int, now: int) -> list[Candle]:
        if end < self._listed:
            return []
        first = tf.bucket_open(self._listed, self._listed)
        t = tf.bucket_open(end, self._listed)
        out: list[Candle] = []
        while t >= first and len(out) < limit:
            candle = self.bucket(tf, t, now)
            if candle is not None:
                out.append(candle)
            t = tf.bucket_open(t - 1, self._listed)
        out.reverse()
        return out

    def _minutes_forward(self, start: int, end: int, limit: int, now: int) -> list[Candle]:
        out: list[Candle] = []
        t = start
        while t <= end and len(out) < limit:
            # whole days at a time: the market hands out its blocks cheaply
            upto = min(end, t + (limit - len(out)) * MINUTE_MS - 1)
            closed_upto = min(upto, now - now % MINUTE_MS - 1)
            out.extend(self.market.candles(t, closed_upto)[: limit - len(out)])
            if upto >= now - now % MINUTE_MS and len(out) < limit:
                forming = self._forming(M1, now - now % MINUTE_MS, now)
                if forming is not None:
                    out.append(forming)
            t = upto + 1
        return out

    def _closed(self, tf: Timeframe, open_ms: int) -> Candle | None:
        close = tf.close_time(open_ms, self._listed)
        if tf.duration_ms > DAY_MS:  # 3d, 1w, 1M: from memoised days, not 44,640 minutes
            return self._from_parts(tf, D1, open_ms, close + 1, None, now_ms=None)
        minutes = self.market.candles(open_ms, close)
        if not minutes:
            return None
        if tf is M1:
            return minutes[0]
        (candle,) = aggregate(minutes, tf, inception_ms=self._listed, outages=self.market.outages)
        return candle

    def _forming(self, tf: Timeframe, open_ms: int, now: int) -> Candle | None:
        if tf.duration_ms > HOUR_MS:  # closed hours or days are memoised: reuse them
            finer = D1 if tf.duration_ms > DAY_MS else H1
            current_part = finer.bucket_open(now)
            live = self._forming(finer, current_part, now)
            return self._from_parts(tf, finer, open_ms, current_part, live, now)
        current = now - now % MINUTE_MS
        minutes = self.market.candles(open_ms, current - 1)
        live = self.market.forming(current, now)
        if live is not None:
            minutes.append(live)
        if not minutes:
            return None
        if tf is M1:
            return minutes[-1] if minutes[-1].open_time_ms == open_ms else None
        (candle,) = aggregate(
            minutes, tf, inception_ms=self._listed, outages=self.market.outages, now_ms=now
        )
        return candle

    def _from_parts(
        self,
        tf: Timeframe,
        finer: Timeframe,
        open_ms: int,
        upto: int,
        last: Candle | None,
        now_ms: int | None,
    ) -> Candle | None:
        """Aggregate the closed `finer` buckets in [open_ms, upto) (memoised) and `last`.

        1m -> 1h/1d -> higher equals 1m -> higher (a property the tests check), so a month
        costs ~31 lookups instead of 44,640 minutes.
        """
        first = max(open_ms, finer.bucket_open(self._listed))
        parts = [self.bucket(finer, t, upto) for t in range(first, upto, finer.duration_ms)]
        found = [p for p in parts if p is not None]
        if last is not None:
            found.append(last)
        if not found:
            return None
        (candle,) = aggregate(
            found,
            tf,
            source=finer,
            inception_ms=self._listed,
            outages=self.market.outages,
            now_ms=now_ms,
        )
        return candle
