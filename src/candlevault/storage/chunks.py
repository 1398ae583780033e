"""The stored layout of candles: packed chunks (the "bucket pattern"), decoded lazily.

One row per candle costs a Python object per candle on every read (~0.65 ms for 500
rows here) and ~300,000 inserts/s; one packed chunk per (series, span) costs a key
lookup and a few C-level array copies. A chunk holds every candle of one series whose
open time falls in its span: one UTC day of 1m (1440 candles), three days of 3m, and so
on up to ~1440 candles; 3d, 1w and 1M fit whole histories in one chunk.

Each column is packed on its own: int64 little-endian when every value fits (prices,
counts, times, most volumes), else decimal text (JSON) for the rare column that does
not: a month of BTCUSDT quote volume is past 2**63 units, and exact means exact. A
`ChunkView` parses only the header; a read unpacks just the columns and rows it needs
(`array.frombytes` of a byte slice), which is what makes a 500-candle read ~tens of µs.

Layout: b"CVK1", n (uint32), then per field of `CandleColumns` in order: a kind byte
(0 absent, 1 int64[n], 2 JSON list, 3 int8[n]) and, for kind 2, a uint32 byte length.
"""

from __future__ import annotations

import struct
import sys
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from itertools import islice
from operator import lt

import msgspec

from candlevault.domain.columns import CandleColumns, columns_from, empty_columns
from candlevault.domain.timeframes import DAY_MS, GridKind, Timeframe

MAGIC = b"CVK1"
_ABSENT, _INT64, _JSON, _INT8 = 0, 1, 2, 3
_FIELDS = CandleColumns.__struct_fields__
_FLAGS = _FIELDS.index("flags")
_HEADER = struct.Struct("<4sI")
_LENGTH = struct.Struct("<I")
_LITTLE = sys.byteorder == "little"
_json_ints = msgspec.json.Decoder(list[int])


def chunk_span_ms(tf: Timeframe) -> int | None:
    """Return the span of one chunk of `tf` (None: the whole history is one chunk)."""
    if tf.kind is not GridKind.FIXED or tf.duration_ms > DAY_MS:
        return None
    return tf.duration_ms * 1440


def chunk_start(tf: Timeframe, open_ms: int) -> int:
    """Return the key (start) of the chunk holding the candle that opens at `open_ms`."""
    span = chunk_span_ms(tf)
    return 0 if span is None else open_ms - open_ms % span


def encode(columns: CandleColumns) -> bytes:
    """Pack a batch (ascending, one chunk's worth) into bytes."""
    n = len(columns)
    parts = [_HEADER.pack(MAGIC, n)]
    for i, name in enumerate(_FIELDS):
        values: list[int] | None = getattr(columns, name)
        if values is None:
            parts.append(bytes((_ABSENT,)))
            continue
        if len(values) != n:  # a ragged batch would be read back shifted: refuse it
            raise ValueError(f"column {name} has {len(values)} values for {n} candles")
        if i == _FLAGS:
            parts.append(bytes((_INT8,)) + array("b", values).tobytes())
        else:
            try:
                packed = array("q", values)
            except OverflowError:  # past int64: exact decimal text instead
                text = msgspec.json.encode(values)
                parts.append(bytes((_JSON,)) + _LENGTH.pack(len(text)) + text)
                continue
            if not _LITTLE:
                packed.byteswap()
            parts.append(bytes((_INT64,)) + packed.tobytes())
    return b"".join(parts)


