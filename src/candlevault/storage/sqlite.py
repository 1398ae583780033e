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
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from candlevault.domain.columns import CandleColumns, columns_from, empty_columns
from candlevault.domain.errors import StorageError
from candlevault.domain.timeframes import Timeframe
from candlevault.domain.venues import Venue
from candlevault.storage.chunks import (
    ChunkView,
    chunk_start,
    concat,
    encode,
    merge,
    split_by_chunk,
)
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


class SqliteStore:
    """`CandleStore` on one SQLite file; open with `await SqliteStore.open(path)`."""

    def __init__(self, path: Path, readers: int = 4) -> None:
        self.path = path
        self._writer = WorkerPool(1, "sqlite-writer", self._open_writer, _close)
        self._readers = WorkerPool(readers, "sqlite-reader", self._open_reader, _close)

    @classmethod
    async def open(cls, path: Path, readers: int = 4) -> SqliteStore:
        """Open (creating if needed) the store file at `path` (`data_dir / FILE_NAME`)."""
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        store = cls(path, readers)
        await store._write(store._create)
        return store

    # -- CandleStore ------------------------------------------------------------------

    async def upsert(
        self, venue: Venue, symbol: str, tf: Timeframe, candles: CandleColumns
    ) -> UpsertResult:
        """Insert or replace candles by open time, chunk by chunk, in one transaction."""
        if len(candles) == 0:
            return UpsertResult()
        parts = split_by_chunk(tf, candles)
        key = (venue.value, symbol, tf.code)
        return await self._write(lambda c: self._upsert(c, key, parts))

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
        return await self._read(lambda c: self._range(c, key, tf, start_ms, end_ms, limit))

    async def latest(self, venue: Venue, symbol: str, tf: Timeframe, n: int) -> CandleColumns:
        """Return the newest `n` candles, ascending."""
        key = (venue.value, symbol, tf.code)
        return await self._read(lambda c: self._latest(c, key, n))

    async def bounds(self, venue: Venue, symbol: str, tf: Timeframe) -> tuple[int, int] | None:
        """Return the first and last open time stored (None: nothing stored)."""
        key = (venue.value, symbol, tf.code)

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
        return await self._write(lambda c: self._delete(c, key, tf, start_ms, end_ms))

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

        def write(c: sqlite3.Connection) -> None:
            with c:
                c.execute(
                    "INSERT INTO ledgers VALUES (?, ?, ?) ON CONFLICT (venue, symbol) "
                    "DO UPDATE SET data = excluded.data",
                    (venue.value, symbol, ledger),
                )

        await self._write(write)

    async def aclose(self) -> None:
        """Wait for pending work, then close every connection."""
        await self._writer.aclose()
        await self._readers.aclose()

    # -- threads and connections ------------------------------------------------------

    async def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        return await self._run(self._writer, work)

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

    def _open_writer(self) -> sqlite3.Connection:
        return self._connect(readonly=False)

    def _open_reader(self) -> sqlite3.Connection:
        return self._connect(readonly=True)

    def _connect(self, readonly: bool) -> sqlite3.Connection:
        uri = f"file:{self.path}?mode={'ro' if readonly else 'rwc'}"
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA busy_timeout = 5000")
        if not readonly:
            # A day of 1m is a ~128 KiB blob: 64 KiB pages keep it in a few pages instead
            # of a chain of 30 overflow pages (only takes effect on a new file).
            conn.execute("PRAGMA page_size = 65536")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
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
        parts: dict[int, CandleColumns],
    ) -> UpsertResult:
        result = UpsertResult()
        conn.execute("BEGIN IMMEDIATE")
        try:
            for start, part in parts.items():
                row = conn.execute(
                    f"SELECT data FROM chunks WHERE {_SERIES} AND start = ?", (*key, start)
                ).fetchone()
                existing = empty_columns() if row is None else ChunkView(row[0]).rows()
                merged, inserted, corrected = merge(existing, part)
                result += UpsertResult(inserted, corrected, len(part) - inserted - corrected)
                if inserted or corrected:
                    self._put_chunk(conn, key, start, merged)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return result

    @staticmethod
    def _put_chunk(
        conn: sqlite3.Connection, key: tuple[str, str, str], start: int, rows: CandleColumns
    ) -> None:
        if len(rows) == 0:
            conn.execute(f"DELETE FROM chunks WHERE {_SERIES} AND start = ?", (*key, start))
            return
        conn.execute(
            "INSERT INTO chunks (venue, symbol, tf, start, first, last, n, data) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (venue, symbol, tf, start) DO UPDATE SET first = excluded.first, "
            "last = excluded.last, n = excluded.n, data = excluded.data",
            (*key, start, rows.open_time_ms[0], rows.open_time_ms[-1], len(rows), encode(rows)),
        )

    @staticmethod
    def _chunks(
        conn: sqlite3.Connection,
        key: tuple[str, str, str],
        tf: Timeframe,
        start_ms: int | None,
        end_ms: int | None,
        descending: bool = False,
    ) -> Iterator[tuple[int, bytes]]:
        low = -(2**62) if start_ms is None else chunk_start(tf, start_ms)
        high = 2**62 if end_ms is None else end_ms
        order = "DESC" if descending else "ASC"
        yield from conn.execute(
            f"SELECT n, data FROM chunks WHERE {_SERIES} AND start >= ? AND start <= ? "
            f"AND last >= ? ORDER BY start {order}",
            (*key, low, high, -(2**62) if start_ms is None else start_ms),
        )

    def _range(
        self,
        conn: sqlite3.Connection,
        key: tuple[str, str, str],
        tf: Timeframe,
        start_ms: int | None,
        end_ms: int | None,
        limit: int | None,
    ) -> CandleColumns:
        parts: list[CandleColumns] = []
        have = 0
        lo_ms = -(2**62) if start_ms is None else start_ms
        hi_ms = 2**62 if end_ms is None else end_ms
        for _, blob in self._chunks(conn, key, tf, start_ms, end_ms):
            view = ChunkView(blob)
            lo, hi = view.index_range(lo_ms, hi_ms)
            if limit is not None:
                hi = min(hi, lo + limit - have)
            parts.append(view.rows(lo, hi))
            have += len(parts[-1])
            if limit is not None and have >= limit:
                break
        return concat(parts)

    def _latest(self, conn: sqlite3.Connection, key: tuple[str, str, str], n: int) -> CandleColumns:
        parts: list[CandleColumns] = []
        have = 0
        rows = conn.execute(f"SELECT n, data FROM chunks WHERE {_SERIES} ORDER BY start DESC", key)
        for count, blob in rows:
            if have >= n:
                break
            take = min(count, n - have)
            parts.append(ChunkView(blob).rows(count - take, count))
            have += take
        return concat(parts[::-1])

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
        for n, blob in self._chunks(conn, key, tf, start_ms, end_ms):
            view = ChunkView(blob)
            opens = view.open_times()
            if opens[0] >= lo_ms and opens[-1] <= hi_ms:
                total += n
            else:
                lo, hi = view.index_range(lo_ms, hi_ms)
                total += hi - lo
        return total

    def _delete(
        self,
        conn: sqlite3.Connection,
        key: tuple[str, str, str],
        tf: Timeframe,
        start_ms: int,
        end_ms: int,
    ) -> int:
        gone = 0
        conn.execute("BEGIN IMMEDIATE")
        try:
            chunks = list(
                conn.execute(
                    f"SELECT start, data FROM chunks WHERE {_SERIES} AND start >= ? "
                    "AND start <= ? AND last >= ?",
                    (*key, chunk_start(tf, start_ms), end_ms, start_ms),
                )
            )
            for start, blob in chunks:
                rows = ChunkView(blob).rows()
                keep = [i for i, t in enumerate(rows.open_time_ms) if not start_ms <= t <= end_ms]
                gone += len(rows) - len(keep)
                if len(keep) < len(rows):
                    self._put_chunk(conn, key, start, _pick(rows, keep))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return gone


def _close(conn: sqlite3.Connection) -> None:
    conn.close()


def _pick(rows: CandleColumns, keep: list[int]) -> CandleColumns:
    return columns_from([rows.candle(i) for i in keep]) if keep else empty_columns()
