"""Durations written the way operators write them: `24h`, `3d`, `2y`; and per-timeframe
settings such as `1m=48h,1d=2y` (the hot cache's retention)."""

from __future__ import annotations

from candlevault.domain.errors import BadValue
from candlevault.domain.timeframes import parse_timeframe

_DAY_MS = 86_400_000
_UNITS = {
    "s": 1000,
    "m": 60_000,
    "h": 3_600_000,
    "d": _DAY_MS,
    "w": 7 * _DAY_MS,
    "y": 365 * _DAY_MS,
}


def parse_duration_ms(text: str) -> int:
    """Parse a positive whole number and a unit (s, m, h, d, w, y) into milliseconds."""
    number, unit = text[:-1], text[-1:]
    if unit not in _UNITS or not number.isdigit() or int(number) <= 0:
        raise BadValue("duration", text, "expected a positive whole number and s, m, h, d, w or y")
    return int(number) * _UNITS[unit]


def parse_per_timeframe(text: str) -> dict[str, int]:
    """Parse `1m=24h,5m=3d` into {timeframe code: ms}."""
    found: dict[str, int] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        code, eq, amount = item.partition("=")
        if not eq:
            raise BadValue("setting", item.strip(), "expected TIMEFRAME=DURATION, e.g. 1m=24h")
        found[parse_timeframe(code.strip()).code] = parse_duration_ms(amount.strip())
    return found
