"""The packed chunk layout: exact round trips, lazy row ranges, merges that count."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from candlevault.domain.candles import Candle
from candlevault.domain.columns import CandleColumns, columns_from, empty_columns
from candlevault.domain.timeframes import D1, D3, H1, M1, MO1, TIMEFRAMES, W1, Timeframe
from candlevault.storage.chunks import (
    ChunkPart,
    chunk_span_ms,
    chunk_start,
    merge,
    merge_chunk,
)
from candlevault.storage.codec import ChunkView, PackedBatch, encode

T0 = 1_700_006_400_000 - 1_700_006_400_000 % 86_400_000
big = st.integers(0, 10**30)  # past int64 on purpose: quote volumes of long buckets


@st.composite
def batches(draw: st.DrawFn) -> list[Candle]:
    if draw(st.booleans()):  # a run of minutes: times pack as RANGE, flags often as CONST
        first = draw(st.integers(0, 1300))
        opens = list(range(first, first + draw(st.integers(0, 120))))
    else:
        opens = sorted(draw(st.sets(st.integers(0, 1439), max_size=120)))
    optional = draw(st.booleans())
    flags = st.just(True) if draw(st.booleans()) else st.booleans()
    value = big if draw(st.booleans()) else st.integers(0, 10**15)
    flat = draw(st.integers(1, 10**13))  # a flat market: prices pack as CONST
    price = st.just(flat) if draw(st.booleans()) else st.integers(1, 10**13)
    out = []
    for m in opens:
        t = T0 + m * 60_000
        out.append(
            Candle(
                t,
                draw(price),
                draw(price),
                draw(price),
                draw(price),
                draw(value),
                t + 59_999,
                draw(value),
                draw(st.integers(0, 10**6)) if optional else None,
                draw(value) if optional else None,
                draw(value) if optional else None,
                draw(flags),
                draw(flags),
            )
        )
    return out


@given(batches())
def test_a_chunk_gives_back_exactly_what_went_in(candles: list[Candle]) -> None:
    view = ChunkView(encode(columns_from(candles)))
    assert view.count == len(candles)
    assert list(view.rows().candles()) == candles


@given(batches(), st.integers(0, 130), st.integers(0, 130))
def test_any_row_range_is_the_slice(candles: list[Candle], lo: int, hi: int) -> None:
    view = ChunkView(encode(columns_from(candles)))
    assert list(view.rows(lo, hi).candles()) == candles[lo:hi]


@given(batches(), st.integers(0, 1440), st.integers(0, 1440))
def test_index_range_finds_the_candles_opening_in_a_window(
    candles: list[Candle], a: int, b: int
) -> None:
    start, end = T0 + min(a, b) * 60_000, T0 + max(a, b) * 60_000
    view = ChunkView(encode(columns_from(candles)))
    found = list(view.rows(*view.index_range(start, end)).candles())
    assert found == [c for c in candles if start <= c.open_time_ms <= end]


def test_absent_fields_stay_absent() -> None:
    candle = Candle(T0, 5, 6, 4, 5, 10, T0 + 59_999, 50)
    rows = ChunkView(encode(columns_from([candle]))).rows()
    assert rows.trades is None
    assert rows.taker_buy_quote is None
    assert rows.candle(0) == candle


def test_even_times_and_constant_flags_pack_small() -> None:
    day = [
        Candle(T0 + i * 60_000, 5 + i, 6 + i, 4, 5, 10, T0 + i * 60_000 + 59_999, 50, 1, 2, 3)
        for i in range(1440)
    ]
    blob = encode(columns_from(day))
    assert len(blob) < 1440 * 8 * 2 + 200  # open and high vary; the rest are RANGE or CONST
    assert list(ChunkView(blob).rows(700, 702).candles()) == day[700:702]


def test_an_empty_batch_and_a_foreign_blob() -> None:
    assert ChunkView(encode(empty_columns())).count == 0
    with pytest.raises(ValueError, match="not a candle chunk"):
        ChunkView(b"JUNK" + bytes(8))


@given(batches(), batches())
def test_merge_adds_new_rows_and_counts_real_corrections(
    old: list[Candle], new: list[Candle]
) -> None:
    merged, inserted, corrected = merge(columns_from(old), columns_from(new))
    by_open = {c.open_time_ms: c for c in old} | {c.open_time_ms: c for c in new}
    rows = list(merged.candles())
    assert [c.open_time_ms for c in rows] == sorted(by_open)
    assert all(row == by_open[row.open_time_ms] or row.trades is None for row in rows)
    before = {c.open_time_ms: c for c in old}
    assert inserted == sum(1 for c in new if c.open_time_ms not in before)
    assert corrected == sum(
        1 for c in new if c.open_time_ms in before and before[c.open_time_ms] != c
    )


def _shifted(candle: Candle, by_ms: int) -> Candle:
    fields = {f: getattr(candle, f) for f in candle.__struct_fields__}
    return Candle(
        **{
            **fields,
            "open_time_ms": candle.open_time_ms + by_ms,
            "close_time_ms": candle.close_time_ms + by_ms,
        }
    )


def _check_merge_chunk(old: list[Candle], new: list[Candle]) -> None:
    """merge_chunk's stored chunk and counts equal merge's, on whichever path it takes."""
    stored = encode(columns_from(old)) if old else None
    # the part is a window on a bigger batch, as split_by_chunk hands it over
    before = [_shifted(new[0], -(k + 1) * 86_400_000) for k in range(2)]
    after = [_shifted(new[-1], (k + 1) * 86_400_000) for k in range(3)]
    batch = PackedBatch(columns_from([*before[::-1], *new, *after]))
    done = merge_chunk(stored, ChunkPart(T0, batch, len(before), len(before) + len(new)))
    expected, inserted, corrected = merge(columns_from(old), columns_from(new))
    assert (done.inserted, done.corrected) == (inserted, corrected)
    if not (inserted or corrected):
        assert done.blob is None
        return
    assert done.blob is not None
    assert list(ChunkView(done.blob).rows().candles()) == list(expected.candles())
    opens = expected.open_time_ms
    assert (done.first, done.last, done.n) == (opens[0], opens[-1], len(opens))


@given(batches(), batches().filter(bool))
def test_merge_chunk_stores_what_merge_gives(old: list[Candle], new: list[Candle]) -> None:
    _check_merge_chunk(old, new)


@given(batches().filter(bool), st.data())
def test_candles_after_a_chunk_splice_onto_it_exactly(
    rows: list[Candle], data: st.DataObject
) -> None:
    """The write path's common case: new candles after the stored ones, replacing (maybe
    changing) the last few."""
    cut = data.draw(st.integers(1, len(rows)))
    overlap = data.draw(st.integers(0, min(3, cut)))
    new = rows[cut - overlap :]
    if new and data.draw(st.booleans()):  # the re-derived bucket changed
        first = new[0]
        new[0] = Candle(
            **{**{f: getattr(first, f) for f in first.__struct_fields__}, "close": first.close + 1}
        )
    if new:
        _check_merge_chunk(rows[:cut], new)


def test_the_same_batch_twice_is_one_batch_and_no_correction() -> None:
    candles = [
        Candle(T0 + i * 60_000, 5, 6, 4, 5, 10, T0 + i * 60_000 + 59_999, 50, 1, 2, 3)
        for i in range(5)
    ]
    once, _, _ = merge(empty_columns(), columns_from(candles))
    twice, inserted, corrected = merge(once, columns_from(candles))
    assert (len(twice), inserted, corrected) == (5, 0, 0)


@pytest.mark.parametrize("tf", TIMEFRAMES)
def test_a_chunk_holds_at_most_about_1440_candles(tf: Timeframe) -> None:
    span = chunk_span_ms(tf)
    if span is None:
        assert tf in (D3, W1, MO1)
        assert chunk_start(tf, T0) == 0
    else:
        assert span // tf.duration_ms == 1440
        assert chunk_start(tf, T0 + 5) <= T0 + 5 < chunk_start(tf, T0 + 5) + span


def test_chunks_of_1m_are_utc_days() -> None:
    assert chunk_span_ms(M1) == 86_400_000
    assert chunk_start(M1, T0 + 3_600_000) == T0
    assert chunk_span_ms(H1) == 60 * 86_400_000
    assert chunk_span_ms(D1) == 1440 * 86_400_000


def test_columns_round_trip_through_candles() -> None:
    candles = [Candle(T0, 5, 6, 4, 5, 10, T0 + 59_999, 50, 1, 2, 3, closed=False)]
    cols = columns_from(candles)
    assert isinstance(cols, CandleColumns)
    assert list(cols.candles()) == candles
    more = columns_from([Candle(T0 + 60_000, 5, 6, 4, 5, 10, T0 + 119_999, 50)])
    cols.extend(more)
    assert len(cols) == 2
    assert cols.trades is None  # one side lacks the field: the batch lacks it
