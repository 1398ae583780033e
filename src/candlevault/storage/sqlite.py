"""The embedded warm store: one SQLite file of packed chunks, WAL, never on the event loop.

Layout: table `chunks`, one row per chunk of `storage.chunks` (a UTC day of 1m, ...)
under a unique key (venue, symbol, tf, start), so every upsert is idempotent and a
500-candle read is one or two index lookups plus a C-level unpack. It is a rowid table
on purpose: SQLite fetches a ~128 KiB blob from a rowid table in ~8 µs, from a WITHOUT
ROWID one (an index b-tree, meant for rows under ~1/20 of a page) in ~45 µs. Table
`ledgers` holds each series' coverage ledger blob. Why chunks at all:
`storage/chunks.py`.

Concurrency: one writer thread owns the only writing connection (SQLite allows one
writer; a dedicated thread also keeps each transaction on one connection), and readers
run on a small pool of threads with their own read-only connections. Under WAL, readers
see the last committed state and never wait for a bootstrap that is writing. Every call
runs on those threads (`storage.workers`), so nothing blocks the event loop.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from candlevault.domain.columns import CandleColumns
from candlevault.domain.errors import StorageError
from candlevault.domain.timeframes import Timeframe
from candlevault.domain.venues import Venue
from candlevault.storage.chunk_cache import ChunkCache, ChunkChange, ChunkMeta, Directory
from candlevault.storage.chunks import (
    ChunkPart,
    chunk_start,
    concat,
    merge_chunk,
    packed_chunk,
    split_by_chunk,
)
from candlevault.storage.codec import ChunkView
from candlevault.storage.lock import DataDirLock
from candlevault.storage.ports import UpsertResult
from candlevault.storage.workers import WorkerPool

T = TypeVar("T")
FILE_NAME = "candles.sqlite3"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY,
    venue TEXT NOT NULL, symbol TEXT NOT NULL, tf TEXT NOT NULL, start INTEGER NOT NULL,
    first INTEGER NOT NULL, last INTEGER NOT NULL, n INTEGER NOT NULL, data BLOB NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS chunks_key ON chunks (venue, symbol, tf, start);
CREATE TABLE IF NOT EXISTS ledgers (
    venue TEXT NOT NULL, symbol TEXT NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (venue, symbol)
) WITHOUT ROWID;
"""
# The first layout kept chunks in a WITHOUT ROWID table: fine for small rows, but a
# ~128 KiB blob in an index b-tree costs ~45 µs to fetch against ~8 µs in a rowid
# table. Files of that layout are moved over once, in one transaction.
_MIGRATE_WITHOUT_ROWID = (
    """
ALTER TABLE chunks RENAME TO chunks_without_rowid;
"""
    + _SCHEMA.split("CREATE TABLE IF NOT EXISTS ledgers")[0]
    + """
INSERT INTO chunks (venue, symbol, tf, start, first, last, n, data)
    SELECT venue, symbol, tf, start, first, last, n, data FROM chunks_without_rowid;
DROP TABLE chunks_without_rowid;
"""
)
_SERIES = "venue = ? AND symbol = ? AND tf = ?"
MMAP_BYTES = 1 << 34  # address space only: pages come and go with the OS page cache
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
            await store._write(store._create)
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
        key = (venue.value, symbol, tf.code)

        def write(c: sqlite3.Connection, changes: list[ChunkChange]) -> UpsertResult:
            return self._upsert(c, key, split_by_chunk(tf, candles), changes)

        return await self._commit(write)

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
                self._upsert(c, (venue.value, symbol, tf.code), split_by_chunk(tf, rows), changes)
                for tf, rows in batches
            ]
            if ledger is not None:
                self._put_ledger(c, venue, symbol, ledger)
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
                lambda c: _take_range(
                    self._chunk_views(c, key, tf, lo_ms, hi_ms), lo_ms, hi_ms, limit
                )
            )
        low = -(2**62) if start_ms is None else chunk_start(tf, start_ms)
        chunks = (await self._directory(key)).window(low, hi_ms, lo_ms, limit)
        return await self._cached(
            key, chunks, lambda views: _take_range(views, lo_ms, hi_ms, limit)
        )

    async def latest(self, venue: Venue, symbol: str, tf: Timeframe, n: int) -> CandleColumns:
        """Return the newest `n` candles, ascending."""
        key = (venue.value, symbol, tf.code)
        if self._cache is None:
            return await self._read(lambda c: _take_latest(self._newest_views(c, key), n))
        chunks = (await self._directory(key)).tail(n)[::-1]
        return await self._cached(key, chunks, lambda views: _take_latest(views, n))

    async def bounds(self, venue: Venue, symbol: str, tf: Timeframe) -> tuple[int, int] | None:
        """Return the first and last open time stored (None: nothing stored)."""
        key = (venue.value, symbol, tf.code)
        if self._cache is not None:
            chunks = (await self._directory(key)).chunks
            return (chunks[0].first, chunks[-1].last) if chunks else None

        def query(c: sqlite3.Connection) -> tuple[int, int] | None:
            row = c.execute(f"SELECT min(first), max(last) FROM chunks WHERE {_SERIES}", key)
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
        return await self._read(lambda c: self._count(c, key, tf, start_ms, end_ms))

    async def delete(
        self, venue: Venue, symbol: str, tf: Timeframe, start_ms: int, end_ms: int
    ) -> int:
        """Delete the candles opening in [start_ms, end_ms]; return how many went."""
        key = (venue.value, symbol, tf.code)
        return await self._commit(
            lambda c, changes: self._delete(c, key, tf, start_ms, end_ms, changes)
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

        await self._commit(lambda c, _: self._put_ledger(c, venue, symbol, ledger))

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
            with _transaction(c):
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
            chunks = await self._read(lambda c: _load_directory(c, key))
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
            loaded = iter(_load_blobs(c, key, missing))
            filled = [ChunkView(next(loaded)) if v is None else v for v in views]
            return take(filled), filled

        rows, filled = await self._read(load)
        if len(missing) <= _SCAN_CHUNKS:
            for chunk, cached, view in zip(chunks, views, filled, strict=True):
                if cached is None:
                    cache.fill(key, chunk.start, view, generation)
        return rows

    def _open_writer(self) -> sqlite3.Connection:
        return self._connect(readonly=False)

    def _open_reader(self) -> sqlite3.Connection:
        return self._connect(readonly=True)

    def _connect(self, readonly: bool) -> sqlite3.Connection:
        uri = f"file:{self.path}?mode={'ro' if readonly else 'rwc'}"
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA busy_timeout = 5000")
        # Map the file: a chunk is ~26 pages, and reading them through the OS page
        # cache costs a pread each; mapped, a blob is one copy (~0.1 ms less a miss).
        conn.execute(f"PRAGMA mmap_size = {MMAP_BYTES}")
        if not readonly:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            # Derived chunks are read, merged and rewritten batch after batch: keep
            # the recent ones in SQLite's cache (64 MiB instead of the default 2 MiB).
            conn.execute("PRAGMA cache_size = -65536")
            # Checkpoint (copy the WAL into the file, with an fsync) every ~64 MiB of
            # WAL instead of SQLite's 1,000 pages (4 MiB): a bulk ingest writes that
            # much every few batches, and each checkpoint stalls the writer.
            conn.execute("PRAGMA wal_autocheckpoint = 16384")
        return conn

    @staticmethod
    def _create(conn: sqlite3.Connection) -> None:
        row = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'chunks'").fetchone()
        if row is not None and "WITHOUT ROWID" in row[0].upper():
            conn.executescript(f"BEGIN IMMEDIATE; {_MIGRATE_WITHOUT_ROWID} COMMIT;")
        conn.executescript(_SCHEMA)

    # -- the work, on the store's threads ----------------------------------------------

    def _upsert(
        self,
        conn: sqlite3.Connection,
        key: tuple[str, str, str],
        parts: list[ChunkPart],
        changes: list[ChunkChange],
    ) -> UpsertResult:
        """Merge `parts` into their chunks (inside the caller's transaction)."""
        result = UpsertResult()
        for part in parts:
            start = part.start
            row = conn.execute(
                f"SELECT data FROM chunks WHERE {_SERIES} AND start = ?", (*key, start)
            ).fetchone()
            done = merge_chunk(None if row is None else row[0], part)
            unchanged = len(part) - done.inserted - done.corrected
            result += UpsertResult(done.inserted, done.corrected, unchanged)
            if done.blob is not None:
                meta = ChunkMeta(start, done.first, done.last, done.n)
                changes.append(self._put_chunk(conn, key, meta, done.blob))
        return result

    @staticmethod
    def _put_ledger(conn: sqlite3.Connection, venue: Venue, symbol: str, ledger: bytes) -> None:
        conn.execute(
            "INSERT INTO ledgers VALUES (?, ?, ?) ON CONFLICT (venue, symbol) "
            "DO UPDATE SET data = excluded.data",
            (venue.value, symbol, ledger),
        )

    @staticmethod
    def _put_chunk(
        conn: sqlite3.Connection, key: tuple[str, str, str], meta: ChunkMeta, blob: bytes
    ) -> ChunkChange:
        conn.execute(
            "INSERT INTO chunks (venue, symbol, tf, start, first, last, n, data) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (venue, symbol, tf, start) DO UPDATE SET first = excluded.first, "
            "last = excluded.last, n = excluded.n, data = excluded.data",
            (*key, meta.start, meta.first, meta.last, meta.n, blob),
        )
        return ChunkChange(key, meta.start, meta, blob)

    @staticmethod
    def _drop_chunk(conn: sqlite3.Connection, key: tuple[str, str, str], start: int) -> ChunkChange:
        conn.execute(f"DELETE FROM chunks WHERE {_SERIES} AND start = ?", (*key, start))
        return ChunkChange(key, start, None, None)

    @staticmethod
    def _chunks(
        conn: sqlite3.Connection,
        key: tuple[str, str, str],
        tf: Timeframe,
        start_ms: int | None,
        end_ms: int | None,
    ) -> Iterator[tuple[int, int, int, int]]:
        """Yield (id, first, last, n) of the chunks that may hold candles opening in
        [start_ms, end_ms], ascending. Metadata only: a blob is read (`_blob`) only
        when needed, never one ahead (sqlite3 cursors step one row ahead of the
        caller, and a blob is ~128 KiB)."""
        low = -(2**62) if start_ms is None else chunk_start(tf, start_ms)
        high = 2**62 if end_ms is None else end_ms
        yield from conn.execute(
            f"SELECT id, first, last, n FROM chunks WHERE {_SERIES} AND start >= ? "
            "AND start <= ? AND last >= ? ORDER BY start",
            (*key, low, high, -(2**62) if start_ms is None else start_ms),
        )

    @staticmethod
    def _blob(conn: sqlite3.Connection, chunk_id: int) -> ChunkView:
        (blob,) = conn.execute("SELECT data FROM chunks WHERE id = ?", (chunk_id,)).fetchone()
        return ChunkView(blob)

    def _chunk_views(
        self,
        conn: sqlite3.Connection,
        key: tuple[str, str, str],
        tf: Timeframe,
        lo_ms: int,
        hi_ms: int,
    ) -> Iterator[ChunkView]:
        """The chunks of [lo_ms, hi_ms], ascending, each read only when asked for."""
        for chunk_id, *_ in self._chunks(conn, key, tf, lo_ms, hi_ms):
            yield self._blob(conn, chunk_id)

    def _newest_views(
        self, conn: sqlite3.Connection, key: tuple[str, str, str]
    ) -> Iterator[ChunkView]:
        """The series' chunks, newest first, each read only when asked for."""
        query = f"SELECT id FROM chunks WHERE {_SERIES} ORDER BY start DESC"
        for (chunk_id,) in conn.execute(query, key):
            yield self._blob(conn, chunk_id)

    def _count(
        self,
        conn: sqlite3.Connection,
        key: tuple[str, str, str],
        tf: Timeframe,
        start_ms: int | None,
        end_ms: int | None,
    ) -> int:
        lo_ms = -(2**62) if start_ms is None else start_ms
        hi_ms = 2**62 if end_ms is None else end_ms
        total = 0
        for chunk_id, first, last, n in self._chunks(conn, key, tf, start_ms, end_ms):
            if first >= lo_ms and last <= hi_ms:
                total += n
            else:
                lo, hi = self._blob(conn, chunk_id).index_range(lo_ms, hi_ms)
                total += hi - lo
        return total

    def _delete(
        self,
        conn: sqlite3.Connection,
        key: tuple[str, str, str],
        tf: Timeframe,
        start_ms: int,
        end_ms: int,
        changes: list[ChunkChange],
    ) -> int:
        gone = 0
        chunks = list(
            conn.execute(
                f"SELECT start, data FROM chunks WHERE {_SERIES} AND start >= ? "
                "AND start <= ? AND last >= ?",
                (*key, chunk_start(tf, start_ms), end_ms, start_ms),
            )
        )
        for start, blob in chunks:
            view = ChunkView(blob)
            first, last = view.index_range(start_ms, end_ms)
            gone += last - first
            if first == last:
                continue
            keep = view.rows(0, first)
            keep.extend(view.rows(last))
            if len(keep) == 0:
                changes.append(self._drop_chunk(conn, key, start))
            else:
                done = packed_chunk(keep)
                assert done.blob is not None
                meta = ChunkMeta(start, done.first, done.last, done.n)
                changes.append(self._put_chunk(conn, key, meta, done.blob))
        return gone


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """One write transaction, taken up front (no upgrade from a read lock to fail)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _load_directory(conn: sqlite3.Connection, key: tuple[str, str, str]) -> list[ChunkMeta]:
    rows = conn.execute(f"SELECT start, first, last, n FROM chunks WHERE {_SERIES}", key)
    return [ChunkMeta(*row) for row in rows]


def _take_range(
    views: Iterable[ChunkView], lo_ms: int, hi_ms: int, limit: int | None
) -> CandleColumns:
    """The candles opening in [lo_ms, hi_ms] (the oldest `limit`) of ascending chunks."""
    parts: list[CandleColumns] = []
    have = 0
    for view in views:
        if limit is not None and have >= limit:
            break
        lo, hi = view.index_range(lo_ms, hi_ms)
        if limit is not None:
            hi = min(hi, lo + limit - have)
        parts.append(view.rows(lo, hi))
        have += len(parts[-1])
    return concat(parts)


def _take_latest(views: Iterable[ChunkView], n: int) -> CandleColumns:
    """The newest `n` candles, ascending, of chunks given newest first."""
    parts: list[CandleColumns] = []
    have = 0
    for view in views:
        if have >= n:
            break
        take = min(view.count, n - have)
        parts.append(view.rows(view.count - take, view.count))
        have += take
    return concat(parts[::-1])


def _load_blobs(
    conn: sqlite3.Connection, key: tuple[str, str, str], starts: list[int]
) -> list[bytes]:
    query = f"SELECT data FROM chunks WHERE {_SERIES} AND start = ?"
    out = []
    for start in starts:
        row = conn.execute(query, (*key, start)).fetchone()
        if row is None:  # removed by a write the caller's directory had not seen yet
            raise StorageError(f"chunk {start} of {'/'.join(key)} vanished during a read")
        out.append(row[0])
    return out


def _close(conn: sqlite3.Connection) -> None:
    conn.close()
