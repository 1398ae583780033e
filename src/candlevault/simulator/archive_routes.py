"""The data.binance.vision endpoints: which file exists at sim time, and its bytes.

Paths and formats are `archives`; this module decides *whether* a file is there and
builds it from the world's market, so an archive is one more view of the same trades:

- Kline files hold exactly the klines REST serves (the symbol's `KlineView`, asked as of
  the moment the file's last bucket has closed), so a file never holds a forming candle
  and its content does not depend on when it is fetched. Those opening in the day or
  month are the rows; a monthly `1w` or `3d` file includes the bucket that straddles
  into the next month, and is published only once that bucket has closed.
  aggTrades files fold each minute's trades with `aggregate_trades`.
- Publication lag runs in sim time: a day's file appears at the end of the day plus
  `archive_daily_lag_s`, a month's at the end of the month (or of its last bucket)
  plus `archive_monthly_lag_s`, both plus the fault switchboard's `archive_late_s`.
  Before that, before the listing, for a file with no rows, an unknown symbol or
  interval, and for files the faults call missing: 404 with S3's `NoSuchKey` XML.
- Faults (`world.faults.archive(name)`, decided per file): truncated zips are cut short
  (their `.CHECKSUM` still names the whole file), bad checksums hash something else,
  disagreeing kline files alter one row's volume (`disagree_kline_row`). aggTrades
  files are never made to disagree: the fault is about candles.
- Built files are cached per world in a small LRU bounded by bytes: a month of 1m is
  ~45k rows and ~0.5 s to build, then free. Building runs on the event loop because the
  market model is not thread-safe; aggTrades files yield to the loop between days. A
  month of aggTrades of a liquid symbol is millions of trades: slow and large, as the
  real one is, and too big to cache.
- The ledger counts each kline zip's rows as candles (aggTrades and `.CHECKSUM`: 0).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import weakref
from collections import OrderedDict
from dataclasses import dataclass

from aiohttp import web

from candlevault.domain.timeframes import DAY_MS, MINUTE_MS, Timeframe
from candlevault.simulator.archives import (
    AGG_TRADES_HEADER,
    KLINES_HEADER,
    MARKETS,
    ArchiveKey,
    ZipBuilder,
    agg_trade_lines,
    aggregate_trades,
    checksum_text,
    kline_lines,
    no_such_key,
    parse_archive_path,
)
from candlevault.simulator.faults import ARCHIVE, ArchiveFault, RequestFault
from candlevault.simulator.http import Endpoint, Reply, VenueError
from candlevault.simulator.klines import KlineView
from candlevault.simulator.market import VenueMarket
from candlevault.simulator.world import SimConfig, SimWorld

CACHE_BYTES = 64 * 2**20
"""Bytes of built files kept per world; a file over a quarter of it is not kept."""
CACHE_FILES = 32


@dataclass(frozen=True, slots=True)
class ArchiveFile:
    """A built zip, its sha256 (hex) and its CSV rows (header excluded)."""

    data: bytes
    sha256: str
    rows: int


async def serve_zip(world: SimWorld, request: web.Request, fault: RequestFault) -> Reply:
    """Serve `<file>.zip`, cut short when the file is faulted as truncated."""
    key, archive_fault, built = await _published(world, request.path)
    data = archive_fault.cut(built.data) if archive_fault.truncated else built.data
    return Reply(data, built.rows if key.kind == "klines" else 0, "application/zip")


async def serve_checksum(world: SimWorld, request: web.Request, fault: RequestFault) -> Reply:
    """Serve `<file>.zip.CHECKSUM`: the whole file's sha256, or a wrong one if faulted."""
    key, archive_fault, built = await _published(world, request.path)
    if archive_fault.bad_checksum:
        body = checksum_text(built.data, key.zip_name, wrong=True)
    else:
        body = f"{built.sha256}  {key.zip_name}".encode()
    return Reply(body, 0, "text/plain")


def published_ms(config: SimConfig, key: ArchiveKey, listed_ms: int) -> int:
    """Return when a file appears (sim time, before any `archive_late_s`)."""
    if key.period == "daily":
        return key.end_ms + round(config.archive_daily_lag_s * 1000)
    return content_end_ms(key, listed_ms) + round(config.archive_monthly_lag_s * 1000)


def content_end_ms(key: ArchiveKey, listed_ms: int) -> int:
    """Return the instant by which every row of the file has closed."""
    tf = key.interval
    if tf is None:
        return key.end_ms
    last_open = tf.bucket_open(key.end_ms - 1, listed_ms)
    return max(key.end_ms, tf.close_time(last_open, listed_ms) + 1)


async def build_file(world: SimWorld, key: ArchiveKey, fault: ArchiveFault) -> ArchiveFile:
    """Build (or take from the world's cache) the zip `key` names, as `fault` alters it."""
    view = world.view(key.venue, key.symbol)
    if view is None:
        raise ValueError(f"{key.symbol} is not listed on {key.venue.value}")
    stamp = published_ms(world.config, key, view.market.listing.listed_ms)
    disagree = fault.disagree and key.kind == "klines"
    cache_key = (dataclasses.replace(key, checksum=False), disagree)
    store = _STORES.get(world)
    if store is None:
        store = _STORES[world] = _Store()
    async with store.lock(cache_key):
        found = store.get(cache_key)
        if found is None:
            if key.interval is not None:
                found = _kline_file(view, key, key.interval, stamp, fault if disagree else None)
            else:
                found = await _agg_trades_file(view.market, key, stamp)
            store.put(cache_key, found)
    return found


