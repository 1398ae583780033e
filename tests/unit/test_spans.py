"""SpanSet against a reference model: a Python set of minute indices on a small grid."""

from __future__ import annotations

import random
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from candlevault.domain.errors import BadRequest, BadValue
from candlevault.domain.spans import EMPTY_SPANS, Span, SpanSet, inclusive_to_span
from candlevault.domain.timeframes import MINUTE_MS

BASE = 25_000_000 * MINUTE_MS  # 2017-07-13, on the grid
GRID = 40  # minutes: small, so that spans collide often


def ms(minute: int) -> int:
    return BASE + minute * MINUTE_MS


def model(spans: SpanSet) -> set[int]:
    """The minute indices a set holds."""
    return {m for s, e in spans for m in range((s - BASE) // MINUTE_MS, (e - BASE) // MINUTE_MS)}


minute_indices = st.integers(0, GRID)
windows = st.tuples(minute_indices, minute_indices).map(sorted).map(lambda p: (ms(p[0]), ms(p[1])))
span_lists = st.lists(windows, max_size=8)
span_sets = span_lists.map(SpanSet)
# any instant around the grid, on or off the minute
instants = st.integers(ms(-2), ms(GRID + 2))


def spans_model(spans: list[Span]) -> set[int]:
    return {m for s, e in spans for m in range((s - BASE) // MINUTE_MS, (e - BASE) // MINUTE_MS)}


def window_model(window: Span) -> set[int]:
    return spans_model([window])


@given(span_lists)
def test_construction_normalises(spans: list[Span]) -> None:
    built = SpanSet(spans)
    pairs = list(built)
    assert model(built) == spans_model(spans)
    assert all(s < e and s % MINUTE_MS == 0 and e % MINUTE_MS == 0 for s, e in pairs)
    assert all(e1 < s2 for (_, e1), (s2, _) in pairwise(pairs))  # sorted, apart, not adjacent
    assert len(built) == len(pairs)
    assert bool(built) == bool(pairs)


@given(span_lists, st.randoms(use_true_random=False))
def test_the_same_minutes_make_equal_sets_however_built(
    spans: list[Span], rng: random.Random
) -> None:
    shuffled = list(spans)
    rng.shuffle(shuffled)
    by_adding = EMPTY_SPANS
    for s, e in shuffled:
        by_adding = by_adding.add(s, e)
    assert by_adding == SpanSet(spans) == SpanSet(shuffled)
    assert hash(by_adding) == hash(SpanSet(spans))
    assert list(by_adding) == list(SpanSet(spans))


@given(span_sets, span_sets)
def test_union_intersect_subtract_agree_with_the_model(a: SpanSet, b: SpanSet) -> None:
    assert model(a | b) == model(a.union(b)) == model(a) | model(b)
    assert model(a & b) == model(a.intersect(b)) == model(a) & model(b)
    assert model(a - b) == model(a.subtract(b)) == model(a) - model(b)
    for result in (a | b, a & b, a - b):
        assert result == SpanSet(list(result))  # normalised: rebuilding changes nothing


@given(span_sets, span_sets)
def test_algebra_laws(a: SpanSet, b: SpanSet) -> None:
    assert a | b == b | a
    assert a & b == b & a
    assert (a - b) | (a & b) == a
    assert not (a - b) & b
    assert a | a == a == a & a
    assert not a - a
    assert (a | b) - b == a - b


@given(span_sets, windows)
def test_window_operations_agree_with_the_model(a: SpanSet, window: Span) -> None:
    inside = window_model(window)
    assert model(a.clip(*window)) == model(a) & inside
    assert model(a.gaps(*window)) == inside - model(a)
    assert a.gaps(*window) == SpanSet.of(*window) - a
    assert model(a.remove(*window)) == model(a) - inside
    assert model(a.add(*window)) == model(a) | inside
    assert a.covers(*window) == (inside <= model(a))
    assert a.overlaps(*window) == bool(inside & model(a))


@given(span_sets, instants)
def test_point_queries_agree_with_the_model(a: SpanSet, t: int) -> None:
    minute = (t - BASE) // MINUTE_MS
    assert a.contains(t) == (minute in model(a)) == (t in a)
    found = a.span_at(t)
    if found is None:
        assert not a.contains(t)
    else:
        assert found in list(a)
        assert found[0] <= t < found[1]


@given(span_sets)
def test_sizes_and_ends(a: SpanSet) -> None:
    assert a.minutes == len(model(a))
    assert a.total_ms == a.minutes * MINUTE_MS
    pairs = list(a)
    assert a.first == (pairs[0] if pairs else None)
    assert a.last == (pairs[-1] if pairs else None)


@given(span_sets)
def test_pairs_round_trip(a: SpanSet) -> None:
    pairs = a.to_pairs()
    assert all(isinstance(p, list) and len(p) == 2 for p in pairs)
    assert SpanSet.from_pairs(pairs) == a


@given(span_lists)
def test_from_pairs_normalises_what_it_is_given(spans: list[Span]) -> None:
    assert SpanSet.from_pairs([[s, e] for s, e in reversed(spans)]) == SpanSet(spans)


@given(st.lists(minute_indices, max_size=30))
def test_from_open_times_holds_those_minutes(minutes: list[int]) -> None:
    assert model(SpanSet.from_open_times(ms(m) for m in minutes)) == set(minutes)


@given(instants, instants)
def test_inclusive_bounds_become_the_minutes_opening_inside_them(lo: int, hi: int) -> None:
    span = inclusive_to_span(lo, hi)
    opens = {m for m in range(-3, GRID + 3) if lo <= ms(m) <= hi}
    assert window_model(span) == opens
    assert span[0] <= span[1]


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (BASE + 1, BASE + MINUTE_MS),  # unaligned start
        (BASE, BASE + MINUTE_MS + 30_000),  # unaligned end
        (BASE + MINUTE_MS, BASE),  # inverted
        (float(BASE), BASE + MINUTE_MS),  # not an int
        (True, BASE),  # a bool is not a time
    ],
)
def test_malformed_spans_are_refused(start: int, end: int) -> None:
    with pytest.raises(BadValue):
        SpanSet.of(start, end)
    with pytest.raises(BadValue):
        SpanSet([(start, end)])
    with pytest.raises(BadRequest):  # BadValue is the 400-class BadRequest
        EMPTY_SPANS.add(start, end)


def test_malformed_pairs_are_refused() -> None:
    with pytest.raises(BadValue):
        SpanSet.from_pairs([[BASE, BASE + MINUTE_MS, 0]])
    with pytest.raises(BadValue):
        SpanSet.from_pairs([[BASE + 5, BASE + MINUTE_MS]])


def test_an_empty_span_adds_nothing() -> None:
    a = SpanSet.of(ms(1), ms(3))
    assert a.add(ms(10), ms(10)) == a
    assert SpanSet.of(ms(5), ms(5)) == EMPTY_SPANS
    assert not a.clip(ms(2), ms(2))
    assert not a.overlaps(ms(2), ms(2))
    assert a.covers(ms(20), ms(20))


def test_touching_spans_merge_and_separated_ones_do_not() -> None:
    assert list(SpanSet([(ms(0), ms(2)), (ms(2), ms(4))])) == [(ms(0), ms(4))]
    assert list(SpanSet([(ms(0), ms(2)), (ms(3), ms(4))])) == [(ms(0), ms(2)), (ms(3), ms(4))]
    assert list(SpanSet.of(ms(0), ms(2)).add(ms(3), ms(4)).add(ms(2), ms(3))) == [(ms(0), ms(4))]


def test_a_long_history_of_appended_minutes_stays_one_span() -> None:
    built = EMPTY_SPANS
    for m in range(5000):
        built = built.add(ms(m), ms(m + 1))
    assert list(built) == [(ms(0), ms(5000))]
    assert built.minutes == 5000
