"""The data.binance.vision kline archives: where each file is, and what a valid one holds.

Pure: no sockets and no files (fetching is `archive_client`). The format facts below were
checked against the real files in ../shared/fixtures (binance/klines, binance_vision):

- Path: `data/<spot|futures/um>/<daily|monthly>/klines/<SYM>/<interval>/<SYM>-<interval>-
  <YYYY-MM-DD|YYYY-MM>.zip`; the `1M` kline is named `1mo`, daily files exist only up to
  `1d`. Beside each zip, `<zip>.CHECKSUM` reads `<sha256 hex>␠␠<zip name>`, no newline.
- Each zip holds one member: the zip's name with `.csv`. A spot line has no header, 12
  columns and 8 decimals, times in ms up to 2024:
  `1660435200000,1983.55000000,1983.90000000,1982.14000000,1982.29000000,205.13100000,
  1660435259999,406814.92308000,288,105.29930000,208854.93067400,0`.
  Spot files from 2025 on write µs (`1789430400000000` .. `1789430459999999`, i.e. the ms
  close * 1000 + 999). USD-M files open with a header row (`open_time,open,high,...`),
  keep ms and write the contract's decimals (`78153.00`, `5124.846`).

Decisions: the time unit is read from each file, not inferred from its date, because
some archives published after 2025 are still reported in ms. A file is taken whole or
not at all: anything malformed raises `ArchiveRejected` (one bad row means the file
cannot be trusted, and REST can refetch the period). Completeness and agreement with
another source are *returned* as problems, so the caller can record why it fell back.
"""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
import zlib
from dataclasses import dataclass
from datetime import date
from itertools import islice
from operator import lt
from typing import Literal

from candlevault.domain.candles import Candle, parse_kline_row
from candlevault.domain.columns import CandleColumns, columns_from
from candlevault.domain.decimals import Precision
from candlevault.domain.errors import BadValue, ExchangeRejected
from candlevault.domain.kline_columns import parse_kline_columns
from candlevault.domain.symbols import parse_symbol
from candlevault.domain.timeframes import (
    DAY_MS,
    MO1,
    TIMEFRAMES,
    GridKind,
    Timeframe,
    civil_from_days,
    days_from_civil,
)
from candlevault.domain.times import format_time_ms

Market = Literal["spot", "um"]
Period = Literal["daily", "monthly"]
TimeUnit = Literal["ms", "us"]

DAILY_INTERVALS: tuple[Timeframe, ...] = tuple(
    tf for tf in TIMEFRAMES if tf.kind is GridKind.FIXED and DAY_MS % tf.duration_ms == 0
)
"""Intervals published as daily files (1m..1d: those that divide a day); monthly files
exist for every interval."""
MICROS_FROM = 10**14
"""An epoch time this large is µs: read as ms it would fall in the year 5138."""
MAX_LINE_BYTES = 512
"""Bound on a CSV line (a 2025 spot line is ~170 bytes), to refuse a zip bomb unread."""
_CHECKSUM = re.compile(r"([0-9a-fA-F]{64})  (\S+)\n?")
# What zipfile raises on a corrupt archive (found by fuzzing the real fixtures).
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, ValueError, RuntimeError, OSError)


class ArchiveRejected(ExchangeRejected):
    """An archive file or its `.CHECKSUM` is not what data.binance.vision publishes."""

    def __init__(self, ref: ArchiveRef, reason: str) -> None:
        self.ref = ref
        self.reason = reason
        super().__init__(f"{ref.zip_name}: {reason}")


