"""The MongoDB warm store: one document per packed chunk (the bucket pattern), unique by key.

Layout (every name MongoDB sees is here and nowhere else, so that sharding on venue +
symbol + time later is a change of engine, not of callers):
- ``chunks``: ``{venue, symbol, tf, start, first, last, n, rev, data}`` per chunk of
  `storage/chunks.py` (a UTC day of 1m, ...; 3d/1w/1M: the whole history). ``start`` is
  the chunk key, ``first``/``last`` the open times of its first and last candle (all
  int64), ``n`` its rows, ``data`` the `chunks.encode` blob (BSON Binary) that SQLite
  stores too, ``rev`` a revision every rewrite increments. UNIQUE index (venue, symbol,
  tf, start): every query here is a range scan of it, and a unique index may stay unique
  on a sharded cluster when the shard key is its prefix.
- ``ledgers``: ``{venue, symbol, data}``, the coverage ledger blob, UNIQUE (venue, symbol).

Why: MongoDB's answer for this shape of data is the bucket pattern, one document per
series and time span rather than per measurement, for a smaller index and fewer
documents read (https://www.mongodb.com/blog/post/building-with-patterns-the-bucket-pattern);
with the packed codec a 500-candle read is one index seek and C-level slicing of one or
two blobs. Not a time-series collection, which buckets the same way internally: it cannot
carry a unique index ("time-series collections do not support unique indexes",
https://jira.mongodb.org/browse/SERVER-83370; manual, "Time Series Collection
Limitations"), so a retried batch would store candles twice. Not a collection per
timeframe: ``tf`` is a key field, so one index and one layout serve all fifteen.

How duplicates are prevented: the unique index allows one chunk per key whoever writes,
and writes are ``ReplaceOne(filter, doc, upsert=True)`` on that key (with a unique index
on the filter's fields, concurrent upserts insert once and the others update or fail with
E11000 duplicate key: manual, updateOne, "Upsert with Duplicate Values"). Inside a chunk
`chunks.merge` keys rows by open time: the same candle twice is one row, a changed one a
counted correction. No lost updates: the replace filter carries the ``rev`` that was
read, so if another writer replaced the chunk meanwhile nothing matches, the upsert's
insert hits the unique index (E11000; the server retries that itself only when the filter
is exactly the index key's equality fields, SERVER-37124) and that chunk alone is read
and merged again. ARCHITECTURE.md plans one writer per symbol; a second one is harmless.

An upsert is ONE ``find`` (``$in`` on the touched keys, projecting start+rev+data) and
ONE unordered ``bulk_write`` of the changed chunks (pymongo, "Bulk Write Operations").
Reads project to exactly the fields they use. ``AsyncMongoClient`` is pymongo's native
asyncio client (https://pymongo.readthedocs.io/en/stable/api/pymongo/asynchronous/); its
constructor does no I/O, so `MongoStore.open` first reaches the server when it creates
the indexes. Server selection waits 30 s by default; 5 s here, so a dead server is a
`StorageError` soon. A full chunk (~130 kB) is far below the 16 MB document limit.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any, TypeAlias

from bson.binary import Binary
from bson.int64 import Int64
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, DeleteOne, ReplaceOne
from pymongo.errors import BulkWriteError, PyMongoError

from candlevault.domain.columns import CandleColumns, empty_columns
from candlevault.domain.errors import StorageError
from candlevault.domain.timeframes import Timeframe
from candlevault.domain.venues import Venue
from candlevault.storage.chunks import (
    ChunkPart,
    ChunkWrite,
    chunk_start,
    concat,
    merge_chunk,
    packed_chunk,
    split_by_chunk,
)
from candlevault.storage.codec import ChunkView
from candlevault.storage.ports import UpsertResult

Doc = dict[str, Any]

DEFAULT_DATABASE = "candlevault"
CHUNKS = "chunks"
LEDGERS = "ledgers"
CHUNK_KEY = [("venue", ASCENDING), ("symbol", ASCENDING), ("tf", ASCENDING), ("start", ASCENDING)]
LEDGER_KEY = [("venue", ASCENDING), ("symbol", ASCENDING)]
DUPLICATE_KEY = 11000  # MongoDB's E11000
TIMEOUT_MS = 5000
ATTEMPTS = 5  # rounds of re-merging chunks another writer replaced meanwhile
ROWS_PER_CHUNK = 1440  # a full chunk: sizes the cursor batches of limited reads
_MIN, _MAX = -(2**63), 2**63 - 1
_DATA = {"start": 1, "data": 1, "_id": 0}
_META = {"start": 1, "first": 1, "last": 1, "n": 1, "rev": 1, "_id": 0}

_WriteOp: TypeAlias = ReplaceOne[Doc] | DeleteOne


@contextlib.contextmanager
def _storage_errors(what: str) -> Iterator[None]:
    """Turn pymongo's errors into `StorageError`, chained."""
    try:
        yield
    except PyMongoError as e:
        raise StorageError(f"MongoDB: {what} failed: {e}") from e


