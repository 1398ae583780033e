"""A symbol's price path: deterministic, random-access by day, never generated up front.

Two levels. Day anchors (the log price at each 00:00 UTC) follow a random walk with a
slowly drifting volatility regime; they are cheap (one draw a day) and extended lazily
in order, so any process with the same seed sees the same anchors. Within a day, the
1440 minute steps are drawn from a generator seeded by (seed, symbol, day) and bent
into a Brownian bridge that ends exactly on the next anchor, so each day is computed
on its own, in O(1440), without its neighbours. Bursts (a few windows a day with
several times the volatility) also raise trading activity, as on real markets.

Everything uses `random.Random` seeded with strings (hashed with SHA-512 by Python,
independent of PYTHONHASHSEED), so the same seed gives the same market in any process.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from candlevault.simulator.instruments import PathSpec

DAY_MS = 86_400_000
MINUTES = 1440
_SQRT12 = math.sqrt(12.0)
_TREND_PER_DAY = math.log(10.0) / (6 * 365)
_PULL = 0.004


@dataclass(frozen=True, slots=True)
class DayPath:
    """Log prices at the 1441 minute boundaries of a day, and each minute's activity."""

    day_ms: int
    log_prices: list[float]  # [i] = log price at day_ms + i minutes (i = 0..1440)
    activity: list[float]  # relative trading activity of minute i (mean about 1)
    minute_vol: list[float]  # standard deviation of minute i's log return


class PricePath:
    """The path of one symbol, shared by every venue that lists it."""

    def __init__(self, spec: PathSpec, seed: int) -> None:
        self.spec = spec
        self._seed = seed
        self._anchors = [math.log(spec.start_price)]
        self._regimes = [1.0]
        self._anchor_rng = random.Random(f"{seed}:{spec.symbol}:anchors")

    def anchor(self, day_index: int) -> tuple[float, float]:
        """Return (log price at 00:00, volatility regime) of day `day_index` (>= 0)."""
        while len(self._anchors) <= day_index:
            rng = self._anchor_rng
            regime = self._regimes[-1] * math.exp(rng.gauss(0.0, 0.15))
            regime = min(2.5, max(0.4, regime**0.97))  # mean-reverting towards 1
            # A weak pull towards a trend (x10 in six years) keeps nine years of
            # history in a plausible range instead of wandering off by e^±5.
            target = self._anchors[0] + _TREND_PER_DAY * len(self._anchors)
            pull = _PULL * (target - self._anchors[-1])
            step = pull + rng.gauss(0.0, self.spec.daily_vol * self._regimes[-1])
            self._anchors.append(self._anchors[-1] + step)
            self._regimes.append(regime)
        return self._anchors[day_index], self._regimes[day_index]

    def day(self, day_ms: int) -> DayPath:
        """Return the minute path of the UTC day that starts at `day_ms`."""
        index = max(0, (day_ms - self.spec.origin_ms) // DAY_MS)
        start, regime = self.anchor(index)
        end, _ = self.anchor(index + 1)
        rng = random.Random(f"{self._seed}:{self.spec.symbol}:{day_ms}")
        r = rng.random
        base = self.spec.daily_vol * regime / math.sqrt(MINUTES)
        boost = [1.0] * MINUTES
        for _ in range(int(r() * 4)):
            first = int(r() * MINUTES)
            length = 5 + int(r() * 85)
            factor = 2.0 + 6.0 * r()
            for i in range(first, min(MINUTES, first + length)):
                boost[i] = factor
        vols = [base * b for b in boost]
        steps = [(r() - 0.5) * _SQRT12 * v for v in vols]
        total = sum(steps)
        drift = (end - start - total) / MINUTES
        log_prices = [start]
        level = start
        for s in steps:
            level += s + drift
            log_prices.append(level)
        log_prices[-1] = end  # exact, whatever the float rounding on the way
        activity = [
            season * (0.4 + abs(s) / v) * (b**0.5)
            for season, s, v, b in zip(_SEASON, steps, vols, boost, strict=True)
        ]
        return DayPath(day_ms, log_prices, activity, vols)


def _season(minute: int) -> float:
    """Intraday seasonality: busier in the European and American sessions."""
    hour = minute / 60.0
    return (
        0.7
        + 0.5 * math.exp(-(((hour - 15.0) / 4.0) ** 2))
        + 0.2 * math.exp(-(((hour - 8.0) / 3.0) ** 2))
    )


_SEASON = [_season(minute) for minute in range(MINUTES)]
