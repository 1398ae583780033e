"""Kline intervals and their buckets, aligned exactly as Binance aligns them.

Times are UTC epoch milliseconds. Three kinds of grid, as the recorded exchange data
shows (see ../shared/fixtures/README.md, "Calendar alignment"):

- fixed grids from the epoch (1m ... 1d); `1w` is the same with its origin on a Monday,
  so a week opens Monday 00:00 even when the symbol listed later that week;
- `1M` follows the calendar: a month opens on the 1st, 00:00;
- `3d` is anchored at the symbol's first daily candle (its listing day), *not* at the
  epoch: two symbols' 3d buckets open on different days. A 3d bucket therefore needs
  the symbol's inception as an input, and asking without one is an error.

Month arithmetic is done on integers (days <-> civil date) rather than through
`datetime`, because bucketing sits on the write path of every candle.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from candlevault.domain.errors import BadRequest, BadValue
from candlevault.domain.venues import Venue

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
_MONDAY_ORIGIN_MS = 4 * DAY_MS  # 1970-01-05, the first Monday after the epoch


class GridKind(Enum):
    FIXED = "fixed"  # duration_ms steps from origin_ms
    LISTING = "listing"  # duration_ms steps from the symbol's listing day
    MONTH = "month"  # calendar months


@dataclass(frozen=True, slots=True)
class Timeframe:
    """One kline interval. Compare and hash by `code`."""

    code: str
    bybit_code: str | None
    kind: GridKind
    duration_ms: int  # exact for FIXED and LISTING; 31 days (the longest) for MONTH
    origin_ms: int = 0

    def __str__(self) -> str:
        return self.code

    @property
    def is_calendar(self) -> bool:
        """True when the duration varies (months)."""
        return self.kind is GridKind.MONTH

    def bucket_open(self, t_ms: int, inception_ms: int | None = None) -> int:
        """Return the open time of the bucket that contains `t_ms`."""
        if self.kind is GridKind.MONTH:
            year, month, _ = civil_from_days(t_ms // DAY_MS)
            return days_from_civil(year, month, 1) * DAY_MS
        origin = self._origin(inception_ms)
        return t_ms - (t_ms - origin) % self.duration_ms

    def next_open(self, t_ms: int, inception_ms: int | None = None) -> int:
        """Return the open time of the bucket after the one that contains `t_ms`."""
        if self.kind is GridKind.MONTH:
            year, month, _ = civil_from_days(t_ms // DAY_MS)
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
            return days_from_civil(year, month, 1) * DAY_MS
        return self.bucket_open(t_ms, inception_ms) + self.duration_ms

    def close_time(self, open_ms: int, inception_ms: int | None = None) -> int:
        """Return the close time Binance reports: the next open minus 1 ms."""
        return self.next_open(open_ms, inception_ms) - 1

    def opens(self, start_ms: int, end_ms: int, inception_ms: int | None = None) -> list[int]:
        """Return the bucket opens in [start_ms, end_ms], both inclusive (Binance's klines
        window bounds the open time this way)."""
        if end_ms < start_ms:
            return []
        first = self.bucket_open(start_ms, inception_ms)
        if first < start_ms:
            first = self.next_open(start_ms, inception_ms)
        if self.kind is not GridKind.MONTH:
            return list(range(first, end_ms + 1, self.duration_ms))
        out = []
        t = first
        while t <= end_ms:
            out.append(t)
            t = self.next_open(t)
        return out

    def divides(self, larger: Timeframe) -> bool:
        """True when every bucket of `larger` is a whole number of buckets of `self`
        (for every symbol), so `larger` can be aggregated from `self`."""
        if self == larger:
            return True
        if larger.kind is GridKind.MONTH:
            return self.kind is GridKind.FIXED and DAY_MS % self.duration_ms == 0
        if larger.kind is GridKind.LISTING:
            # Listing grids start at a 00:00 UTC day; only sub-day grids fit in all of them.
            return self.kind is GridKind.FIXED and DAY_MS % self.duration_ms == 0
        if self.kind is not GridKind.FIXED:
            return False
        return (
            larger.duration_ms % self.duration_ms == 0
            and (larger.origin_ms - self.origin_ms) % self.duration_ms == 0
        )

    def _origin(self, inception_ms: int | None) -> int:
        if self.kind is GridKind.FIXED:
            return self.origin_ms
        if inception_ms is None:
            raise BadRequest(
                f"{self.code} buckets are anchored at the symbol's first daily candle: "
                "the symbol's inception time is required"
            )
        return inception_ms - inception_ms % DAY_MS


def days_from_civil(year: int, month: int, day: int) -> int:
    """Return days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    year -= month <= 2
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def civil_from_days(days: int) -> tuple[int, int, int]:
    """Return (year, month, day) of a day number since 1970-01-01."""
    days += 719468
    era = days // 146097
    doe = days - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (month <= 2), month, day


