"""The SQL of the SQLite engine: schema, connection settings and every statement, as
plain functions over a connection, run on `SqliteStore`'s threads (never the loop).

Layout: table `chunks`, one row per chunk of `storage.chunks` (a UTC day of 1m, ...)
under a unique key (venue, symbol, tf, start), so every upsert is idempotent and a
500-candle read is one or two index lookups plus a C-level unpack. It is a rowid table
on purpose: SQLite fetches a ~128 KiB blob from a rowid table in ~8 µs, from a WITHOUT
ROWID one (an index b-tree, meant for rows under ~1/20 of a page) in ~45 µs. Table
`ledgers` holds each series' coverage ledger blob.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from candlevault.domain.columns import CandleColumns
from candlevault.domain.errors import StorageError
from candlevault.domain.timeframes import Timeframe
from candlevault.storage.chunk_cache import ChunkChange, ChunkMeta
from candlevault.storage.chunks import ChunkPart, chunk_start, concat, merge_chunk, packed_chunk
from candlevault.storage.codec import ChunkView
from candlevault.storage.ports import UpsertResult

Key = tuple[str, str, str]  # venue, symbol, timeframe code
SCHEMA = """
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
MIGRATE_WITHOUT_ROWID = (
    """
ALTER TABLE chunks RENAME TO chunks_without_rowid;
"""
    + SCHEMA.split("CREATE TABLE IF NOT EXISTS ledgers")[0]
    + """
INSERT INTO chunks (venue, symbol, tf, start, first, last, n, data)
    SELECT venue, symbol, tf, start, first, last, n, data FROM chunks_without_rowid;
DROP TABLE chunks_without_rowid;
"""
)
SERIES = "venue = ? AND symbol = ? AND tf = ?"
MMAP_BYTES = 1 << 34  # address space only: pages come and go with the OS page cache


def connect(path: Path, readonly: bool) -> sqlite3.Connection:
    """Open a connection with the engine's settings (the writer's: WAL and its tuning)."""
    uri = f"file:{path}?mode={'ro' if readonly else 'rwc'}"
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


def create(conn: sqlite3.Connection) -> None:
    """Create the tables, moving a file of the first layout over first."""
    row = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'chunks'").fetchone()
    if row is not None and "WITHOUT ROWID" in row[0].upper():
        conn.executescript(f"BEGIN IMMEDIATE; {MIGRATE_WITHOUT_ROWID} COMMIT;")
    conn.executescript(SCHEMA)


def upsert(
    conn: sqlite3.Connection,
    key: Key,
    parts: list[ChunkPart],
    changes: list[ChunkChange],
) -> UpsertResult:
    """Merge `parts` into their chunks (inside the caller's transaction)."""
    result = UpsertResult()
    for part in parts:
        start = part.start
        row = conn.execute(
            f"SELECT data FROM chunks WHERE {SERIES} AND start = ?", (*key, start)
        ).fetchone()
        done = merge_chunk(None if row is None else row[0], part)
        unchanged = len(part) - done.inserted - done.corrected
        result += UpsertResult(done.inserted, done.corrected, unchanged)
        if done.blob is not None:
            meta = ChunkMeta(start, done.first, done.last, done.n)
            changes.append(put_chunk(conn, key, meta, done.blob))
    return result


def put_ledger(conn: sqlite3.Connection, venue: str, symbol: str, ledger: bytes) -> None:
    """Store a series' coverage ledger blob."""
    conn.execute(
        "INSERT INTO ledgers VALUES (?, ?, ?) ON CONFLICT (venue, symbol) "
        "DO UPDATE SET data = excluded.data",
        (venue, symbol, ledger),
    )


def put_chunk(conn: sqlite3.Connection, key: Key, meta: ChunkMeta, blob: bytes) -> ChunkChange:
    """Insert or replace one chunk; return the change for the cache."""
    conn.execute(
        "INSERT INTO chunks (venue, symbol, tf, start, first, last, n, data) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (venue, symbol, tf, start) DO UPDATE SET first = excluded.first, "
        "last = excluded.last, n = excluded.n, data = excluded.data",
        (*key, meta.start, meta.first, meta.last, meta.n, blob),
    )
    return ChunkChange(key, meta.start, meta, blob)


def drop_chunk(conn: sqlite3.Connection, key: Key, start: int) -> ChunkChange:
    """Remove one chunk; return the change for the cache."""
    conn.execute(f"DELETE FROM chunks WHERE {SERIES} AND start = ?", (*key, start))
    return ChunkChange(key, start, None, None)