@dataclass(frozen=True, slots=True)
class ArchiveRef:
    """One kline archive file; `day` is the file's day, or the 1st of its month."""

    market: Market
    symbol: str
    interval: Timeframe
    period: Period
    day: date

    def __post_init__(self) -> None:
        if self.market not in ("spot", "um"):
            raise BadValue("archive market", self.market, "expected 'spot' or 'um'")
        if self.period not in ("daily", "monthly"):
            raise BadValue("archive period", self.period, "expected 'daily' or 'monthly'")
        if parse_symbol(self.symbol) != self.symbol:
            raise BadValue("symbol", self.symbol, "expected the exchange's upper-case symbol")
        allowed = DAILY_INTERVALS if self.period == "daily" else TIMEFRAMES
        if self.interval not in allowed:
            codes = " ".join(tf.code for tf in allowed)
            raise BadValue("archive interval", self.interval.code, f"{self.period}: {codes}")
        if self.period == "monthly" and self.day.day != 1:
            raise BadValue("monthly archive date", self.day, "expected the 1st of the month")

    @classmethod
    def at(
        cls, market: Market, symbol: str, interval: Timeframe, period: Period, t_ms: int
    ) -> ArchiveRef:
        """Return the file of the day (or month) that contains `t_ms`."""
        y, m, d = civil_from_days(t_ms // DAY_MS)
        return cls(market, symbol, interval, period, date(y, m, 1 if period == "monthly" else d))

    @property
    def zip_name(self) -> str:
        """The zip's file name, e.g. 'BTCUSDT-1m-2024-01-15.zip' (what `.CHECKSUM` names)."""
        return f"{self._stem}.zip"

    @property
    def member_name(self) -> str:
        """The CSV inside the zip: the zip's name with '.csv'."""
        return f"{self._stem}.csv"

    @property
    def path(self) -> str:
        """The path under the archive's base URL, e.g. 'data/spot/daily/klines/...zip'."""
        market = "spot" if self.market == "spot" else "futures/um"
        interval = interval_name(self.interval)
        return f"data/{market}/{self.period}/klines/{self.symbol}/{interval}/{self.zip_name}"

    @property
    def checksum_path(self) -> str:
        """The path of the `.CHECKSUM` sidecar."""
        return f"{self.path}.CHECKSUM"

    @property
    def start_ms(self) -> int:
        """00:00 UTC of the day or month: the first open time the file may hold."""
        return days_from_civil(self.day.year, self.day.month, self.day.day) * DAY_MS

    @property
    def end_ms(self) -> int:
        """The start of the next day or month (exclusive bound of the open times)."""
        start = self.start_ms
        return start + DAY_MS if self.period == "daily" else MO1.next_open(start)

    def expected_opens(self, listed_ms: int) -> list[int]:
        """Return the open times a whole file holds, given the symbol's first 1m open:
        the buckets opening in the span, from the one that contains the listing."""
        tf = self.interval
        first = max(self.start_ms, tf.bucket_open(listed_ms, listed_ms))
        return tf.opens(first, self.end_ms - 1, listed_ms)

    def expected_rows(self, listed_ms: int) -> int:
        """Return how many rows a whole file holds (fewer when it starts before the listing)."""
        return len(self.expected_opens(listed_ms))

    @property
    def _stem(self) -> str:
        d = self.day
        label = f"{d:%Y-%m-%d}" if self.period == "daily" else f"{d:%Y-%m}"
        return f"{self.symbol}-{interval_name(self.interval)}-{label}"


def interval_name(tf: Timeframe) -> str:
    """Return the archive's name of an interval: '1mo' for 1M, else the kline code."""
    return "1mo" if tf == MO1 else tf.code


def plan_refs(
    market: Market,
    symbol: str,
    interval: Timeframe,
    start_ms: int,
    end_ms: int,
    *,
    now_ms: int,
    listed_ms: int | None = None,
    monthly_lag_ms: int = 0,
) -> list[ArchiveRef]:
    """Return the files covering each whole, finished day of [start_ms, end_ms) once:
    whole months as monthly files, other days as daily ones, in time order.

    Days that end by the listing have no file and are left out. A month is planned as
    one file only if it ended `monthly_lag_ms` before `now_ms` (monthly files appear
    days after the month); otherwise its days are planned one by one.
    """
    if interval not in DAILY_INTERVALS:
        raise BadValue(
            "archive interval", interval.code, "only 1m..1d align with days; derive the rest"
        )
    lo = -(-start_ms // DAY_MS) * DAY_MS
    hi = min(end_ms, now_ms) // DAY_MS * DAY_MS  # today is never finished
    first_day = lo if listed_ms is None else listed_ms - listed_ms % DAY_MS
    refs: list[ArchiveRef] = []
    t = lo
    while t < hi:
        month_end = MO1.next_open(t)
        if MO1.bucket_open(t) == t and month_end <= hi and month_end + monthly_lag_ms <= now_ms:
            if month_end > first_day:
                refs.append(ArchiveRef.at(market, symbol, interval, "monthly", t))
            t = month_end
            continue
        if t >= first_day:
            refs.append(ArchiveRef.at(market, symbol, interval, "daily", t))
        t += DAY_MS
    return refs


# -- parsing ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ParsedKlines:
    """A file's rows as closed, complete candles (times in ms), and how it wrote them."""

    ref: ArchiveRef
    columns: CandleColumns
    unit: TimeUnit
    header: bool


def parse_klines(
    data: bytes, *, ref: ArchiveRef, precision: Precision, listed_ms: int | None = None
) -> ParsedKlines:
    """Parse a kline archive (its zip, or the bare CSV) as `ref` names it.

    Raises `ArchiveRejected` for anything the real files never hold. `listed_ms` anchors
    the 3d grid (Binance's is the listing day); without it, the first row does.
    """
    lines = _csv_text(data, ref).splitlines()
    header = bool(lines) and lines[0].startswith("open_time")
    if header and len(lines[0].split(",")) != 12:
        raise ArchiveRejected(ref, f"header {lines[0][:200]!r} does not have 12 columns")
    rows = lines[1:] if header else lines
    if not rows:
        raise ArchiveRejected(ref, "holds no rows")
    fast = _parse_plain(rows, ref, precision)
    if fast is not None:
        return ParsedKlines(ref, fast[0], fast[1], header)
    first = int(header) + 1
    candles: list[Candle] = []
    unit: TimeUnit | None = None
    for n, line in enumerate(rows, start=first):
        row_unit, candle = _parse_line(line, n, ref, precision)
        if unit is not None and row_unit != unit:
            raise ArchiveRejected(ref, f"line {n}: mixed units, {row_unit} after {unit}")
        unit = row_unit
        _check_times(candle, candles[-1] if candles else None, n, ref, listed_ms)
        candles.append(candle)
    assert unit is not None  # rows is not empty
    return ParsedKlines(ref, columns_from(candles), unit, header)


def _parse_plain(
    lines: list[str], ref: ArchiveRef, precision: Precision
) -> tuple[CandleColumns, TimeUnit] | None:
    """The whole file at once, for what nearly every file is: 12 fields a line, times in
    one unit, a fixed grid, rows in order, on the grid and in the span. None for anything
    else, which the line-by-line path then judges (and names the line at fault)."""
    tf = ref.interval
    if tf.kind is not GridKind.FIXED:
        return None
    rows = [line.split(",") for line in lines]
    if any(len(row) != 12 for row in rows):
        return None
    cols = list(zip(*rows, strict=True))
    times = [_digits(cols[i]) for i in (0, 6, 8)]
    if any(t is None for t in times):
        return None
    opens, closes, trades = (t or [] for t in times)
    in_ms = _in_ms(opens, closes)
    if in_ms is None:
        return None
    (opens, closes), unit = in_ms
    if not ref.start_ms <= opens[0] or not opens[-1] < ref.end_ms:
        return None
    step = tf.duration_ms
    if any((t - tf.origin_ms) % step for t in opens) or closes != [t + step - 1 for t in opens]:
        return None
    if not all(map(lt, opens, islice(opens, 1, None))):
        return None
    typed = list(zip(opens, *cols[1:6], closes, cols[7], trades, *cols[9:], strict=True))
    try:
        return parse_kline_columns(typed, precision), unit
    except BadValue:
        return None


def _in_ms(
    opens: list[int], closes: list[int]
) -> tuple[tuple[list[int], list[int]], TimeUnit] | None:
    """Open and close times in ms and the file's unit; None for mixed or odd µs times."""
    if opens[0] < MICROS_FROM:
        if any(t >= MICROS_FROM for t in opens) or any(c >= MICROS_FROM for c in closes):
            return None
        return (opens, closes), "ms"
    if any(t < MICROS_FROM or t % 1000 for t in opens) or any(c % 1000 != 999 for c in closes):
        return None
    return ([t // 1000 for t in opens], [c // 1000 for c in closes]), "us"


def _digits(values: tuple[str, ...]) -> list[int] | None:
    joined = ",".join(values)
    if "" in values or not (joined.isascii() and joined.replace(",", "").isdigit()):
        return None
    return [int(v) for v in values]


def _csv_text(data: bytes, ref: ArchiveRef) -> str:
    """Return the CSV text of a zip (one member named as `ref`'s) or of bare CSV bytes."""
    most_rows = (ref.end_ms - ref.start_ms) // min(ref.interval.duration_ms, DAY_MS) + 1
    limit = MAX_LINE_BYTES * (most_rows + 1)  # and a header
    if data.startswith(b"PK"):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                infos = archive.infolist()
                names = [info.filename for info in infos]
                if names != [ref.member_name]:
                    raise ArchiveRejected(ref, f"expected one member {ref.member_name}: {names}")
                if infos[0].file_size > limit:
                    raise ArchiveRejected(ref, f"member of {infos[0].file_size} bytes: too big")
                data = archive.read(infos[0])
        except _ZIP_ERRORS as e:
            raise ArchiveRejected(ref, f"not a readable zip ({len(data)} bytes): {e}") from e
    elif not data[:1].isdigit() and not data.startswith(b"open_time"):
        raise ArchiveRejected(ref, f"neither a zip nor a kline CSV: starts {data[:40]!r}")
    if len(data) > limit:
        raise ArchiveRejected(ref, f"CSV of {len(data)} bytes: too big for the period")
    try:
        return data.decode("ascii")
    except UnicodeDecodeError as e:
        raise ArchiveRejected(ref, f"CSV is not ASCII: {e}") from e


def _parse_line(
    line: str, n: int, ref: ArchiveRef, precision: Precision
) -> tuple[TimeUnit, Candle]:
    """Parse one CSV line with the domain's row parser, its times converted to ms."""
    fields: list[object] = list(line.split(","))
    if len(fields) != 12:
        raise ArchiveRejected(ref, f"line {n}: expected 12 fields, got {len(fields)}")
    opened, closed = _epoch(line, fields[0], n, ref), _epoch(line, fields[6], n, ref)
    unit: TimeUnit = "us" if opened >= MICROS_FROM else "ms"
    if (closed >= MICROS_FROM) != (unit == "us"):
        raise ArchiveRejected(ref, f"line {n}: mixed units, open and close time differ")
    if unit == "us":
        if opened % 1000 or closed % 1000 != 999:
            raise ArchiveRejected(ref, f"line {n}: µs times not ms * 1000 (+ 999 for close)")
        opened, closed = opened // 1000, closed // 1000
    fields[0], fields[6] = opened, closed
    try:
        return unit, parse_kline_row(fields, precision)
    except BadValue as e:
        raise ArchiveRejected(ref, f"line {n}: {e}") from e


def _epoch(line: str, text: object, n: int, ref: ArchiveRef) -> int:
    if isinstance(text, str) and text.isascii() and text.isdigit():
        return int(text)
    raise ArchiveRejected(ref, f"line {n}: time {text!r} is not an integer in {line[:200]!r}")


def _check_times(
    candle: Candle, previous: Candle | None, n: int, ref: ArchiveRef, listed_ms: int | None
) -> None:
    """Refuse a row out of order, outside the file's span, off the grid or with the
    wrong close time."""
    tf, opened = ref.interval, candle.open_time_ms
    where = f"line {n}: open time {format_time_ms(opened)}"
    if previous is not None and opened <= previous.open_time_ms:
        why = "duplicated" if opened == previous.open_time_ms else "out of order"
        raise ArchiveRejected(ref, f"{where} {why}")
    if not ref.start_ms <= opened < ref.end_ms:
        raise ArchiveRejected(ref, f"{where} outside the file's {ref.period} span")
    if tf.kind is GridKind.MONTH:
        on_grid, close = tf.bucket_open(opened) == opened, tf.next_open(opened) - 1
    else:
        origin = tf.origin_ms
        if tf.kind is GridKind.LISTING:  # Binance anchors 3d at the listing day
            anchor = listed_ms if listed_ms is not None else (previous or candle).open_time_ms
            origin = anchor - anchor % DAY_MS
        on_grid, close = (opened - origin) % tf.duration_ms == 0, opened + tf.duration_ms - 1
    if not on_grid:
        raise ArchiveRejected(ref, f"{where} is off the {tf.code} grid")
    if candle.close_time_ms != close:
        raise ArchiveRejected(ref, f"{where}: close time {candle.close_time_ms}, not {close}")


# -- checksum and coverage ----------------------------------------------------------


def parse_checksum(text: str, ref: ArchiveRef) -> str:
    """Return the sha256 (lower-case hex) that a `.CHECKSUM` sidecar gives `ref`'s zip.

    One trailing newline is tolerated (sha256sum writes one; Binance does not).
    """
    found = _CHECKSUM.fullmatch(text)
    if found is None:
        raise ArchiveRejected(
            ref, f"malformed .CHECKSUM {text[:120]!r}: expected '<sha256 hex>  {ref.zip_name}'"
        )
    if found[2] != ref.zip_name:
        raise ArchiveRejected(ref, f".CHECKSUM names {found[2]!r}, not this file")
    return found[1].lower()


def verify_checksum(zip_bytes: bytes, checksum_text: str, ref: ArchiveRef) -> None:
    """Refuse a zip whose sha256 is not the one its `.CHECKSUM` gives."""
    expected = parse_checksum(checksum_text, ref)
    actual = hashlib.sha256(zip_bytes).hexdigest()
    if actual != expected:
        raise ArchiveRejected(
            ref, f"checksum mismatch: .CHECKSUM {expected}, {len(zip_bytes)} bytes hash {actual}"
        )


@dataclass(frozen=True, slots=True)
class Coverage:
    """How a file's rows compare with the rows a whole file holds."""

    ref: ArchiveRef
    expected: int
    found: int
    missing_ms: tuple[int, ...]  # expected open times the file lacks (a truncated file)
    unexpected_ms: tuple[int, ...]  # rows the listing says cannot exist

    @property
    def problems(self) -> list[str]:
        """Say what is wrong, one line per kind (empty when the file is whole)."""
        out = []
        if self.missing_ms:
            runs = _runs(self.missing_ms, self.ref.interval)
            out.append(f"missing {len(self.missing_ms)} of {self.expected} rows: {runs}")
        if self.unexpected_ms:
            runs = _runs(self.unexpected_ms, self.ref.interval)
            out.append(f"{len(self.unexpected_ms)} rows open before the listing: {runs}")
        return out


def check_coverage(columns: CandleColumns, ref: ArchiveRef, listed_ms: int) -> Coverage:
    """Compare parsed rows with the open times a whole file of `ref` holds."""
    expected = ref.expected_opens(listed_ms)
    have = set(columns.open_time_ms)
    wanted = set(expected)
    return Coverage(
        ref,
        len(expected),
        len(columns),
        tuple(t for t in expected if t not in have),
        tuple(t for t in columns.open_time_ms if t not in wanted),
    )


def _runs(times: tuple[int, ...], tf: Timeframe, limit: int = 5) -> str:
    """Write ascending open times as runs: 'A..B (n), C' (C alone)."""
    runs: list[list[int]] = []
    for t in times:
        if runs and tf.kind is GridKind.FIXED and t - runs[-1][1] == tf.duration_ms:
            runs[-1][1:] = [t, runs[-1][2] + 1]
        else:
            runs.append([t, t, 1])
    text = [
        format_time_ms(a) if n == 1 else f"{format_time_ms(a)}..{format_time_ms(b)} ({n})"
        for a, b, n in runs[:limit]
    ]
    if len(runs) > limit:
        text.append(f"and {len(runs) - limit} more runs")
    return ", ".join(text)