def _fixed(code: str, bybit: str | None, ms: int, origin_ms: int = 0) -> Timeframe:
    return Timeframe(code, bybit, GridKind.FIXED, ms, origin_ms)


M1 = _fixed("1m", "1", MINUTE_MS)
M3 = _fixed("3m", "3", 3 * MINUTE_MS)
M5 = _fixed("5m", "5", 5 * MINUTE_MS)
M15 = _fixed("15m", "15", 15 * MINUTE_MS)
M30 = _fixed("30m", "30", 30 * MINUTE_MS)
H1 = _fixed("1h", "60", HOUR_MS)
H2 = _fixed("2h", "120", 2 * HOUR_MS)
H4 = _fixed("4h", "240", 4 * HOUR_MS)
H6 = _fixed("6h", "360", 6 * HOUR_MS)
H8 = _fixed("8h", None, 8 * HOUR_MS)
H12 = _fixed("12h", "720", 12 * HOUR_MS)
D1 = _fixed("1d", "D", DAY_MS)
D3 = Timeframe("3d", None, GridKind.LISTING, 3 * DAY_MS)
W1 = _fixed("1w", "W", 7 * DAY_MS, _MONDAY_ORIGIN_MS)
MO1 = Timeframe("1M", "M", GridKind.MONTH, 31 * DAY_MS)

TIMEFRAMES: tuple[Timeframe, ...] = (M1, M3, M5, M15, M30, H1, H2, H4, H6, H8, H12, D1, D3, W1, MO1)
"""Every supported interval, shortest first (Binance's list without 1s)."""

_BY_CODE = {tf.code: tf for tf in TIMEFRAMES}
_BY_BYBIT = {tf.bybit_code: tf for tf in TIMEFRAMES if tf.bybit_code}


def parse_timeframe(text: str) -> Timeframe:
    """Parse a Binance interval code such as '15m', '1h' or '1M' (case matters: 1m ≠ 1M)."""
    tf = _BY_CODE.get(text) if isinstance(text, str) else None
    if tf is None:
        raise BadValue("timeframe", text, f"expected one of {' '.join(_BY_CODE)}")
    return tf


def from_bybit_code(code: str) -> Timeframe:
    """Parse a Bybit v5 interval code ('1', '60', 'D', 'W', 'M', ...)."""
    tf = _BY_BYBIT.get(code) if isinstance(code, str) else None
    if tf is None:
        raise BadValue("Bybit interval", code, f"expected one of {' '.join(_BY_BYBIT)}")
    return tf


def venue_timeframes(venue: Venue) -> tuple[Timeframe, ...]:
    """Return the intervals a venue publishes (Bybit has no 8h or 3d)."""
    if venue.exchange == "bybit":
        return tuple(tf for tf in TIMEFRAMES if tf.bybit_code is not None)
    return TIMEFRAMES


def timeframe_for_venue(text: str, venue: Venue) -> Timeframe:
    """Parse `text` and check that `venue` publishes it, listing the venue's intervals if not."""
    tf = parse_timeframe(text)
    available = venue_timeframes(venue)
    if tf not in available:
        raise BadValue(
            "timeframe",
            text,
            f"{venue.value} does not publish it; it has {' '.join(t.code for t in available)}",
        )
    return tf