class ChunkView:
    """A packed chunk, read lazily: columns and rows are unpacked only when asked for."""

    __slots__ = ("_blob", "_columns", "count", "size")

    def __init__(self, blob: bytes) -> None:
        magic, n = _HEADER.unpack_from(blob, 0)
        if magic != MAGIC:
            raise ValueError(f"not a candle chunk (magic {magic!r})")
        self._blob = memoryview(blob)
        self.count: int = n
        self.size = len(blob)
        self._columns: list[tuple[int, int, int]] = []  # kind, offset, byte length
        offset = _HEADER.size
        for _ in _FIELDS:
            kind = blob[offset]
            offset += 1
            size = {_ABSENT: 0, _INT64: 8 * n, _INT8: n}.get(kind)
            if size is None:
                (size,) = _LENGTH.unpack_from(blob, offset)
                offset += _LENGTH.size
            self._columns.append((kind, offset, size))
            offset += size

    def open_times(self) -> array[int]:
        """Return the open times (an int64 array: supports bisect without a list)."""
        kind, offset, size = self._columns[0]
        return self._ints(kind, offset, size)  # type: ignore[return-value]

    def index_range(self, start_ms: int, end_ms: int) -> tuple[int, int]:
        """Return the row range [lo, hi) of candles opening in [start_ms, end_ms]."""
        opens = self.open_times()
        return bisect_left(opens, start_ms), bisect_right(opens, end_ms)

    def rows(self, lo: int = 0, hi: int | None = None) -> CandleColumns:
        """Unpack rows [lo, hi) into columns."""
        hi = self.count if hi is None else min(hi, self.count)
        lo = max(0, min(lo, hi))
        cols = [self._column(kind, offset, size, lo, hi) for kind, offset, size in self._columns]
        return CandleColumns(*cols)  # type: ignore[arg-type]

    def _column(self, kind: int, offset: int, size: int, lo: int, hi: int) -> list[int] | None:
        if kind == _ABSENT:
            return None
        if kind == _INT64:
            return _unpack("q", self._blob[offset + 8 * lo : offset + 8 * hi]).tolist()
        if kind == _INT8:
            return _unpack("b", self._blob[offset + lo : offset + hi]).tolist()
        return _json_ints.decode(self._blob[offset : offset + size])[lo:hi]

    def _ints(self, kind: int, offset: int, size: int) -> array[int] | list[int]:
        if kind == _JSON:
            return _json_ints.decode(self._blob[offset : offset + size])
        return _unpack("q", self._blob[offset : offset + size])


def _unpack(typecode: str, data: memoryview) -> array[int]:
    """Return the little-endian values packed in `data` (a C-level copy)."""
    values = array(typecode)
    values.frombytes(data)
    if not _LITTLE and typecode == "q":
        values.byteswap()
    return values


def merge(existing: CandleColumns, incoming: CandleColumns) -> tuple[CandleColumns, int, int]:
    """Merge `incoming` into `existing` (both strictly ascending) by open time: new rows
    are added, rows with the same open time replaced. Return (merged, inserted,
    corrected) where `corrected` counts replaced rows whose content changed; identical
    rows are not counted.

    Only the rows whose open times interleave are compared one by one (as row tuples);
    what lies before or after `incoming` is copied as list slices, so appending a day
    to a chunk costs list copies, not a Python step per stored candle."""
    if len(existing) == 0 or len(incoming) == 0:
        return (incoming if len(existing) == 0 else existing), len(incoming), 0
    old_opens = existing.open_time_ms
    new_opens = incoming.open_time_ms
    lo = bisect_left(old_opens, new_opens[0])
    hi = bisect_right(old_opens, new_opens[-1])
    old = {old_opens[k]: row for k, row in zip(range(lo, hi), _rows(existing, lo, hi), strict=True)}
    corrected = 0
    for t, row in zip(new_opens, _rows(incoming, 0, len(incoming)), strict=True):
        before = old.pop(t, None)
        corrected += before is not None and before != row
    replaced = (hi - lo) - len(old)
    if old:  # stored rows between incoming ones that incoming does not name: keep them
        middle = _from_rows(sorted([*old.items(), *zip(new_opens, _rows(incoming), strict=True)]))
    else:
        middle = incoming
    merged = concat([existing.slice(0, lo), middle, existing.slice(hi, len(existing))])
    return merged, len(incoming) - replaced, corrected


class ChunkWrite(msgspec.Struct, frozen=True):
    """The outcome of merging candles into one stored chunk."""

    blob: bytes | None  # the chunk to store; None: the rows were all there already
    first: int
    last: int
    n: int
    inserted: int
    corrected: int


def merge_chunk(stored: bytes | None, incoming: CandleColumns) -> ChunkWrite:
    """Merge `incoming` (ascending, non-empty, one chunk's worth) into a stored chunk.

    The write path's common case, new candles after the stored ones (maybe replacing
    the last few: a derived bucket completed by the next batch), is spliced: only the
    replaced tail is unpacked and compared, only `incoming` is packed, and each column
    is the stored column's bytes up to the tail followed by the new ones. Appending a
    day to a 1d chunk of years then costs microseconds, not unpacking and repacking
    the years. Anything else goes through `merge`."""
    if stored is None:
        return _whole(encode(incoming), incoming, len(incoming), 0)
    view = ChunkView(stored)
    opens = view.open_times()
    new_opens = incoming.open_time_ms
    keep = bisect_left(opens, new_opens[0])
    tail = view.rows(keep)
    spliced = None
    if set(tail.open_time_ms) <= set(new_opens):  # incoming replaces all it overlaps
        spliced = _splice(view, keep, encode(incoming))
    if spliced is None:
        merged, inserted, corrected = merge(view.rows(), incoming)
        return _whole(
            encode(merged) if inserted or corrected else None, merged, inserted, corrected
        )
    _, inserted, corrected = merge(tail, incoming)
    if not (inserted or corrected):
        spliced = None
    first = opens[0] if keep else new_opens[0]
    return ChunkWrite(spliced, first, new_opens[-1], keep + len(incoming), inserted, corrected)


