"""How much history the hot layer keeps per timeframe.

The defaults are the design's: 1m 24h, 5m 3d, 15m 7d, 1h 30d, 4h 90d, 1d 1y. Every
other timeframe keeps the larger of the nearest smaller default and 500 candles (a
read's default size), so that a default read of the newest candles of any timeframe is
served hot. Overrides come as `1m=48h,1d=2y` (units s, m, h, d, w, y).
"""

from __future__ import annotations

from collections.abc import Mapping

from candlevault.domain.durations import parse_per_timeframe
from candlevault.domain.timeframes import TIMEFRAMES, Timeframe

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
DEFAULT_READ_CANDLES = 500
DEFAULTS: dict[str, int] = {
    "1m": DAY_MS,
    "5m": 3 * DAY_MS,
    "15m": 7 * DAY_MS,
    "1h": 30 * DAY_MS,
    "4h": 90 * DAY_MS,
    "1d": 365 * DAY_MS,
}


class Retention:
    """Milliseconds of history kept behind a series' newest row, per timeframe."""

    def __init__(self, overrides: Mapping[str, int] | None = None) -> None:
        chosen = {**DEFAULTS, **(overrides or {})}
        self._ms: dict[str, int] = {}
        floor = 0
        for tf in TIMEFRAMES:  # ascending duration
            if tf.code in chosen:
                floor = chosen[tf.code]
                self._ms[tf.code] = floor
            else:
                self._ms[tf.code] = max(floor, DEFAULT_READ_CANDLES * tf.duration_ms)

    def ms(self, tf: Timeframe) -> int:
        """Return how far behind its newest row a series of `tf` keeps rows."""
        return self._ms[tf.code]

    def items(self) -> list[tuple[str, int]]:
        """Return (timeframe code, ms) for every timeframe, ascending."""
        return list(self._ms.items())


def parse_retention(text: str) -> dict[str, int]:
    """Parse `1m=24h,5m=3d` into {timeframe code: ms}."""
    return parse_per_timeframe(text)