async def _published(world: SimWorld, path: str) -> tuple[ArchiveKey, ArchiveFault, ArchiveFile]:
    """Find the file at `path` if it is published at sim now; else raise S3's 404."""
    key = parse_archive_path(path)
    view = world.view(key.venue, key.symbol) if key is not None else None
    if key is None or view is None:
        raise _missing(path)
    fault = world.faults.archive(key.zip_name)
    listed = view.market.listing.listed_ms
    if fault.missing or key.end_ms <= listed:
        raise _missing(path)
    ready = published_ms(world.config, key, listed) + round(fault.late_s * 1000)
    if world.now_ms() < ready:
        raise _missing(path)
    built = await build_file(world, key, fault)
    if built.rows == 0:  # a period with no trading data has no file
        raise _missing(path)
    return key, fault, built


def _missing(path: str) -> VenueError:
    return VenueError(404, no_such_key(path), "application/xml")


def _kline_file(
    view: KlineView, key: ArchiveKey, tf: Timeframe, stamp_ms: int, fault: ArchiveFault | None
) -> ArchiveFile:
    listing = view.market.listing
    candles = view.window(
        tf,
        now_ms=content_end_ms(key, listing.listed_ms),
        start_ms=key.start_ms,
        end_ms=key.end_ms - 1,
        limit=(key.end_ms - key.start_ms) // MINUTE_MS + 1,
    )
    at = fault.row_index(len(candles)) if fault is not None and candles else None
    lines = kline_lines(candles, listing.precision, micros=key.micros, disagree_at=at)
    data = (KLINES_HEADER if key.futures else b"") + lines
    builder = ZipBuilder(f"{key.stem}.csv", stamp_ms)
    builder.write(data)
    return _finished(builder, len(candles))


async def _agg_trades_file(market: VenueMarket, key: ArchiveKey, stamp_ms: int) -> ArchiveFile:
    builder = ZipBuilder(f"{key.stem}.csv", stamp_ms)
    if key.futures:
        builder.write(AGG_TRADES_HEADER)
    precision = market.listing.precision
    rows = 0
    for day in range(key.start_ms, key.end_ms, DAY_MS):
        if day + DAY_MS <= market.listing.listed_ms:
            continue
        aggs = [
            agg
            for minute in range(day, day + DAY_MS, MINUTE_MS)
            for agg in aggregate_trades(market.trades(minute))
        ]
        rows += len(aggs)
        builder.write(agg_trade_lines(aggs, precision, futures=key.futures, micros=key.micros))
        await asyncio.sleep(0)  # a month is millions of trades: let other requests in
    return _finished(builder, rows)


def _finished(builder: ZipBuilder, rows: int) -> ArchiveFile:
    data = builder.finish()
    return ArchiveFile(data, hashlib.sha256(data).hexdigest(), rows)


_CacheKey = tuple[ArchiveKey, bool]


class _Store:
    """A world's built files, least recently used out first, bounded by bytes."""

    def __init__(self) -> None:
        self._files: OrderedDict[_CacheKey, ArchiveFile] = OrderedDict()
        self._bytes = 0
        self._locks: dict[_CacheKey, asyncio.Lock] = {}

    def lock(self, key: _CacheKey) -> _KeyLock:
        """Return a context that lets one request at a time build `key`."""
        return _KeyLock(self._locks, key)

    def get(self, key: _CacheKey) -> ArchiveFile | None:
        found = self._files.get(key)
        if found is not None:
            self._files.move_to_end(key)
        return found

    def put(self, key: _CacheKey, built: ArchiveFile) -> None:
        if len(built.data) > CACHE_BYTES // 4 or key in self._files:
            return
        self._files[key] = built
        self._bytes += len(built.data)
        while self._bytes > CACHE_BYTES or len(self._files) > CACHE_FILES:
            _, dropped = self._files.popitem(last=False)
            self._bytes -= len(dropped.data)


class _KeyLock:
    """An `asyncio.Lock` per cache key, dropped once nobody holds it."""

    def __init__(self, locks: dict[_CacheKey, asyncio.Lock], key: _CacheKey) -> None:
        self._locks = locks
        self._key = key
        self._lock = locks.setdefault(key, asyncio.Lock())

    async def __aenter__(self) -> None:
        await self._lock.acquire()

    async def __aexit__(self, *exc: object) -> None:
        self._lock.release()
        if not self._lock.locked() and self._locks.get(self._key) is self._lock:
            del self._locks[self._key]


_STORES: weakref.WeakKeyDictionary[SimWorld, _Store] = weakref.WeakKeyDictionary()


def _endpoints() -> list[Endpoint]:
    out: list[Endpoint] = []
    for market in MARKETS:
        for period in ("daily", "monthly"):
            for kind, folder in (("klines", "{symbol}/{interval}"), ("aggTrades", "{symbol}")):
                zip_path = f"/data/{market}/{period}/{kind}/{folder}/{{name}}.zip"
                out.append(Endpoint("GET", zip_path, ARCHIVE, "none", serve_zip, weight=0))
                out.append(
                    Endpoint(
                        "GET", f"{zip_path}.CHECKSUM", ARCHIVE, "none", serve_checksum, weight=0
                    )
                )
    return out


ENDPOINTS: list[Endpoint] = _endpoints()
"""Every data.binance.vision path served: spot and USD-M, daily and monthly, klines and
aggTrades, each zip and its `.CHECKSUM` (counted apart in the ledger)."""
