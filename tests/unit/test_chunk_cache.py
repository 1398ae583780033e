"""The chunk cache: directories follow every write, stale fills are refused, size is bounded."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from candlevault.domain.candles import Candle
from candlevault.domain.columns import columns_from
from candlevault.storage.chunk_cache import ChunkCache, ChunkChange, ChunkMeta, Directory
from candlevault.storage.codec import ChunkView, encode

SERIES = ("binance", "BTCUSDT", "1m")
T0 = 1_700_006_400_000 - 1_700_006_400_000 % 86_400_000


def _blob(rows: int) -> bytes:
    return encode(
        columns_from(
            [
                Candle(T0 + i * 60_000, 1, 2, 1, 2, 3, T0 + i * 60_000 + 59_999, 6)
                for i in range(rows)
            ]
        )
    )


def _meta(start: int, n: int = 10) -> ChunkMeta:
    return ChunkMeta(start, start, start + n - 1, n)


@given(st.lists(st.tuples(st.integers(0, 30), st.booleans()), max_size=60))
def test_a_directory_equals_the_chunks_written_and_removed(ops: list[tuple[int, bool]]) -> None:
    directory = Directory([])
    model: dict[int, ChunkMeta] = {}
    for start, remove in ops:
        meta = None if remove else _meta(start, n=start + 1)
        directory.put(meta, start)
        if meta is None:
            model.pop(start, None)
        else:
            model[start] = meta
    assert directory.chunks == [model[s] for s in sorted(model)]
    assert directory.starts == sorted(model)


def test_window_picks_chunks_by_key_and_last_open() -> None:
    directory = Directory([_meta(0), _meta(100), _meta(200)])
    assert [c.start for c in directory.window(0, 150, 0)] == [0, 100]
    assert [c.start for c in directory.window(0, 300, 50)] == [100, 200]  # chunk 0 ends at 9


def test_writes_update_a_loaded_directory_and_the_blobs() -> None:
    cache = ChunkCache(10 * 2**20)
    cache.set_directory(SERIES, [_meta(0)], cache.generation(SERIES))
    blob = _blob(5)
    cache.apply([ChunkChange(SERIES, 100, _meta(100, 5), blob)])
    directory = cache.directory(SERIES)
    assert directory is not None
    assert directory.starts == [0, 100]
    view = cache.blob(SERIES, 100)
    assert view is not None
    assert view.count == 5
    cache.apply([ChunkChange(SERIES, 100, None, None)])
    assert directory.starts == [0]
    assert cache.blob(SERIES, 100) is None


def test_a_read_that_raced_a_write_is_not_cached() -> None:
    cache = ChunkCache(10 * 2**20)
    cache.set_directory(SERIES, [], cache.generation(SERIES))
    before = cache.generation(SERIES)
    cache.apply([ChunkChange(SERIES, 0, _meta(0, 5), _blob(5))])  # lands while the read runs
    cache.fill(SERIES, 0, ChunkView(_blob(3)), before)  # what the read saw: stale now
    cached = cache.blob(SERIES, 0)
    assert cached is not None
    assert cached.count == 5  # the cache keeps the write
    cache.set_directory(SERIES, [_meta(0, 3)], before)
    directory = cache.directory(SERIES)
    assert directory is not None
    assert directory.chunks == [_meta(0, 5)]  # a stale directory does not replace it


def test_writes_go_around_the_cache_except_the_newest_and_cached_chunks() -> None:
    cache = ChunkCache(10 * 2**20)
    cache.set_directory(SERIES, [_meta(0), _meta(100)], cache.generation(SERIES))
    cache.apply([ChunkChange(SERIES, 0, _meta(0, 5), _blob(5))])  # history: not cached
    assert cache.blob(SERIES, 0) is None
    cache.apply([ChunkChange(SERIES, 100, _meta(100, 5), _blob(5))])  # the newest: cached
    assert cache.blob(SERIES, 100) is not None
    cache.fill(SERIES, 0, ChunkView(_blob(2)), cache.generation(SERIES))
    cache.apply([ChunkChange(SERIES, 0, _meta(0, 4), _blob(4))])  # cached: replaced
    view = cache.blob(SERIES, 0)
    assert view is not None
    assert view.count == 4


def test_the_cache_stays_within_its_size_dropping_the_least_recent() -> None:
    blob = _blob(100)
    cache = ChunkCache(3 * len(blob))
    for start in range(4):
        cache.fill(SERIES, start, ChunkView(blob), cache.generation(SERIES))
        if start == 2:
            assert cache.blob(SERIES, 0) is not None  # 0 is now the most recent
    assert cache.blob(SERIES, 1) is None  # the least recently used went first
    assert all(cache.blob(SERIES, s) is not None for s in (0, 2, 3))


@given(
    st.lists(st.integers(1, 5), min_size=0, max_size=30),
    st.integers(0, 40),
    st.integers(0, 400),
    st.integers(1, 20),
)
def test_window_with_rows_is_the_shortest_prefix_that_can_hold_them(
    sizes: list[int], first_chunk: int, first_open: int, rows: int
) -> None:
    chunks = [ChunkMeta(i * 10, i * 10, i * 10 + n - 1, n) for i, n in enumerate(sizes)]
    directory = Directory(chunks)
    everything = directory.window(first_chunk * 10, 10**6, first_open)
    assert everything == [c for c in chunks if c.start >= first_chunk * 10 and c.last >= first_open]
    picked = directory.window(first_chunk * 10, 10**6, first_open, rows)
    assert picked == everything[: len(picked)]

    def held(chunks: list[ChunkMeta]) -> int:  # candles opening at or after first_open
        return sum(1 for c in chunks for t in range(c.first, c.last + 1) if t >= first_open)

    assert picked == everything or held(picked) >= rows  # enough...
    if picked:
        assert held(picked[:-1]) < rows  # ...and not one chunk more


def test_rows_from_counts_the_candles_of_an_evenly_spaced_chunk() -> None:
    day = ChunkMeta(0, 0, 1439 * 60_000, 1440)
    assert day.rows_from(-5) == 1440
    assert day.rows_from(60_000) == 1439
    assert day.rows_from(60_001) == 1438
    assert day.rows_from(1439 * 60_000) == 1
    assert day.rows_from(1439 * 60_000 + 1) == 0
    holes = ChunkMeta(0, 0, 1000 * 60_000 + 7, 10)  # not evenly spaced: unknown
    assert holes.rows_from(60_000) == 0


@given(st.lists(st.integers(1, 5), max_size=30), st.integers(0, 60))
def test_tail_is_the_fewest_newest_chunks_holding_the_rows(sizes: list[int], rows: int) -> None:
    chunks = [ChunkMeta(i * 10, i * 10, i * 10 + n - 1, n) for i, n in enumerate(sizes)]
    picked = Directory(chunks).tail(rows)
    assert picked == chunks[len(chunks) - len(picked) :]
    assert sum(c.n for c in picked) >= rows or picked == chunks
    if picked:
        assert sum(c.n for c in picked[1:]) < rows
