"""The embedded warm store: one SQLite file of packed chunks, WAL, never on the event loop.

The file's layout and every SQL statement are in `storage/sqlite_file.py`; why chunks
at all, in `storage/chunks.py`.

Concurrency: one writer thread owns the only writing connection (SQLite allows one
writer; a dedicated thread also keeps each transaction on one connection), and readers
run on a small pool of threads with their own read-only connections. Under WAL, readers
see the last committed state and never wait for a bootstrap that is writing. Every call
runs on those threads (`storage.workers`), so nothing blocks the event loop.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TypeVar

from candlevault.domain.columns import CandleColumns
from candlevault.domain.errors import StorageError
from candlevault.domain.timeframes import Timeframe
from candlevault.domain.venues import Venue
from candlevault.storage import sqlite_file as sql
from candlevault.storage.chunk_cache import ChunkCache, ChunkChange, ChunkMeta, Directory
from candlevault.storage.chunks import (
    chunk_start,
    split_by_chunk,
)
from candlevault.storage.codec import ChunkView
from candlevault.storage.lock import DataDirLock
from candlevault.storage.ports import UpsertResult
from candlevault.storage.workers import WorkerPool

T = TypeVar("T")
FILE_NAME = "candles.sqlite3"
DEFAULT_CACHE_MB = 256  # ~2,000 day chunks of 1m: weeks of every symbol's recent history
_SCAN_CHUNKS = 16


class SqliteStore:
    """`CandleStore` on one SQLite file; open with `await SqliteStore.open(path)`."""

    def __init__(
        self, path: Path, readers: int, cache_bytes: int, lock: DataDirLock | None
    ) -> None:
        self.path = path
        self.readonly = lock is None
        self._lock = lock
        self._writer: WorkerPool[sqlite3.Connection] | None = None
        if lock is not None:
            self._writer = WorkerPool(1, "sqlite-writer", self._open_writer, _close)
        self._readers = WorkerPool(readers, "sqlite-reader", self._open_reader, _close)
        self._cache = ChunkCache(cache_bytes) if lock is not None and cache_bytes else None

    @classmethod
    async def open(
        cls,
        path: Path,
        *,
        readers: int = 4,
        cache_mb: int = DEFAULT_CACHE_MB,
        readonly: bool = False,
    ) -> SqliteStore:
        """Open the store file at `path` (`data_dir / FILE_NAME`).

        Writable (the default): creates the file if needed and takes the data dir's
        writer lock (`storage.lock`; StorageError naming the holder if another process
        has it), which also makes this process's chunk cache of `cache_mb` MiB exact.
        `readonly`: no lock, no writes, no cache; every read goes to SQLite, so it sees
        what a writer in another process commits."""
        if readonly:
            if not await asyncio.to_thread(path.is_file):
                raise StorageError(f"no candle store at {path}")
            return cls(path, readers, 0, None)
        lock = DataDirLock(path.parent)
        await asyncio.to_thread(lock.acquire)
        store = cls(path, readers, cache_mb * 2**20, lock)
        try:
            await store._write(sql.create)
        except BaseException:
            await store.aclose()
            raise
        return store

    # -- CandleStore ------------------------------------------------------------------

    async def upsert(
        self, venue: Venue, symbol: str, tf: Timeframe, candles: CandleColumns
    ) -> UpsertResult:
        """Insert or replace candles by open time, chunk by chunk, in one transaction."""
        if len(candles) == 0:
            return UpsertResult()
        (result,) = await self.write(venue, symbol, [(tf, candles)])
        return result

    async def write(
        self,
        venue: Venue,
        symbol: str,
        batches: Sequence[tuple[Timeframe, CandleColumns]],
        ledger: bytes | None = None,
    ) -> list[UpsertResult]:
        """Upsert the batches in order and store the ledger, all in one transaction."""

        def write(c: sqlite3.Connection, changes: list[ChunkChange]) -> list[UpsertResult]:
            # packing runs here, on the writer thread: CPU work, kept off the event loop
            results = [
                sql.upsert(c, (venue.value, symbol, tf.code), split_by_chunk(tf, rows), changes)
                for tf, rows in batches
            ]
            if ledger is not None:
                sql.put_ledger(c, venue.value, symbol, ledger)
            return results

        return await self._commit(write)

    async def read(
        self,
        venue: Venue,
        symbol: str,
        tf: Timeframe,
        *,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int | None = None,
    ) -> CandleColumns:
        """Return candles opening in [start_ms, end_ms], ascending, the oldest `limit`."""
        key = (venue.value, symbol, tf.code)
        lo_ms = -(2**62) if start_ms is None else start_ms
        hi_ms = 2**62 if end_ms is None else end_ms
        if self._cache is None:
            return await self._read(
                lambda c: sql.take_range(
                    sql.chunk_views(c, key, tf, lo_ms, hi_ms), lo_ms, hi_ms, limit
                )
            )
        low = -(2**62) if start_ms is None else chunk_start(tf, start_ms)
        chunks = (await self._directory(key)).window(low, hi_ms, lo_ms, limit)
        return await self._cached(
            key, chunks, lambda views: sql.take_range(views, lo_ms, hi_ms, limit)
        )

    async def latest(self, venue: Venue, symbol: str, tf: Timeframe, n: int) -> CandleColumns:
        """Return the newest `n` candles, ascending."""
        key = (venue.value, symbol, tf.code)
        if self._cache is None:
            return await self._read(lambda c: sql.take_latest(sql.newest_views(c, key), n))
        chunks = (await self._directory(key)).tail(n)[::-1]
        return await self._cached(key, chunks, lambda views: sql.take_latest(views, n))

    async def bounds(self, venue: Venue, symbol: str, tf: Timeframe) -> tuple[int, int] | None:
        """Return the first and last open time stored (None: nothing stored)."""
        key = (venue.value, symbol, tf.code)
        if self._cache is not None:
            chunks = (await self._directory(key)).chunks
            return (chunks[0].first, chunks[-1].last) if chunks else None

        def query(c: sqlite3.Connection) -> tuple[int, int] | None:
            row = c.execute(f"SELECT min(first), max(last) FROM chunks WHERE {sql.SERIES}", key)
            first, last = row.fetchone()
            return None if first is None else (first, last)

        return await self._read(query)

    async def count(
        self,
        venue: Venue,
        symbol: str,
        tf: Timeframe,
        *,
        start_ms: int | None = None,
        end_ms: int | None = None,
    ) -> int:
        """Return how many candles open in [start_ms, end_ms]."""
        key = (venue.value, symbol, tf.code)
        return await self._read(lambda c: sql.count(c, key, tf, start_ms, end_ms))

    async def delete(
        self, venue: Venue, symbol: str, tf: Timeframe, start_ms: int, end_ms: int
    ) -> int:
        """Delete the candles opening in [start_ms, end_ms]; return how many went."""
        key = (venue.value, symbol, tf.code)
        return await self._commit(
            lambda c, changes: sql.delete(c, key, tf, start_ms, end_ms, changes)
        )

    async def load_ledger(self, venue: Venue, symbol: str) -> bytes | None:
        """Return the stored coverage ledger blob of (venue, symbol)."""

        def query(c: sqlite3.Connection) -> bytes | None:
            row = c.execute(
                "SELECT data FROM ledgers WHERE venue = ? AND symbol = ?", (venue.value, symbol)
            ).fetchone()
            return None if row is None else bytes(row[0])

        return await self._read(query)

    async def save_ledger(self, venue: Venue, symbol: str, ledger: bytes) -> None:
        """Store the coverage ledger blob of (venue, symbol)."""

        await self._commit(lambda c, _: sql.put_ledger(c, venue.value, symbol, ledger))

    async def checkpoint(self) -> None:
        """Copy the WAL into the database file and truncate it (SQLite does this by
        itself every ~1,000 pages; useful before measuring or backing up the file)."""
        await self._write(lambda c: c.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall())

    async def aclose(self) -> None:
        """Wait for pending work, close every connection, release the writer lock."""
        try:
            if self._writer is not None:
                await self._writer.aclose()
            await self._readers.aclose()
        finally:
            if self._lock is not None:
                self._lock.release()

    # -- threads, connections and the chunk cache --------------------------------------

    async def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        if self._writer is None:
            raise StorageError(f"the candle store at {self.path} was opened read-only")
        return await self._run(self._writer, work)

    async def _commit(self, work: Callable[[sqlite3.Connection, list[ChunkChange]], T]) -> T:
        """Run `work` in one write transaction; once committed, let the cache follow."""

        def run(c: sqlite3.Connection) -> tuple[T, list[ChunkChange]]:
            changes: list[ChunkChange] = []
            with sql.transaction(c):
                result = work(c, changes)
            return result, changes

        result, changes = await self._write(run)
        if self._cache is not None:
            self._cache.apply(changes)
        return result

    async def _read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        return await self._run(self._readers, work)

    @staticmethod
    async def _run(
        pool: WorkerPool[sqlite3.Connection], work: Callable[[sqlite3.Connection], T]
    ) -> T:
        try:
            return await pool.run(work)
        except sqlite3.Error as e:
            raise StorageError(f"SQLite: {e}") from e

    async def _directory(self, key: tuple[str, str, str]) -> Directory:
        assert self._cache is not None
        directory = self._cache.directory(key)
        if directory is None:
            generation = self._cache.generation(key)
            chunks = await self._read(lambda c: sql.load_directory(c, key))
            self._cache.set_directory(key, chunks, generation)
            directory = self._cache.directory(key) or Directory(chunks)
        return directory

    async def _cached(
        self,
        key: tuple[str, str, str],
        chunks: list[ChunkMeta],
        take: Callable[[Iterable[ChunkView]], CandleColumns],
    ) -> CandleColumns:
        """Apply `take` to the chunks' views: on the loop when all are cached, else on
        a reader thread that loads the missing blobs and decodes there too (the rows it
        unpacks are in that core's cache), the loaded chunks then cached. A long scan
        (more than `_SCAN_CHUNKS` missing) is not cached, so one export of a whole
        history cannot evict every hot chunk."""
        assert self._cache is not None
        cache = self._cache
        views = [cache.blob(key, c.start) for c in chunks]
        missing = [c.start for c, v in zip(chunks, views, strict=True) if v is None]
        if not missing:
            return take(views)  # type: ignore[arg-type]
        generation = cache.generation(key)

        def load(c: sqlite3.Connection) -> tuple[CandleColumns, list[ChunkView]]:
            loaded = iter(sql.load_blobs(c, key, missing))
            filled = [ChunkView(next(loaded)) if v is None else v for v in views]
            return take(filled), filled

        rows, filled = await self._read(load)
        if len(missing) <= _SCAN_CHUNKS:
            for chunk, cached, view in zip(chunks, views, filled, strict=True):
                if cached is None:
                    cache.fill(key, chunk.start, view, generation)
        return rows

    def _open_writer(self) -> sqlite3.Connection:
        return sql.connect(self.path, readonly=False)

    def _open_reader(self) -> sqlite3.Connection:
        return sql.connect(self.path, readonly=True)


def _close(conn: sqlite3.Connection) -> None:
    conn.close()