def chunk_rows(
    conn: sqlite3.Connection,
    key: Key,
    tf: Timeframe,
    start_ms: int | None,
    end_ms: int | None,
) -> Iterator[tuple[int, int, int, int]]:
    """Yield (id, first, last, n) of the chunks that may hold candles opening in
    [start_ms, end_ms], ascending. Metadata only: a blob is read (`read_chunk`) only
    when needed, never one ahead (sqlite3 cursors step one row ahead of the
    caller, and a blob is ~128 KiB)."""
    low = -(2**62) if start_ms is None else chunk_start(tf, start_ms)
    high = 2**62 if end_ms is None else end_ms
    yield from conn.execute(
        f"SELECT id, first, last, n FROM chunks WHERE {SERIES} AND start >= ? "
        "AND start <= ? AND last >= ? ORDER BY start",
        (*key, low, high, -(2**62) if start_ms is None else start_ms),
    )


def read_chunk(conn: sqlite3.Connection, chunk_id: int) -> ChunkView:
    """Read one chunk by rowid."""
    (data,) = conn.execute("SELECT data FROM chunks WHERE id = ?", (chunk_id,)).fetchone()
    return ChunkView(data)


def chunk_views(
    conn: sqlite3.Connection,
    key: Key,
    tf: Timeframe,
    lo_ms: int,
    hi_ms: int,
) -> Iterator[ChunkView]:
    """The chunks of [lo_ms, hi_ms], ascending, each read only when asked for."""
    for chunk_id, *_ in chunk_rows(conn, key, tf, lo_ms, hi_ms):
        yield read_chunk(conn, chunk_id)


def newest_views(conn: sqlite3.Connection, key: Key) -> Iterator[ChunkView]:
    """The series' chunks, newest first, each read only when asked for."""
    query = f"SELECT id FROM chunks WHERE {SERIES} ORDER BY start DESC"
    for (chunk_id,) in conn.execute(query, key):
        yield read_chunk(conn, chunk_id)


def count(
    conn: sqlite3.Connection,
    key: Key,
    tf: Timeframe,
    start_ms: int | None,
    end_ms: int | None,
) -> int:
    """Count the candles opening in [start_ms, end_ms]: whole chunks by their metadata."""
    lo_ms = -(2**62) if start_ms is None else start_ms
    hi_ms = 2**62 if end_ms is None else end_ms
    total = 0
    for chunk_id, first, last, n in chunk_rows(conn, key, tf, start_ms, end_ms):
        if first >= lo_ms and last <= hi_ms:
            total += n
        else:
            lo, hi = read_chunk(conn, chunk_id).index_range(lo_ms, hi_ms)
            total += hi - lo
    return total


def delete(
    conn: sqlite3.Connection,
    key: Key,
    tf: Timeframe,
    start_ms: int,
    end_ms: int,
    changes: list[ChunkChange],
) -> int:
    """Delete the candles opening in [start_ms, end_ms] (inside the caller's transaction);
    return how many went."""
    gone = 0
    stored = list(
        conn.execute(
            f"SELECT start, data FROM chunks WHERE {SERIES} AND start >= ? "
            "AND start <= ? AND last >= ?",
            (*key, chunk_start(tf, start_ms), end_ms, start_ms),
        )
    )
    for start, data in stored:
        view = ChunkView(data)
        first, last = view.index_range(start_ms, end_ms)
        gone += last - first
        if first == last:
            continue
        keep = view.rows(0, first)
        keep.extend(view.rows(last))
        if len(keep) == 0:
            changes.append(drop_chunk(conn, key, start))
        else:
            done = packed_chunk(keep)
            assert done.blob is not None
            meta = ChunkMeta(start, done.first, done.last, done.n)
            changes.append(put_chunk(conn, key, meta, done.blob))
    return gone


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """One write transaction, taken up front (no upgrade from a read lock to fail)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def load_directory(conn: sqlite3.Connection, key: Key) -> list[ChunkMeta]:
    rows = conn.execute(f"SELECT start, first, last, n FROM chunks WHERE {SERIES}", key)
    return [ChunkMeta(*row) for row in rows]


def take_range(
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


def take_latest(views: Iterable[ChunkView], n: int) -> CandleColumns:
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


def load_blobs(conn: sqlite3.Connection, key: Key, starts: list[int]) -> list[bytes]:
    query = f"SELECT data FROM chunks WHERE {SERIES} AND start = ?"
    out = []
    for start in starts:
        row = conn.execute(query, (*key, start)).fetchone()
        if row is None:  # removed by a write the caller's directory had not seen yet
            raise StorageError(f"chunk {start} of {'/'.join(key)} vanished during a read")
        out.append(row[0])
    return out
