"""The writer's memory of its own store: which chunks each series has, and recent chunks.

A read that goes to a SQLite thread pays two thread wake-ups, ~70 µs on this machine,
more than the read itself (a warm 500-candle read is ~60 µs of unpacking). The process
that holds a data dir's writer lock is the only one that changes the file, so it can
keep, on the event loop, an exact directory of every series' chunks (start, first and
last open time, rows) and a bounded LRU of recently read chunk blobs, and
answer most reads without leaving the loop: no I/O, only unpacking in memory.

Exact because every committed write reports the chunks it replaced or removed, and
`apply` takes them in on the loop when the write returns. A read that went to a thread
may come back after a write it did not see; each series has a generation that every
applied write bumps, and what such a read brings back is cached only if the
generation has not moved since it started.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Iterable

import msgspec

from candlevault.storage.codec import ChunkView

SeriesKey = tuple[str, str, str]  # venue, symbol, timeframe code


class ChunkMeta(msgspec.Struct, frozen=True):
    """One chunk's place in its series: key, first and last open time, rows."""

    start: int
    first: int
    last: int
    n: int

    def rows_from(self, open_ms: int) -> int:
        """How many candles open at or after `open_ms`: exact when the chunk's open
        times are evenly spaced (a whole day, or a run with no hole), else 0 (unknown,
        so a reader takes the next chunk too)."""
        if open_ms <= self.first:
            return self.n
        if open_ms > self.last:
            return 0
        if (self.last - self.first) % (self.n - 1):
            return 0
        step = (self.last - self.first) // (self.n - 1)
        return self.n - -(-(open_ms - self.first) // step)


class ChunkChange(msgspec.Struct, frozen=True):
    """A committed write of one chunk: its new content, or None when it was removed."""

    series: SeriesKey
    start: int
    meta: ChunkMeta | None
    blob: bytes | None


class Directory:
    """The chunks of one series, ascending by start."""

    __slots__ = ("chunks", "starts")

    def __init__(self, chunks: Iterable[ChunkMeta]) -> None:
        self.chunks = sorted(chunks, key=lambda c: c.start)
        self.starts = [c.start for c in self.chunks]

    def window(
        self, low_start: int, high_start: int, first_open: int, rows: int | None = None
    ) -> list[ChunkMeta]:
        """Chunks keyed in [low_start, high_start] whose last candle opens at or after
        `first_open`, ascending; with `rows`, only as many as can be needed to read
        that many candles (the first chunk holds `rows_from(first_open)` of them),
        found by walking the directory from the window's start, not by scanning the
        whole history: a read that one chunk answers fetches one blob, not two."""
        i = bisect_left(self.starts, low_start)
        end = bisect_right(self.starts, high_start)
        out: list[ChunkMeta] = []
        have = 0
        while i < end and (rows is None or have < rows):
            chunk = self.chunks[i]
            i += 1
            if chunk.last < first_open:
                continue
            have += chunk.n if out else chunk.rows_from(first_open)
            out.append(chunk)
        return out

    def tail(self, rows: int) -> list[ChunkMeta]:
        """The fewest newest chunks holding `rows` candles (all if fewer), ascending."""
        i = len(self.chunks)
        have = 0
        while i > 0 and have < rows:
            i -= 1
            have += self.chunks[i].n
        return self.chunks[i:]

    def put(self, meta: ChunkMeta | None, start: int) -> None:
        """Record that the chunk at `start` now is `meta` (None: it is gone)."""
        i = bisect_left(self.starts, start)
        here = i < len(self.starts) and self.starts[i] == start
        if meta is None:
            if here:
                del self.starts[i], self.chunks[i]
        elif here:
            self.chunks[i] = meta
        else:
            self.starts.insert(i, start)
            self.chunks.insert(i, meta)


class ChunkCache:
    """Directories of every series read so far and an LRU of chunk blobs, loop-owned."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._blobs: OrderedDict[tuple[SeriesKey, int], ChunkView] = OrderedDict()
        self._size = 0
        self._directories: dict[SeriesKey, Directory] = {}
        self._generations: dict[SeriesKey, int] = {}

    def generation(self, series: SeriesKey) -> int:
        """The series' write generation: compare before and after a threaded read."""
        return self._generations.get(series, 0)

    def directory(self, series: SeriesKey) -> Directory | None:
        """The series' chunk directory, if loaded."""
        return self._directories.get(series)

    def set_directory(self, series: SeriesKey, chunks: list[ChunkMeta], generation: int) -> None:
        """Keep a directory loaded by a read that started at `generation`."""
        if generation == self.generation(series):
            self._directories[series] = Directory(chunks)

    def blob(self, series: SeriesKey, start: int) -> ChunkView | None:
        """A cached chunk, marked as recently used."""
        view = self._blobs.get((series, start))
        if view is not None:
            self._blobs.move_to_end((series, start))
        return view

    def fill(self, series: SeriesKey, start: int, view: ChunkView, generation: int) -> None:
        """Cache a chunk read from the file, unless a write came since `generation`."""
        if generation == self.generation(series):
            self._keep((series, start), view, view.size)

    def apply(self, changes: Iterable[ChunkChange]) -> None:
        """Take in committed writes: directories and blobs follow, generations move.

        Write-around: a written chunk replaces its cached copy, and the newest chunk of
        a series (what `latest` reads) is cached; other written chunks are not, so a
        bootstrap writing years of history does not evict what readers are using."""
        for change in changes:
            series = change.series
            self._generations[series] = self.generation(series) + 1
            directory = self._directories.get(series)
            if directory is not None:
                directory.put(change.meta, change.start)
            key = (series, change.start)
            cached = self._drop(key)
            newest = directory is not None and directory.starts[-1:] == [change.start]
            if change.blob is not None and (cached or newest):
                self._keep(key, ChunkView(change.blob), len(change.blob))

    def _keep(self, key: tuple[SeriesKey, int], view: ChunkView, size: int) -> None:
        if size > self.max_bytes:
            return
        self._drop(key)
        self._blobs[key] = view
        self._size += size
        while self._size > self.max_bytes:
            _, old = self._blobs.popitem(last=False)
            self._size -= old.size

    def _drop(self, key: tuple[SeriesKey, int]) -> bool:
        view = self._blobs.pop(key, None)
        if view is not None:
            self._size -= view.size
        return view is not None