def _series(venue: Venue, symbol: str, tf: Timeframe) -> Doc:
    return {"venue": venue.value, "symbol": symbol, "tf": tf.code}


def _key(series: Doc, start: int, rev: int) -> Doc:
    """Return the filter of one chunk as it was read (revision `rev`; 0: absent)."""
    return {**series, "start": start, "rev": rev}


def _chunk_doc(series: Doc, start: int, chunk: ChunkWrite, rev: int) -> Doc:
    assert chunk.blob is not None
    return {
        **series,
        "start": Int64(start),
        "first": Int64(chunk.first),
        "last": Int64(chunk.last),
        "n": chunk.n,
        "rev": rev,
        "data": Binary(chunk.blob),
    }


def _window(series: Doc, tf: Timeframe, lo: int | None, hi: int | None) -> Doc:
    """Return the filter of the chunks that may hold candles opening in [lo, hi]."""
    flt = dict(series)
    start: Doc = {}
    if lo is not None:
        start["$gte"] = chunk_start(tf, lo)
        flt["last"] = {"$gte": lo}
    if hi is not None:
        start["$lte"] = hi
        flt["first"] = {"$lte": hi}
    if start:
        flt["start"] = start
    return flt


def _edge_terms(lo: int | None, hi: int | None) -> list[Doc]:
    """Return the conditions under which a chunk of the window is only partly inside."""
    terms: list[Doc] = []
    if lo is not None:
        terms.append({"first": {"$lt": lo}})
    if hi is not None:
        terms.append({"last": {"$gt": hi}})
    return terms


def _view(doc: Doc) -> ChunkView:
    return ChunkView(bytes(doc["data"]))