def packed_chunk(rows: CandleColumns) -> ChunkWrite:
    """Pack `rows` (ascending, non-empty) as a whole chunk to store."""
    return _whole(encode(rows), rows, 0, 0)


def _whole(blob: bytes | None, rows: CandleColumns, inserted: int, corrected: int) -> ChunkWrite:
    opens = rows.open_time_ms
    return ChunkWrite(blob, opens[0], opens[-1], len(rows), inserted, corrected)


def _splice(view: ChunkView, keep: int, tail: bytes) -> bytes | None:
    """Return the chunk made of `view`'s first `keep` rows and the packed `tail`, or
    None when a column's packing differs between them (absent on one side, or decimal
    text), which only the slow path can join."""
    new = ChunkView(tail)
    parts: list[bytes | memoryview] = [_HEADER.pack(MAGIC, keep + new.count)]
    for (kind, offset, _), (new_kind, new_offset, new_size) in zip(
        view._columns, new._columns, strict=True
    ):
        if kind != new_kind or kind == _JSON:
            return None
        width = {_ABSENT: 0, _INT64: 8, _INT8: 1}[kind]
        parts.append(bytes((kind,)))
        parts.append(view._blob[offset : offset + width * keep])
        parts.append(new._blob[new_offset : new_offset + new_size])
    return b"".join(parts)


def _rows(columns: CandleColumns, lo: int = 0, hi: int | None = None) -> list[tuple[object, ...]]:
    """Return rows [lo, hi) as tuples of every field (None where a column is absent)."""
    hi = len(columns) if hi is None else hi
    n = hi - lo
    cols = [[None] * n if c is None else c[lo:hi] for c in _all_columns(columns)]
    return list(zip(*cols, strict=True))


def _from_rows(keyed: list[tuple[int, tuple[object, ...]]]) -> CandleColumns:
    """Build columns from (open time, row tuple) pairs, ascending; a column with a None
    anywhere becomes absent."""
    cols = [list(c) for c in zip(*(row for _, row in keyed), strict=True)]
    return CandleColumns(*(None if None in c else c for c in cols))  # type: ignore[arg-type]


def _all_columns(columns: CandleColumns) -> list[list[int] | None]:
    return [getattr(columns, name) for name in _FIELDS]


def ascending(columns: CandleColumns) -> CandleColumns:
    """Return the batch in strictly ascending open time; a repeated open time keeps the
    last row given (the newest word on that candle)."""
    opens = columns.open_time_ms
    if all(map(lt, opens, islice(opens, 1, None))):
        return columns
    last = {t: i for i, t in enumerate(opens)}
    rows = [columns.candle(last[t]) for t in sorted(last)]
    merged = columns_from(rows)
    if columns.trades is None:
        merged.trades = merged.taker_buy_base = merged.taker_buy_quote = None
    return merged


def split_by_chunk(tf: Timeframe, candles: CandleColumns) -> dict[int, CandleColumns]:
    """Group a batch by chunk key, ascending, one row per open time (the last given)."""
    batch = ascending(candles)
    opens = batch.open_time_ms
    span = chunk_span_ms(tf)
    parts: dict[int, CandleColumns] = {}
    lo = 0
    while lo < len(opens):
        start = chunk_start(tf, opens[lo])
        hi = len(opens) if span is None else bisect_left(opens, start + span, lo)
        parts[start] = batch.slice(lo, hi)
        lo = hi
    return parts


def concat(parts: Sequence[CandleColumns]) -> CandleColumns:
    """Join ascending, non-overlapping batches into one (reusing the first's lists)."""
    if not parts:
        return empty_columns()
    out = parts[0]
    for part in parts[1:]:
        out.extend(part)
    return out
