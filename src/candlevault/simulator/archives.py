"""The data.binance.vision archive files: their paths, and their bytes as Binance ships them.

Pure functions only (the endpoints, publication lag and cache are `archive_routes`).
Every format below was checked byte for byte against the real files in
../shared/fixtures/binance_vision (see tests/unit/simulator/test_archives.py):

- Paths: `/data/<spot|futures/um>/<daily|monthly>/klines/<SYM>/<interval>/<SYM>-<interval>-
  <YYYY-MM-DD|YYYY-MM>.zip` and `/data/.../aggTrades/<SYM>/<SYM>-aggTrades-<date>.zip`,
  each with a `<file>.zip.CHECKSUM`. Intervals are Binance's archive names: `1mo` for
  the `1M` kline, daily files only up to `1d` (binance-public-data's DAILY_INTERVALS);
  `1s` is not simulated.
- Each zip holds one deflated member `<name>.csv`, lines ending in '\\n'.
- Spot klines: no header, 12 columns, 8 decimals; open and close times in ms, and in µs
  for files dated 2025-01-01 or later (close = open_us + span_us - 1, i.e. the ms close
  time * 1000 + 999). USD-M klines: a header row, ms always, the contract's decimals.
- Spot aggTrades: no header, 8 columns `id,price,qty,first,last,time,isBuyerMaker,
  isBestMatch` with Python-style `True`/`False`, 8 decimals, µs from 2025 as klines.
  USD-M aggTrades: a header row, 7 columns, `true`/`false`, ms, and price and quantity
  written as a float's shortest text (`78153.0`, `0.001`), as the real files are.
- `.CHECKSUM`: `<sha256 hex>␠␠<zip name>` and no trailing newline (91 bytes for a daily
  BTCUSDT file, 89 for a monthly one).
- A missing key answers S3's `NoSuchKey` XML document (data.binance.vision is an S3
  bucket behind CloudFront; binance/binance-public-data#243 quotes its "The specified
  key does not exist").

Zip metadata is fixed (member date = the publication instant, Unix attributes, no
extra fields), so the same file is byte-identical in every process on the same zlib.
"""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Literal
from xml.sax.saxutils import escape

import msgspec

from candlevault.domain.candles import Candle, kline_row
from candlevault.domain.decimals import Precision, format_units
from candlevault.domain.timeframes import (
    D1,
    D3,
    DAY_MS,
    H1,
    H2,
    H4,
    H6,
    H8,
    H12,
    M1,
    M3,
    M5,
    M15,
    M30,
    MO1,
    W1,
    Timeframe,
    civil_from_days,
    days_from_civil,
)
from candlevault.domain.trades import Trade
from candlevault.domain.venues import Venue
from candlevault.simulator.faults import disagree_kline_row

Period = Literal["daily", "monthly"]
Kind = Literal["klines", "aggTrades"]

SPOT_MICROS_FROM_MS = days_from_civil(2025, 1, 1) * DAY_MS
"""Spot files dated on or after 2025-01-01 write their times in microseconds."""

KLINES_HEADER = (
    b"open_time,open,high,low,close,volume,close_time,quote_volume,count,"
    b"taker_buy_volume,taker_buy_quote_volume,ignore\n"
)
AGG_TRADES_HEADER = (
    b"agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker\n"
)
MARKETS: dict[str, Venue] = {"spot": Venue.BINANCE, "futures/um": Venue.BINANCE_USDM}
DAILY_INTERVALS: tuple[Timeframe, ...] = (M1, M3, M5, M15, M30, H1, H2, H4, H6, H8, H12, D1)
MONTHLY_INTERVALS: tuple[Timeframe, ...] = (*DAILY_INTERVALS, D3, W1, MO1)
_ZIP_ATTR = 0o100644 << 16  # a regular file, rw-r--r--, as in the real zips
_PATH = re.compile(
    r"/data/(?P<market>spot|futures/um)/(?P<period>daily|monthly)/"
    r"(?:klines/(?P<ksym>[A-Z0-9]+)/(?P<interval>[0-9a-z]+)/(?P<kname>[^/]+)"
    r"|aggTrades/(?P<asym>[A-Z0-9]+)/(?P<aname>[^/]+))"
)
_DATE = {"daily": re.compile(r"(\d{4})-(\d{2})-(\d{2})"), "monthly": re.compile(r"(\d{4})-(\d{2})")}


def interval_name(tf: Timeframe) -> str:
    """Return the archive's name of an interval ('1mo' for 1M, else the kline code)."""
    return "1mo" if tf is MO1 else tf.code


_INTERVALS = {
    "daily": {interval_name(tf): tf for tf in DAILY_INTERVALS},
    "monthly": {interval_name(tf): tf for tf in MONTHLY_INTERVALS},
}