class MongoStore:
    """`CandleStore` on MongoDB: packed chunks keyed uniquely by (venue, symbol, tf, start)."""

    def __init__(self, client: AsyncMongoClient[Doc], database: str | None = None) -> None:
        self._client = client
        db = (
            client.get_database(database)
            if database
            else client.get_default_database(DEFAULT_DATABASE)
        )
        self._chunks = db[CHUNKS]
        self._ledgers = db[LEDGERS]

    @classmethod
    async def open(
        cls, url: str, *, database: str | None = None, timeout_ms: int = TIMEOUT_MS
    ) -> MongoStore:
        """Connect to `url` (database: `database`, else the URL's path, else "candlevault")."""
        with _storage_errors("opening the store"):
            client: AsyncMongoClient[Doc] = AsyncMongoClient(
                url,
                tz_aware=False,
                serverSelectionTimeoutMS=timeout_ms,
                connectTimeoutMS=timeout_ms,
                appname="candlevault",
            )
            try:
                store = cls(client, database)
                await store.start()
            except BaseException:
                await client.close()
                raise
        return store

    async def start(self) -> None:
        """Create the unique indexes (idempotent: an existing identical index is kept)."""
        with _storage_errors("creating indexes"):
            await self._chunks.create_index(CHUNK_KEY, unique=True, name="series_start")
            await self._ledgers.create_index(LEDGER_KEY, unique=True, name="venue_symbol")

    async def aclose(self) -> None:
        """Close the client and its connections."""
        await self._client.close()

    async def upsert(
        self, venue: Venue, symbol: str, tf: Timeframe, candles: CandleColumns
    ) -> UpsertResult:
        """Insert or replace candles by open time; the same candle twice is one row."""
        series = _series(venue, symbol, tf)
        parts = split_by_chunk(tf, candles)
        result = UpsertResult()
        with _storage_errors(f"upsert into {venue}/{symbol}/{tf}"):
            for _ in range(ATTEMPTS):
                if not parts:
                    return result
                done, conflicts = await self._merge_write(series, parts)
                result += done
                parts = [part for part in parts if part.start in conflicts]
        raise StorageError(
            f"upsert into {venue}/{symbol}/{tf}: chunks {[p.start for p in parts]} kept changing "
            f"under concurrent writers ({ATTEMPTS} attempts)"
        )

    async def write(
        self,
        venue: Venue,
        symbol: str,
        batches: Sequence[tuple[Timeframe, CandleColumns]],
        ledger: bytes | None = None,
    ) -> list[UpsertResult]:
        """Upsert the batches in order, then store the ledger. Without a replica set
        there are no multi-document transactions, so the order is the guarantee: the
        ledger, written last, never claims candles that a crash kept from the store."""
        results = [await self.upsert(venue, symbol, tf, candles) for tf, candles in batches]
        if ledger is not None:
            await self.save_ledger(venue, symbol, ledger)
        return results

    async def _merge_write(
        self, series: Doc, parts: list[ChunkPart]
    ) -> tuple[UpsertResult, set[int]]:
        """Merge `parts` into their stored chunks and write the changed ones; return what
        was done and the chunk keys that another writer replaced meanwhile (not written)."""
        stored = await self._load(series, [part.start for part in parts])
        ops: list[_WriteOp] = []
        starts: list[int] = []
        counts: dict[int, UpsertResult] = {}
        for incoming in parts:
            start = incoming.start
            rev, blob = stored.get(start, (0, None))
            chunk = merge_chunk(blob, incoming)
            unchanged = len(incoming) - chunk.inserted - chunk.corrected
            counts[start] = UpsertResult(chunk.inserted, chunk.corrected, unchanged)
            if chunk.blob is not None:
                doc = _chunk_doc(series, start, chunk, rev + 1)
                ops.append(ReplaceOne(_key(series, start, rev), doc, upsert=True))
                starts.append(start)
        conflicts = await self._write_chunks(ops, starts)
        done = sum((c for s, c in counts.items() if s not in conflicts), UpsertResult())
        return done, conflicts

    async def _load(self, series: Doc, starts: list[int]) -> dict[int, tuple[int, bytes]]:
        """Return the stored chunks among `starts`: key -> (revision, packed chunk)."""
        flt = {**series, "start": {"$in": starts}}
        out: dict[int, tuple[int, bytes]] = {}
        async with self._chunks.find(flt, projection={**_DATA, "rev": 1}) as cursor:
            async for doc in cursor:
                out[int(doc["start"])] = (int(doc["rev"]), bytes(doc["data"]))
        return out

    async def _write_chunks(self, ops: list[_WriteOp], starts: list[int]) -> set[int]:
        """Run `ops` unordered; return the keys of those that lost a race (E11000)."""
        if not ops:
            return set()
        try:
            await self._chunks.bulk_write(ops, ordered=False)
        except BulkWriteError as e:
            errors = e.details.get("writeErrors", [])
            if e.details.get("writeConcernErrors") or any(
                err.get("code") != DUPLICATE_KEY for err in errors
            ):
                raise
            return {starts[err["index"]] for err in errors}
        return set()

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
        if limit is not None and limit <= 0:
            return empty_columns()
        lo = _MIN if start_ms is None else start_ms
        hi = _MAX if end_ms is None else end_ms
        flt = _window(_series(venue, symbol, tf), tf, start_ms, end_ms)
        batch = 0 if limit is None else limit // ROWS_PER_CHUNK + 2
        parts: list[CandleColumns] = []
        left = _MAX if limit is None else limit
        with _storage_errors(f"read of {venue}/{symbol}/{tf}"):
            cursor = self._chunks.find(
                flt, projection=_DATA, sort=[("start", ASCENDING)], batch_size=batch
            )
            async with cursor:
                async for doc in cursor:
                    view = _view(doc)
                    first, last = view.index_range(lo, hi)
                    last = min(last, first + left)
                    if last > first:
                        parts.append(view.rows(first, last))
                        left -= last - first
                    if left == 0:
                        break
        return concat(parts)

    async def latest(self, venue: Venue, symbol: str, tf: Timeframe, n: int) -> CandleColumns:
        """Return the newest `n` candles, ascending."""
        if n <= 0:
            return empty_columns()
        parts: list[CandleColumns] = []
        left = n
        with _storage_errors(f"latest of {venue}/{symbol}/{tf}"):
            cursor = self._chunks.find(
                _series(venue, symbol, tf),
                projection=_DATA,
                sort=[("start", DESCENDING)],
                batch_size=n // ROWS_PER_CHUNK + 2,
            )
            async with cursor:
                async for doc in cursor:
                    view = _view(doc)
                    take = min(left, view.count)
                    parts.append(view.rows(view.count - take, view.count))
                    left -= take
                    if left == 0:
                        break
        return concat(parts[::-1])

    async def bounds(self, venue: Venue, symbol: str, tf: Timeframe) -> tuple[int, int] | None:
        """Return the first and last open time stored (None: nothing stored)."""
        series = _series(venue, symbol, tf)
        with _storage_errors(f"bounds of {venue}/{symbol}/{tf}"):
            head = await self._chunks.find_one(
                series, projection={"first": 1, "_id": 0}, sort=[("start", ASCENDING)]
            )
            tail = await self._chunks.find_one(
                series, projection={"last": 1, "_id": 0}, sort=[("start", DESCENDING)]
            )
        if head is None or tail is None:
            return None
        return int(head["first"]), int(tail["last"])

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
        if start_ms is not None and end_ms is not None and end_ms < start_ms:
            return 0
        window = _window(_series(venue, symbol, tf), tf, start_ms, end_ms)
        edges = _edge_terms(start_ms, end_ms)
        inside = {**window, "$nor": edges} if edges else window
        lo = _MIN if start_ms is None else start_ms
        hi = _MAX if end_ms is None else end_ms
        total = 0
        with _storage_errors(f"count of {venue}/{symbol}/{tf}"):
            group = {"$group": {"_id": None, "n": {"$sum": "$n"}}}
            async with await self._chunks.aggregate([{"$match": inside}, group]) as cursor:
                async for doc in cursor:
                    total += int(doc["n"])
            if edges:
                flt = {**window, "$or": edges}
                async with self._chunks.find(flt, projection=_DATA) as cursor:
                    async for doc in cursor:
                        first, last = _view(doc).index_range(lo, hi)
                        total += last - first
        return total

    async def delete(
        self, venue: Venue, symbol: str, tf: Timeframe, start_ms: int, end_ms: int
    ) -> int:
        """Delete the candles opening in [start_ms, end_ms]; return how many went.

        Chunks wholly inside go; the (at most two) edge chunks are rewritten without the
        window's rows. Every op is guarded by the revision read, so a concurrent write is
        never undone: if one intervened, a `StorageError` says so and repeating the delete
        finishes it."""
        if end_ms < start_ms:
            return 0
        series = _series(venue, symbol, tf)
        with _storage_errors(f"delete from {venue}/{symbol}/{tf}"):
            ops, deleted = await self._delete_ops(series, tf, start_ms, end_ms)
            if not ops:
                return 0
            result = await self._chunks.bulk_write(ops, ordered=False)
        if result.deleted_count + result.matched_count != len(ops):
            raise StorageError(
                f"delete from {venue}/{symbol}/{tf}: a concurrent write changed chunks in "
                f"[{start_ms}, {end_ms}] and the delete is partial; repeat it"
            )
        return deleted

    async def _delete_ops(
        self, series: Doc, tf: Timeframe, start_ms: int, end_ms: int
    ) -> tuple[list[_WriteOp], int]:
        """Plan a delete: the guarded ops and the number of rows they remove."""
        ops: list[_WriteOp] = []
        deleted = 0
        edges: list[int] = []
        async with self._chunks.find(
            _window(series, tf, start_ms, end_ms), projection=_META
        ) as cursor:
            async for doc in cursor:
                if doc["first"] >= start_ms and doc["last"] <= end_ms:
                    ops.append(DeleteOne(_key(series, int(doc["start"]), int(doc["rev"]))))
                    deleted += int(doc["n"])
                else:
                    edges.append(int(doc["start"]))
        for start, (rev, blob) in (await self._load(series, edges)).items():
            view = ChunkView(blob)
            first, last = view.index_range(start_ms, end_ms)
            if last == first:
                continue
            deleted += last - first
            keep = view.rows(0, first)
            keep.extend(view.rows(last))
            if len(keep) == 0:
                ops.append(DeleteOne(_key(series, start, rev)))
            else:
                doc = _chunk_doc(series, start, packed_chunk(keep), rev + 1)
                ops.append(ReplaceOne(_key(series, start, rev), doc))
        return ops, deleted

    async def load_ledger(self, venue: Venue, symbol: str) -> bytes | None:
        """Return the stored coverage ledger of (venue, symbol), encoded by its owner."""
        with _storage_errors(f"loading the ledger of {venue}/{symbol}"):
            doc = await self._ledgers.find_one(
                {"venue": venue.value, "symbol": symbol}, projection={"data": 1, "_id": 0}
            )
        return None if doc is None else bytes(doc["data"])

    async def save_ledger(self, venue: Venue, symbol: str, ledger: bytes) -> None:
        """Store the coverage ledger of (venue, symbol), replacing the previous one."""
        key = {"venue": venue.value, "symbol": symbol}
        with _storage_errors(f"saving the ledger of {venue}/{symbol}"):
            await self._ledgers.replace_one(key, {**key, "data": Binary(ledger)}, upsert=True)
