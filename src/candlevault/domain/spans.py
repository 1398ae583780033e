"""Sets of minutes as sorted, disjoint, half-open spans of epoch milliseconds.

The coverage ledger (`coverage.py`) describes nine years of 1m history as a few hundred
runs (present, confirmed empty, failed), so it holds spans, not minutes: `SpanSet` is an
immutable set of `[start_ms, end_ms)` spans on the 1m grid, normalised on construction
(sorted, non-overlapping, adjacent spans merged), so two sets holding the same minutes
are equal, hash alike and serialise alike.

Key decisions:
- Half-open spans on the minute grid. `[start, end)` makes adjacency exact (`a.end ==
  b.start`) and a span's length is `end - start`; bounds must be multiples of 60,000 ms,
  so a span is always whole minutes and cannot leak a forming or off-grid instant.
  Binance and Bybit bound open times inclusively; `inclusive_to_span` converts.
- Two parallel tuples of starts and ends, searched with `bisect`: a point or window
  query is O(log n + k). An immutable value cannot be grown in place, so `add` copies the
  two tuples around one splice (a C-level copy of n pointers, not a Python loop);
  set-with-set operations are one linear merge, never a loop of single adds.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Sequence
from heapq import merge
from itertools import islice
from operator import lt

from candlevault.domain.errors import BadValue
from candlevault.domain.timeframes import MINUTE_MS

Span = tuple[int, int]
"""A half-open `[start_ms, end_ms)` range of epoch milliseconds."""


def check_span(start_ms: int, end_ms: int) -> None:
    """Raise BadValue unless `[start_ms, end_ms)` is integer, minute-aligned and not inverted."""
    if type(start_ms) is not int or type(end_ms) is not int:  # not bool, not float
        raise BadValue("span", (start_ms, end_ms), "expected integer epoch milliseconds")
    if start_ms % MINUTE_MS or end_ms % MINUTE_MS:
        raise BadValue("span", (start_ms, end_ms), "expected bounds on the 1m grid")
    if start_ms > end_ms:
        raise BadValue("span", (start_ms, end_ms), "expected start <= end")


def inclusive_to_span(start_time_ms: int, end_time_ms: int) -> Span:
    """Return the minutes whose open time lies in `[start_time_ms, end_time_ms]` (both
    inclusive, as Binance's and Bybit's kline `startTime`/`endTime` bound open times)."""
    start = -(-start_time_ms // MINUTE_MS) * MINUTE_MS  # first open time >= start_time
    end = (end_time_ms // MINUTE_MS + 1) * MINUTE_MS  # one past the last open <= end_time
    return (start, max(start, end))


class SpanSet:
    """An immutable, normalised set of minute-aligned half-open spans."""

    __slots__ = ("_ends", "_starts")

    _starts: tuple[int, ...]
    _ends: tuple[int, ...]

    def __init__(self, spans: Iterable[Span] = ()) -> None:
        """Build the set of every minute in `spans` (any order, overlaps allowed)."""
        spans = list(spans)
        for start, end in spans:
            check_span(start, end)
        spans.sort()
        self._starts, self._ends = _normalised(spans)

    @classmethod
    def of(cls, start_ms: int, end_ms: int) -> SpanSet:
        """Return the set holding the one span `[start_ms, end_ms)`."""
        check_span(start_ms, end_ms)
        return _make((start_ms,), (end_ms,)) if start_ms < end_ms else EMPTY_SPANS

    @classmethod
    def from_open_times(cls, open_times_ms: Iterable[int]) -> SpanSet:
        """Return the minutes opening at `open_times_ms` (e.g. a batch of 1m candles)."""
        opens = list(open_times_ms)
        one_run = opens and opens[-1] - opens[0] == (len(opens) - 1) * MINUTE_MS
        if one_run and all(map(lt, opens, islice(opens, 1, None))):  # a bulk batch
            return cls.of(opens[0], opens[-1] + MINUTE_MS)
        return cls((t, t + MINUTE_MS) for t in opens)

    @classmethod
    def from_pairs(cls, pairs: Iterable[Sequence[int]]) -> SpanSet:
        """Rebuild a set from `to_pairs` output (or any list of [start, end] pairs)."""
        spans: list[Span] = []
        for pair in pairs:
            if len(pair) != 2:
                raise BadValue("span pair", pair, "expected [start_ms, end_ms]")
            spans.append((pair[0], pair[1]))
        return cls(spans)

    def to_pairs(self) -> list[list[int]]:
        """Return the spans as `[[start_ms, end_ms], ...]`, the form stores persist."""
        return [[s, e] for s, e in zip(self._starts, self._ends, strict=True)]

    # --- queries ---------------------------------------------------------------------

    def __iter__(self) -> Iterator[Span]:
        return zip(self._starts, self._ends, strict=True)

    def __len__(self) -> int:
        """Return the number of spans (not minutes: see `minutes`)."""
        return len(self._starts)

    def __bool__(self) -> bool:
        return bool(self._starts)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SpanSet):
            return NotImplemented
        return self._starts == other._starts and self._ends == other._ends

    def __hash__(self) -> int:
        return hash((self._starts, self._ends))

    def __repr__(self) -> str:
        return f"SpanSet({list(self)!r})"

    def __contains__(self, t_ms: object) -> bool:
        return isinstance(t_ms, int) and self.contains(t_ms)

    @property
    def total_ms(self) -> int:
        """Return the milliseconds covered."""
        return sum(self._ends) - sum(self._starts)

    @property
    def minutes(self) -> int:
        """Return the number of minutes covered."""
        return self.total_ms // MINUTE_MS

    @property
    def first(self) -> Span | None:
        """Return the earliest span, or None when empty."""
        return (self._starts[0], self._ends[0]) if self._starts else None

    @property
    def last(self) -> Span | None:
        """Return the latest span, or None when empty."""
        return (self._starts[-1], self._ends[-1]) if self._starts else None

    def contains(self, t_ms: int) -> bool:
        """True when instant `t_ms` (any ms, aligned or not) lies in a span."""
        i = bisect_right(self._starts, t_ms) - 1
        return i >= 0 and t_ms < self._ends[i]

    def covers(self, start_ms: int, end_ms: int) -> bool:
        """True when every instant of `[start_ms, end_ms)` is in the set (an empty window is)."""
        if start_ms >= end_ms:
            return True
        i = bisect_right(self._starts, start_ms) - 1
        return i >= 0 and end_ms <= self._ends[i]

    def overlaps(self, start_ms: int, end_ms: int) -> bool:
        """True when some instant of `[start_ms, end_ms)` is in the set."""
        if start_ms >= end_ms:
            return False
        i = bisect_right(self._ends, start_ms)  # first span ending after start
        return i < len(self._starts) and self._starts[i] < end_ms

    def span_at(self, t_ms: int) -> Span | None:
        """Return the span holding instant `t_ms`, or None."""
        i = bisect_right(self._starts, t_ms) - 1
        if i >= 0 and t_ms < self._ends[i]:
            return (self._starts[i], self._ends[i])
        return None

    # --- algebra ---------------------------------------------------------------------

    def add(self, start_ms: int, end_ms: int) -> SpanSet:
        """Return this set with `[start_ms, end_ms)` added, merging what it touches."""
        check_span(start_ms, end_ms)
        if start_ms == end_ms:
            return self
        starts, ends = self._starts, self._ends
        i = bisect_left(ends, start_ms)  # first span ending at or after the new start
        j = bisect_right(starts, end_ms)  # first span starting after the new end
        if i < j:  # spans i..j-1 overlap or touch the new one: one merged span replaces them
            start_ms, end_ms = min(start_ms, starts[i]), max(end_ms, ends[j - 1])
        return _make((*starts[:i], start_ms, *starts[j:]), (*ends[:i], end_ms, *ends[j:]))

    def union(self, other: SpanSet) -> SpanSet:
        """Return the minutes in either set (one linear merge)."""
        if not other:
            return self
        if not self:
            return other
        return _make(*_normalised(merge(self, other)))

    def clip(self, start_ms: int, end_ms: int) -> SpanSet:
        """Return the part of this set inside `[start_ms, end_ms)`, in O(log n + k)."""
        check_span(start_ms, end_ms)
        i = bisect_right(self._ends, start_ms)  # first span ending after the window opens
        j = bisect_left(self._starts, end_ms)  # first span opening at or after it closes
        if i >= j or start_ms == end_ms:
            return EMPTY_SPANS
        starts, ends = list(self._starts[i:j]), list(self._ends[i:j])
        starts[0] = max(starts[0], start_ms)
        ends[-1] = min(ends[-1], end_ms)
        return _make(tuple(starts), tuple(ends))

    def intersect(self, other: SpanSet) -> SpanSet:
        """Return the minutes in both sets: each span of the smaller clips the larger."""
        small, large = (self, other) if len(self) <= len(other) else (other, self)
        starts: list[int] = []
        ends: list[int] = []
        for start, end in small:
            part = large.clip(start, end)
            starts += part._starts
            ends += part._ends
        return _make(tuple(starts), tuple(ends))  # clipped parts are disjoint and apart

    def subtract(self, other: SpanSet) -> SpanSet:
        """Return the minutes in this set and not in `other`."""
        if not self or not other:
            return self
        spans: list[Span] = []
        o_starts, o_ends = other._starts, other._ends
        j = 0
        for start, end in self:
            j = bisect_right(o_ends, start, j)  # skip what ends before this span
            cursor = start
            k = j
            while k < len(o_starts) and o_starts[k] < end:
                if o_starts[k] > cursor:
                    spans.append((cursor, o_starts[k]))
                cursor = max(cursor, o_ends[k])
                k += 1
            if cursor < end:
                spans.append((cursor, end))
        return _make(*_normalised(spans))

    def remove(self, start_ms: int, end_ms: int) -> SpanSet:
        """Return this set without `[start_ms, end_ms)`."""
        return self.subtract(SpanSet.of(start_ms, end_ms))

    def gaps(self, start_ms: int, end_ms: int) -> SpanSet:
        """Return what of the window `[start_ms, end_ms)` this set does not cover."""
        check_span(start_ms, end_ms)
        inside = self.clip(start_ms, end_ms)
        spans: list[Span] = []
        cursor = start_ms
        for start, end in inside:
            if start > cursor:
                spans.append((cursor, start))
            cursor = end
        if cursor < end_ms:
            spans.append((cursor, end_ms))
        return _make(*_normalised(spans))

    __or__ = union
    __and__ = intersect
    __sub__ = subtract


def _make(starts: tuple[int, ...], ends: tuple[int, ...]) -> SpanSet:
    """Wrap already-normalised tuples without checking them again."""
    made = object.__new__(SpanSet)
    made._starts = starts
    made._ends = ends
    return made


def _normalised(spans: Iterable[Span]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Merge spans sorted by start into disjoint, non-adjacent, non-empty spans."""
    starts: list[int] = []
    ends: list[int] = []
    for start, end in spans:
        if start >= end:
            continue
        if ends and start <= ends[-1]:
            if end > ends[-1]:
                ends[-1] = end
        else:
            starts.append(start)
            ends.append(end)
    return tuple(starts), tuple(ends)


EMPTY_SPANS = _make((), ())
"""The empty set."""
