"""Chunks: which candles are stored together, and how new ones are merged in.

A chunk holds every candle of one series whose open time falls in its span: one UTC
day of 1m (1440 candles), three days of 3m, and so on up to ~1440 candles; 3d, 1w and
1M fit whole histories in one chunk. Engines store one packed chunk (`codec`) per key
(venue, symbol, timeframe, start), the "bucket pattern": a 500-candle read is one or
two key lookups, and an upsert rewrites the chunks it touches through `merge_chunk`.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from itertools import islice
from operator import lt

import msgspec

from candlevault.domain.columns import CandleColumns, columns_from, empty_columns
from candlevault.domain.timeframes import DAY_MS, GridKind, Timeframe
from candlevault.storage.codec import ChunkView, PackedBatch, encode, splice

_FIELDS = CandleColumns.__struct_fields__


def chunk_span_ms(tf: Timeframe) -> int | None:
    """Return the span of one chunk of `tf` (None: the whole history is one chunk)."""
    if tf.kind is not GridKind.FIXED or tf.duration_ms > DAY_MS:
        return None
    return tf.duration_ms * 1440


def chunk_start(tf: Timeframe, open_ms: int) -> int:
    """Return the key (start) of the chunk holding the candle that opens at `open_ms`."""
    span = chunk_span_ms(tf)
    return 0 if span is None else open_ms - open_ms % span


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


class ChunkPart:
    """The rows [lo, hi) of a batch that fall in the chunk keyed `start`: a window on
    the batch, sliced into columns only if a slow path needs them."""

    __slots__ = ("batch", "hi", "lo", "start")

    def __init__(self, start: int, batch: PackedBatch, lo: int, hi: int) -> None:
        self.start, self.batch, self.lo, self.hi = start, batch, lo, hi

    def __len__(self) -> int:
        return self.hi - self.lo

    @property
    def opens(self) -> list[int]:
        """The whole batch's open times (this part's are [lo, hi))."""
        return self.batch.columns.open_time_ms

    def columns(self, hi: int | None = None) -> CandleColumns:
        """The part's rows (up to batch row `hi`) as columns."""
        return self.batch.columns.slice(self.lo, self.hi if hi is None else hi)

    def packed(self) -> bytes:
        """The part packed as a chunk of its own."""
        return self.batch.encode(self.lo, self.hi)


def merge_chunk(stored: bytes | None, part: ChunkPart) -> ChunkWrite:
    """Merge `part` (non-empty) into the chunk stored at its key.

    The write path's common case, new candles after the stored ones (maybe replacing
    the last few: a derived bucket completed by the next batch), is spliced: only the
    replaced tail is unpacked and compared, only `part` is packed, and each column is
    the stored column's bytes up to the tail followed by the new ones. Appending a day
    to a 1d chunk of years then costs microseconds, not unpacking and repacking the
    years. Anything else goes through `merge`."""
    new_opens, lo, hi = part.opens, part.lo, part.hi
    first_new, last_new = new_opens[lo], new_opens[hi - 1]
    if stored is None:
        return ChunkWrite(part.packed(), first_new, last_new, len(part), len(part), 0)
    view = ChunkView(stored)
    opens = view.open_times()
    keep = bisect_left(opens, first_new)
    tail = view.rows(keep)
    spliced = None
    if all(_holds(new_opens, lo, hi, t) for t in tail.open_time_ms):  # all replaced
        spliced = splice(view, keep, part.packed())
    if spliced is None:
        merged, inserted, corrected = merge(view.rows(), part.columns())
        if not (inserted or corrected):
            return _whole(None, merged, 0, 0)
        return _whole(encode(merged), merged, inserted, corrected)
    corrected = 0
    if len(tail):
        overlap = part.columns(bisect_right(new_opens, tail.open_time_ms[-1], lo, hi))
        corrected = merge(tail, overlap)[2]
    inserted = len(part) - len(tail)
    first = opens[0] if keep else first_new
    blob = spliced if inserted or corrected else None
    return ChunkWrite(blob, first, last_new, keep + len(part), inserted, corrected)


def _holds(opens: list[int], lo: int, hi: int, t: int) -> bool:
    i = bisect_left(opens, t, lo, hi)
    return i < hi and opens[i] == t


def packed_chunk(rows: CandleColumns) -> ChunkWrite:
    """Pack `rows` (ascending, non-empty) as a whole chunk to store."""
    return _whole(encode(rows), rows, 0, 0)


def _whole(blob: bytes | None, rows: CandleColumns, inserted: int, corrected: int) -> ChunkWrite:
    opens = rows.open_time_ms
    return ChunkWrite(blob, opens[0], opens[-1], len(rows), inserted, corrected)


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


def split_by_chunk(tf: Timeframe, candles: CandleColumns) -> list[ChunkPart]:
    """Group a batch by chunk key, ascending, one row per open time (the last given)."""
    batch = PackedBatch(ascending(candles))
    opens = batch.columns.open_time_ms
    span = chunk_span_ms(tf)
    parts: list[ChunkPart] = []
    lo = 0
    while lo < len(opens):
        start = chunk_start(tf, opens[lo])
        hi = len(opens) if span is None else bisect_left(opens, start + span, lo)
        parts.append(ChunkPart(start, batch, lo, hi))
        lo = hi
    return parts


def concat(parts: Sequence[CandleColumns]) -> CandleColumns:
    """Join ascending, non-overlapping batches into one. Empty parts are skipped (an
    absent column in no rows says nothing); a single non-empty part is returned as it
    is, several are copied into a new batch, so no input is ever modified."""
    filled = [part for part in parts if len(part)]
    if len(filled) <= 1:
        return filled[0] if filled else (parts[0] if parts else empty_columns())
    out = filled[0].slice(0, len(filled[0]))
    for part in filled[1:]:
        out.extend(part)
    return out
