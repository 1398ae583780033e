"""One venue's market for one symbol: minute summaries first, trades on demand.

A bootstrap reads every minute once at hundreds of thousands of candles a second, so a
minute's *summary* is primary and cheap: it is drawn per UTC day (a `DayBlock`, about
1440 small draws) from the symbol's `PricePath`. Each traded minute is described by a
few price levels it visits (open, then high and low in the order the close implies,
then close) with the trade count, volume and taker-buy volume at each level. The
candle follows from those in O(levels); its trades are expanded only when asked for,
deterministically, by splitting each level's volumes into that many trades, so that
`fold_trades` of the expansion gives back exactly the summary's candle.

Trade counts: each venue draws a day's total (growing with the years) and spreads it
over the minutes by cumulative rounding of their activity, so the first trade id of
any minute is a prefix sum known without expanding anything, and quiet minutes of an
illiquid symbol get no trade: a flat zero-volume candle at the previous close, as
Binance emits it. Outage minutes have no candle at all.
"""

from __future__ import annotations

import math
import operator
import random
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from candlevault.aggregation import Outage, fold_trades
from candlevault.domain.candles import Candle
from candlevault.domain.trades import Trade
from candlevault.simulator.instruments import Listing
from candlevault.simulator.path import DAY_MS, MINUTES, PricePath

MINUTE_MS = 60_000
_YEAR_DAYS = 365.25