@dataclass(frozen=True, slots=True)
class ArchiveKey:
    """One archive file (its zip; `checksum` when the `.CHECKSUM` beside it is meant)."""

    venue: Venue
    period: Period
    kind: Kind
    symbol: str
    interval: Timeframe | None  # klines only
    start_ms: int  # 00:00 UTC of the day or the month's first day
    end_ms: int  # exclusive: the start of the next day or month
    checksum: bool = False

    @property
    def label(self) -> str:
        """The date in the file name: 'YYYY-MM-DD' (daily) or 'YYYY-MM' (monthly)."""
        y, m, d = civil_from_days(self.start_ms // DAY_MS)
        return f"{y:04d}-{m:02d}-{d:02d}" if self.period == "daily" else f"{y:04d}-{m:02d}"

    @property
    def stem(self) -> str:
        """The file name without extension, e.g. 'BTCUSDT-1m-2024-01-15'."""
        middle = interval_name(self.interval) if self.interval is not None else "aggTrades"
        return f"{self.symbol}-{middle}-{self.label}"

    @property
    def zip_name(self) -> str:
        """The zip's file name (what its `.CHECKSUM` names)."""
        return f"{self.stem}.zip"

    @property
    def path(self) -> str:
        """The URL path of the file (of its `.CHECKSUM` when `checksum`)."""
        market = "spot" if self.venue is Venue.BINANCE else "futures/um"
        tf = self.interval
        folder = f"{self.symbol}/{interval_name(tf)}" if tf is not None else self.symbol
        suffix = ".CHECKSUM" if self.checksum else ""
        return f"/data/{market}/{self.period}/{self.kind}/{folder}/{self.zip_name}{suffix}"

    @property
    def futures(self) -> bool:
        """USD-M files: a header row, ms times, contract decimals."""
        return self.venue is Venue.BINANCE_USDM

    @property
    def micros(self) -> bool:
        """Whether the file writes its times in µs (spot, dated 2025-01-01 or later)."""
        return self.venue is Venue.BINANCE and self.start_ms >= SPOT_MICROS_FROM_MS


def parse_archive_path(path: str) -> ArchiveKey | None:
    """Return the file a URL path names, or None where data.binance.vision has no such key."""
    match = _PATH.fullmatch(path)
    if match is None:
        return None
    period: Period = "daily" if match["period"] == "daily" else "monthly"
    name = match["kname"] or match["aname"]
    checksum = name.endswith(".zip.CHECKSUM")
    if not (checksum or name.endswith(".zip")):
        return None
    interval: Timeframe | None = None
    if match["ksym"] is not None:
        symbol, middle = match["ksym"], match["interval"]
        interval = _INTERVALS[period].get(middle)
        if interval is None:
            return None
    else:
        symbol, middle = match["asym"], "aggTrades"
    prefix = f"{symbol}-{middle}-"
    stamp = name.removesuffix(".CHECKSUM").removesuffix(".zip")
    if not stamp.startswith(prefix):
        return None
    span = _period_span(period, stamp[len(prefix) :])
    if span is None:
        return None
    kind: Kind = "klines" if interval is not None else "aggTrades"
    return ArchiveKey(
        MARKETS[match["market"]], period, kind, symbol, interval, *span, checksum=checksum
    )


def _period_span(period: Period, text: str) -> tuple[int, int] | None:
    """Return [start, end) in ms of the day or month `text` names, if it is a real date."""
    found = _DATE[period].fullmatch(text)
    if found is None:
        return None
    year, month = int(found[1]), int(found[2])
    day = int(found[3]) if period == "daily" else 1
    try:
        date(year, month, day)
    except ValueError:
        return None
    start = days_from_civil(year, month, day) * DAY_MS
    end = start + DAY_MS if period == "daily" else MO1.next_open(start)
    return start, end


# -- klines ---------------------------------------------------------------------------


def kline_lines(
    candles: Sequence[Candle],
    precision: Precision,
    *,
    micros: bool,
    disagree_at: int | None = None,
) -> bytes:
    """Write klines as archive CSV lines (no header); row `disagree_at` is altered as
    `disagree_kline_row` says (a file that disagrees with REST).

    Sample (spot, 2025 on): `1789430400000000,78189.20000000,...,1789430459999999,...,0`.
    """
    out: list[str] = []
    for i, candle in enumerate(candles):
        row: list[object] = list(kline_row(candle, precision))
        if i == disagree_at:
            row = disagree_kline_row(row)
        if micros:
            row[0] = candle.open_time_ms * 1000
            row[6] = candle.close_time_ms * 1000 + 999
        out.append(",".join(map(str, row)))
    return "".join(line + "\n" for line in out).encode()


# -- aggTrades ------------------------------------------------------------------------


class AggTrade(msgspec.Struct, frozen=True, gc=False):
    """One aggregate trade: fills `first_id`..`last_id` at one price on one side.

    The time is kept in µs so that one value writes both the ms and the µs files.
    A `msgspec.Struct`, like `Trade`: a month of a liquid symbol is millions of them.
    """

    agg_id: int
    price: int
    qty: int
    first_id: int
    last_id: int
    time_us: int
    buyer_is_maker: bool


def aggregate_trades(trades: Iterable[Trade]) -> list[AggTrade]:
    """Fold runs of consecutive trades with the same price and side into aggTrades.

    Give it one minute's trades at a time: runs never cross a minute. The aggregate id
    is the run's first trade id, a deterministic choice that needs no count of earlier
    aggregates (real ids are consecutive; ours increase but skip). The time is the first
    trade's.
    """
    out: list[AggTrade] = []
    first: Trade | None = None
    qty = last_id = 0
    for trade in trades:
        if (
            first is not None
            and trade.price == first.price
            and trade.buyer_is_maker == first.buyer_is_maker
        ):
            qty += trade.qty
            last_id = _int_id(trade.trade_id)
            continue
        if first is not None:
            out.append(_agg(first, qty, last_id))
        first, qty, last_id = trade, trade.qty, _int_id(trade.trade_id)
    if first is not None:
        out.append(_agg(first, qty, last_id))
    return out


def _agg(first: Trade, qty: int, last_id: int) -> AggTrade:
    first_id = _int_id(first.trade_id)
    return AggTrade(
        first_id, first.price, qty, first_id, last_id, first.time_ms * 1000, first.buyer_is_maker
    )


def _int_id(trade_id: int | str) -> int:
    if isinstance(trade_id, int):
        return trade_id
    raise ValueError(f"Binance trade ids are integers, not {trade_id!r}")


def agg_trade_lines(
    aggs: Iterable[AggTrade], precision: Precision, *, futures: bool, micros: bool
) -> bytes:
    """Write aggTrades as archive CSV lines (no header).

    Spot: `2759293842,36163.51000000,0.00207000,3284106384,3284106384,1700179200000,True,True`;
    USD-M: `3449899748,78152.9,0.148,8078264333,8078264336,1789430400006,true`.
    """
    p, b = precision.price, precision.base
    if futures:
        return "".join(
            f"{a.agg_id},{_float_text(a.price, p)},{_float_text(a.qty, b)},{a.first_id},"
            f"{a.last_id},{a.time_us // 1000},{'true' if a.buyer_is_maker else 'false'}\n"
            for a in aggs
        ).encode()
    return "".join(
        f"{a.agg_id},{format_units(a.price, p)},{format_units(a.qty, b)},{a.first_id},"
        f"{a.last_id},{a.time_us if micros else a.time_us // 1000},{a.buyer_is_maker},True\n"
        for a in aggs
    ).encode()


def _float_text(units: int, scale: int) -> str:
    """Write a decimal as a float's shortest text does: no trailing zeros, at least '.0'."""
    text = format_units(units, scale, fixed=False)
    return text if "." in text else text + ".0"


# -- the zip, its checksum, the 404 ---------------------------------------------------


class ZipBuilder:
    """A one-member zip built in memory, fed in chunks (a month of trades is large)."""

    def __init__(self, member: str, stamp_ms: int) -> None:
        self._buffer = io.BytesIO()
        self._zip = zipfile.ZipFile(self._buffer, "w")
        info = zipfile.ZipInfo(member, date_time=zip_date_time(stamp_ms))
        info.compress_type = zipfile.ZIP_DEFLATED
        info.create_system = 3  # Unix, whatever the host
        info.external_attr = _ZIP_ATTR
        self._member = self._zip.open(info, "w")

    def write(self, chunk: bytes) -> None:
        """Append CSV bytes to the member."""
        self._member.write(chunk)

    def finish(self) -> bytes:
        """Close the member and the archive; return the zip's bytes."""
        self._member.close()
        self._zip.close()
        return self._buffer.getvalue()


def zip_file(member: str, data: bytes, stamp_ms: int) -> bytes:
    """Return a zip holding `data` as `member`, with fixed metadata."""
    builder = ZipBuilder(member, stamp_ms)
    builder.write(data)
    return builder.finish()


def zip_date_time(ms: int) -> tuple[int, int, int, int, int, int]:
    """Return the zip timestamp (UTC, whole seconds) of an epoch-ms instant."""
    y, m, d = civil_from_days(ms // DAY_MS)
    seconds = ms % DAY_MS // 1000
    return y, m, d, seconds // 3600, seconds // 60 % 60, seconds % 60


def checksum_text(data: bytes, zip_name: str, *, wrong: bool = False) -> bytes:
    """Return the `.CHECKSUM` of a zip: sha256 hex, two spaces, the name, no newline.

    `wrong` gives a well-formed line whose hash does not match `data`.
    """
    digest = hashlib.sha256(b"not this file\0" + data if wrong else data).hexdigest()
    return f"{digest}  {zip_name}".encode()


def no_such_key(path: str) -> bytes:
    """Return S3's 404 body for a missing key (ids derived from the key, not random)."""
    key = path.lstrip("/")
    token = hashlib.sha256(key.encode()).hexdigest().upper()
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        "<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message>"
        f"<Key>{escape(key)}</Key><RequestId>{token[:16]}</RequestId>"
        f"<HostId>{token[16:]}</HostId></Error>"
    ).encode()