class Recipe(NamedTuple):
    """A traded minute in brief: the price levels it visits (open, then high and low in
    the order the close implies, then close), its trade count, its volume in steps and
    the taker-buy share. Everything else about its trades follows from these."""

    prices: tuple[int, ...]
    trades: int
    volume: int  # steps, >= trades
    share: float

    def levels(self) -> Levels:
        """Lay the trades out over the levels: counts, volumes and taker-buy parts.

        Each level gets its share of the trades and a proportional share of the volume;
        taker-buy trades are `share` of each level's, with volume in proportion, so that
        every trade can have at least one step.
        """
        n, total, width = self.trades, self.volume, len(self.prices)
        each, extra = divmod(n, width)
        counts = tuple(each + (j < extra) for j in range(width))
        volumes = [total * k // n for k in counts]
        volumes[-1] += total - sum(volumes)
        buys = tuple(int(k * self.share + 0.5) for k in counts)
        bought = tuple(v * b // k for v, b, k in zip(volumes, buys, counts, strict=True))
        return Levels(self.prices, counts, buys, tuple(volumes), bought)


RawRecipe = tuple[tuple[int, ...], int, int, float]
"""A Recipe's fields as a plain tuple: what a day block stores (cheaper to build)."""


@dataclass(frozen=True, slots=True)
class Levels:
    """How a traded minute's trades are laid out: per level, price and counts."""

    prices: tuple[int, ...]  # price units
    counts: tuple[int, ...]  # trades
    buys: tuple[int, ...]  # of which taker-buy trades
    volumes: tuple[int, ...]  # in steps
    buy_volumes: tuple[int, ...]  # taker-buy volume, in steps


@dataclass(frozen=True, slots=True)
class DayBlock:
    """Every minute of one UTC day on one venue."""

    day_ms: int
    candles: list[Candle | None]  # None: before the listing or in an outage
    recipes: list[RawRecipe | None]  # None: no trade in that minute (Recipe fields)
    first_ids: list[int]  # id of the minute's first trade (the next id if it has none)
    last_close: int | None  # close of the day's last candle


class VenueMarket:
    """The market of `listing` on its venue, following the symbol's `path`."""

    def __init__(
        self,
        listing: Listing,
        path: PricePath,
        seed: int,
        outages: Sequence[Outage] = (),
        cache_days: int = 8,
    ) -> None:
        if not listing.exact_quote:
            raise ValueError(f"{listing.symbol}: tick × step is not exact at quote precision")
        self.listing = listing
        self.outages = tuple(outages)
        self._path = path
        self._seed = f"{seed}:{listing.venue.value}:{listing.symbol}"
        self._listed_day = listing.listed_ms - listing.listed_ms % DAY_MS
        self._day_totals: list[int] = []  # trades per day since the listing day
        self._first_of_day: list[int] = [0]  # prefix sums of _day_totals
        self._count_rng = random.Random(f"{self._seed}:counts")
        self._blocks: OrderedDict[int, DayBlock] = OrderedDict()
        self._cache_days = cache_days
        p = listing.precision
        self._quote_div = 10 ** (p.price + p.base - p.quote)

    # -- public views ---------------------------------------------------------------

    def candles(self, start_ms: int, end_ms: int) -> list[Candle]:
        """Return the complete 1m candles opening in [start_ms, end_ms] (no clock here)."""
        start = max(start_ms, self.listing.listed_ms)
        start += -start % MINUTE_MS
        out: list[Candle] = []
        day = start - start % DAY_MS
        while day <= end_ms:
            block = self.day(day)
            first = max(0, (start - day) // MINUTE_MS)
            last = min(MINUTES - 1, (end_ms - day) // MINUTE_MS)
            out.extend(c for c in block.candles[first : last + 1] if c is not None)
            day += DAY_MS
        return out

    def minute(self, open_ms: int) -> Candle | None:
        """Return the 1m candle opening at `open_ms` (None: no candle then)."""
        day = open_ms - open_ms % DAY_MS
        return self.day(day).candles[(open_ms - day) // MINUTE_MS]

    def trades(self, open_ms: int) -> list[Trade]:
        """Expand the trades of the minute opening at `open_ms`, in exchange order."""
        day = open_ms - open_ms % DAY_MS
        block = self.day(day)
        index = (open_ms - day) // MINUTE_MS
        recipe = block.recipes[index]
        if recipe is None:
            return []
        return _expand(
            Recipe(*recipe).levels(),
            open_ms,
            block.first_ids[index],
            self.listing.step,
            random.Random(f"{self._seed}:{open_ms}:trades"),
        )

    def forming(self, open_ms: int, now_ms: int) -> Candle | None:
        """Return the minute opening at `open_ms` as it stands at `now_ms` (not closed)."""
        whole = self.minute(open_ms)
        if whole is None:
            return None
        done = [t for t in self.trades(open_ms) if t.time_ms <= now_ms]
        prev = self.previous_close(open_ms)
        return fold_trades(
            done,
            open_time_ms=open_ms,
            precision=self.listing.precision,
            prev_close=prev if prev is not None else whole.open,
            closed=False,
        )

    def previous_close(self, open_ms: int) -> int | None:
        """Return the close of the last candle before `open_ms`."""
        day = open_ms - open_ms % DAY_MS
        index = (open_ms - day) // MINUTE_MS
        while day >= self._listed_day:
            block = self.day(day)
            for candle in reversed(block.candles[:index]):
                if candle is not None:
                    return candle.close
            day -= DAY_MS
            index = MINUTES
        return None

    def day(self, day_ms: int) -> DayBlock:
        """Return (and cache) the block of the UTC day that starts at `day_ms`."""
        block = self._blocks.get(day_ms)
        if block is not None:
            self._blocks.move_to_end(day_ms)
            return block
        block = self._build(day_ms)
        self._blocks[day_ms] = block
        if len(self._blocks) > self._cache_days:
            self._blocks.popitem(last=False)
        return block

    # -- generation -----------------------------------------------------------------

    def _open_minutes(self, day_ms: int) -> list[bool]:
        """Which minutes of the day have a candle: after the listing, outside outages."""
        is_open = [day_ms + i * MINUTE_MS >= self.listing.listed_ms for i in range(MINUTES)]
        for lo, hi in self.outages:
            if hi <= day_ms or lo >= day_ms + DAY_MS:
                continue
            for i in range(
                max(0, (lo - day_ms) // MINUTE_MS), min(MINUTES, -(-(hi - day_ms) // MINUTE_MS))
            ):
                is_open[i] = False
        return is_open

    def _day_total(self, day_index: int) -> tuple[int, int]:
        """Return (trades that day, id of its first trade), drawn in order from the listing."""
        while len(self._day_totals) <= day_index:
            years = len(self._day_totals) / _YEAR_DAYS
            rate = self.listing.trades_per_day * min(self.listing.growth_per_year**years, 40.0)
            total = max(1, int(rate * math.exp(self._count_rng.gauss(0.0, 0.35))))
            self._day_totals.append(total)
            self._first_of_day.append(self._first_of_day[-1] + total)
        return self._day_totals[day_index], self._first_of_day[day_index]

    def _build(self, day_ms: int) -> DayBlock:
        listing = self.listing
        index = (day_ms - self._listed_day) // DAY_MS
        candles: list[Candle | None] = [None] * MINUTES
        recipes: list[RawRecipe | None] = [None] * MINUTES
        if index < 0:
            return DayBlock(day_ms, candles, recipes, [0] * MINUTES, None)
        is_open = self._open_minutes(day_ms)
        path = self._path.day(day_ms)
        rng = random.Random(f"{self._seed}:{day_ms}")
        r = rng.random
        weights = [
            (a if r() < listing.liquidity else a * 0.02) if o else 0.0
            for a, o in zip(path.activity, is_open, strict=True)
        ]
        total, next_id = self._day_total(index)
        if not any(is_open):
            total = 0  # a whole day of outage: its ids are simply never used
        counts = _spread(total, weights, is_open)
        tick = listing.tick
        scale = 10**listing.precision.price / tick
        marks = [max(1, round(math.exp(x) * scale)) * tick for x in path.log_prices]
        first_ids, prev = self._minutes(
            day_ms, is_open, counts, marks, path.minute_vol, next_id, r, candles, recipes
        )
        return DayBlock(day_ms, candles, recipes, first_ids, prev)

    def _minutes(
        self,
        day_ms: int,
        is_open: list[bool],
        counts: list[int],
        marks: list[int],
        vols: list[float],
        next_id: int,
        r: Callable[[], float],
        candles: list[Candle | None],
        recipes: list[RawRecipe | None],
    ) -> tuple[list[int], int | None]:
        """Draw every minute of a day into `candles` and `recipes`; return the first trade
        ids and the day's last close. The hot loop of the simulator: kept flat (no calls
        for the common four-level minute) because a cold bootstrap runs it per candle."""
        listing = self.listing
        tick, step, div, mean = listing.tick, listing.step, self._quote_div, listing.qty_per_trade
        first_ids: list[int] = []
        prev: int | None = None
        for i in range(MINUTES):
            first_ids.append(next_id)
            if not is_open[i]:
                continue
            n = counts[i]
            open_ms = day_ms + i * MINUTE_MS
            if n == 0:  # never before the day's first trade (see _spread)
                candles[i] = _flat(open_ms, prev if prev is not None else marks[i])
                continue
            o = marks[i]
            c = marks[i + 1] if n > 1 else o
            reach = vols[i] * o / tick * 1.5 + 1.0
            h = (o if o > c else c) + tick * int(r() * r() * reach)
            lo = (c if o > c else o) - tick * int(r() * r() * reach)
            if lo < tick:
                lo = tick
            total = int(n * mean * (0.2 + 1.6 * r())) or 1
            if total < n:
                total = n
            share = 0.3 + 0.4 * r()  # share of taker buys this minute
            if n < 4:
                prices = (o, c) if n == 2 else (o,) if n == 1 else (o, h if r() < 0.5 else lo, c)
                recipes[i] = (prices, n, total, share)
                candles[i] = _candle(open_ms, Recipe(prices, n, total, share).levels(), step, div)
            else:  # the four levels of Recipe.levels(), unrolled
                p0, p1, p2, p3 = (o, lo, h, c) if c >= o else (o, h, lo, c)
                e, x = divmod(n, 4)
                k0, k1, k2 = e + (x > 0), e + (x > 1), e + (x > 2)
                v0, v1, v2 = total * k0 // n, total * k1 // n, total * k2 // n
                v3 = total - v0 - v1 - v2
                t0 = v0 * int(k0 * share + 0.5) // k0
                t1 = v1 * int(k1 * share + 0.5) // k1
                t2 = v2 * int(k2 * share + 0.5) // k2
                t3 = v3 * int(e * share + 0.5) // e
                recipes[i] = ((p0, p1, p2, p3), n, total, share)
                candles[i] = Candle(
                    open_ms,
                    o,
                    h,
                    lo,
                    c,
                    total * step,
                    open_ms + MINUTE_MS - 1,
                    (p0 * v0 + p1 * v1 + p2 * v2 + p3 * v3) * step // div,
                    n,
                    (t0 + t1 + t2 + t3) * step,
                    (p0 * t0 + p1 * t1 + p2 * t2 + p3 * t3) * step // div,
                )
            prev = c
            next_id += n
        return first_ids, prev


def _candle(open_ms: int, lv: Levels, step: int, div: int) -> Candle:
    """The candle of a minute laid out as `lv` (the general path, few trades)."""
    prices = lv.prices
    return Candle(
        open_ms,
        prices[0],
        max(prices),
        min(prices),
        prices[-1],
        sum(lv.volumes) * step,
        open_ms + MINUTE_MS - 1,
        sum(map(operator.mul, prices, lv.volumes)) * step // div,
        sum(lv.counts),
        sum(lv.buy_volumes) * step,
        sum(map(operator.mul, prices, lv.buy_volumes)) * step // div,
    )


def _snap(log_price: float, scale: float, tick: int) -> int:
    """Round a log price to a whole number of ticks, at least one."""
    return max(1, round(math.exp(log_price) * scale)) * tick


def _flat(open_ms: int, price: int) -> Candle:
    return Candle(open_ms, price, price, price, price, 0, open_ms + MINUTE_MS - 1, 0, 0, 0, 0)


def _spread(total: int, weights: list[float], is_open: list[bool]) -> list[int]:
    """Split `total` trades over minutes by cumulative rounding (exact sum, O(n)).

    The day's first open minute always gets a trade, so a day never starts with a
    zero-volume candle whose price would depend on the day before: each day is built
    on its own.
    """
    weight = sum(weights)
    if weight <= 0 or total <= 0:
        return [0] * len(weights)
    out = []
    done = 0
    running = 0.0
    for w in weights:
        running += w
        upto = min(total, int(total * running / weight))
        out.append(upto - done)
        done = upto
    out[-1] += total - done
    first = is_open.index(True)
    if out[first] == 0:
        busiest = max(range(len(out)), key=out.__getitem__)
        out[busiest] -= 1
        out[first] = 1
    return out


def _split(total: int, parts: int, rng: random.Random) -> list[int]:
    """Split `total` into `parts` positive integers, at random but deterministically."""
    if parts <= 1:
        return [total] if parts == 1 else []
    cuts = sorted(rng.sample(range(1, total), parts - 1))
    return [b - a for a, b in zip([0, *cuts], [*cuts, total], strict=True)]


def _expand(
    levels: Levels, open_ms: int, first_id: int, step: int, rng: random.Random
) -> list[Trade]:
    """Lay out a minute's trades: per level, its taker buys and sells in a shuffled order.

    A run of consecutive fills on one side at one price is one taker order sweeping the
    book, so its fills share one timestamp (as Binance's aggTrades assume: fills "at the
    same time, from the same order, with the same price"); orders are spread evenly over
    the minute.
    """
    fills: list[tuple[int, int, bool]] = []  # price, qty in units, buyer is maker
    for price, count, buys, volume, bought in zip(
        levels.prices, levels.counts, levels.buys, levels.volumes, levels.buy_volumes, strict=True
    ):
        sides = [(q, False) for q in _split(bought, buys, rng)]
        sides += [(q, True) for q in _split(volume - bought, count - buys, rng)]
        rng.shuffle(sides)
        fills.extend((price, q * step, maker_bought) for q, maker_bought in sides)
    starts = [
        i == 0 or fills[i][0] != fills[i - 1][0] or fills[i][2] != fills[i - 1][2]
        for i in range(len(fills))
    ]
    orders = sum(starts)
    trades: list[Trade] = []
    order = -1
    for index, ((price, qty, maker_bought), new_order) in enumerate(
        zip(fills, starts, strict=True)
    ):
        order += new_order
        time_ms = open_ms + (order * MINUTE_MS + MINUTE_MS // 2) // orders
        trades.append(Trade(first_id + index, price, qty, time_ms, maker_bought))
    return trades
