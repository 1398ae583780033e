"""The `HotCache` contract, run against every engine: in process and a real Redis.

One suite for both engines so that they cannot drift apart: the read path relies on the
contract, not on an engine. A hypothesis property then checks random sequences of loads,
updates and invalidations against a reference model written straight from the
Protocol's docstrings.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from candlevault.cache.memory import MemoryCache
from candlevault.cache.ports import HotCache, HotRows, SeriesKey
from candlevault.cache.redis import RedisCache
from candlevault.cache.retention import HOUR_MS, Retention
from candlevault.domain.timeframes import DAY_MS, H1, M1, MINUTE_MS, MO1, days_from_civil
from candlevault.domain.venues import Venue

M = MINUTE_MS
T0 = 1_700_006_400_000  # 2023-11-15 00:00 UTC
KEEP_1M = 5 * HOUR_MS
RETENTION = Retention({"1m": KEEP_1M})
KEY = SeriesKey(Venue.BINANCE, "BTCUSDT", M1)

Factory = Callable[[], HotCache]


def row(t: int, tag: str = "a") -> bytes:
    return f'[{t},"{tag}"'.encode()


def minutes(first: int, stop: int, *, skip: Sequence[int] = ()) -> list[int]:
    """Open times T0+first .. T0+stop-1 minutes, without the minutes in `skip`."""
    return [T0 + k * M for k in range(first, stop) if k not in skip]


async def install(
    cache: HotCache, key: SeriesKey, lo: int, hi: int, opens: list[int], tag: str = "a"
) -> list[bytes]:
    rows = [row(t, tag) for t in opens]
    assert await cache.load(key, lo, hi, opens, rows, await cache.generation(key))
    return rows


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def new_cache(request: pytest.FixtureRequest) -> Factory:
    """Return a factory of fresh, empty caches of one engine."""
    if request.param == "memory":
        return lambda: MemoryCache(RETENTION)
    client = request.getfixturevalue("redis_client")
    prefix = request.getfixturevalue("redis_prefix")  # its keys are deleted after the test
    numbers = itertools.count()
    return lambda: RedisCache(client, RETENTION, f"{prefix}{next(numbers)}:")


@pytest.fixture
def cache(new_cache: Factory) -> HotCache:
    return new_cache()


async def test_an_empty_cache_misses(cache: HotCache) -> None:
    assert await cache.read(KEY, T0, T0 + 10 * M, 10, newest=False) is None
    stats = await cache.stats()
    assert (stats.engine, stats.healthy, stats.series, stats.rows) == (cache.engine, True, 0, 0)


async def test_a_load_serves_the_oldest_or_newest_rows(cache: HotCache) -> None:
    rows = await install(cache, KEY, T0, T0 + 60 * M, minutes(0, 60))
    oldest = await cache.read(KEY, T0, T0 + 59 * M, 10, newest=False)
    assert oldest == HotRows(rows[:10], T0, T0 + 9 * M)
    newest = await cache.read(KEY, T0, T0 + 59 * M, 10, newest=True)
    assert newest == HotRows(rows[-10:], T0 + 50 * M, T0 + 59 * M)
    everything = await cache.read(KEY, T0, T0 + 59 * M, 1000, newest=True)
    assert everything == HotRows(rows, T0, T0 + 59 * M)


async def test_window_bounds_are_inclusive(cache: HotCache) -> None:
    rows = await install(cache, KEY, T0, T0 + 60 * M, minutes(0, 60))
    both = await cache.read(KEY, T0 + 5 * M, T0 + 7 * M, 100, newest=False)
    assert both == HotRows(rows[5:8], T0 + 5 * M, T0 + 7 * M)
    inner = await cache.read(KEY, T0 + 5 * M + 1, T0 + 7 * M - 1, 100, newest=False)
    assert inner == HotRows(rows[6:7], T0 + 6 * M, T0 + 6 * M)


async def test_a_window_partly_outside_the_span_misses(cache: HotCache) -> None:
    await install(cache, KEY, T0, T0 + 60 * M, minutes(0, 60))
    assert await cache.read(KEY, T0 - 1, T0 + 5 * M, 10, newest=False) is None
    assert await cache.read(KEY, T0 + 50 * M, T0 + 60 * M, 10, newest=False) is None
    assert await cache.read(KEY, T0 + 50 * M, T0 + 60 * M - 1, 10, newest=False) is not None
    other = SeriesKey(Venue.BINANCE, "BTCUSDT", H1)
    assert await cache.read(other, T0, T0 + HOUR_MS, 10, newest=False) is None


async def test_a_covered_window_without_rows_is_an_empty_hit(cache: HotCache) -> None:
    await install(cache, KEY, T0, T0 + 60 * M, minutes(0, 60, skip=range(10, 20)))
    assert await cache.read(KEY, T0 + 10 * M, T0 + 19 * M, 10, newest=True) == HotRows(
        [], None, None
    )
    assert await cache.read(KEY, T0, T0 + 59 * M, 0, newest=False) == HotRows([], None, None)


async def test_a_window_across_long_gaps_reads_past_them(cache: HotCache) -> None:
    # Two exchange outages, each longer than the rows that `limit` suggests reading.
    key = SeriesKey(Venue.BINANCE, "BTCUSDT", H1)
    hours = (*range(10), *range(230, 240), *range(690, 700))
    opens = [T0 + h * HOUR_MS for h in hours]
    rows = await install(cache, key, T0, T0 + 700 * HOUR_MS, opens)
    end = T0 + 699 * HOUR_MS
    newest = await cache.read(key, T0, end, 15, newest=True)
    assert newest == HotRows(rows[15:], T0 + 235 * HOUR_MS, end)
    oldest = await cache.read(key, T0, end, 15, newest=False)
    assert oldest == HotRows(rows[:15], T0, T0 + 234 * HOUR_MS)
    after = await cache.read(key, T0 + 10 * HOUR_MS, end, 15, newest=False)
    assert after == HotRows(rows[10:25], T0 + 230 * HOUR_MS, T0 + 694 * HOUR_MS)
    # A span that runs far past its newest row (updates promised nothing was missing).
    await cache.update(key, [], [], end)  # no rows: nothing to extend from
    await cache.update(key, [end], [rows[-1]], T0 + 1500 * HOUR_MS)
    late = T0 + 1499 * HOUR_MS
    assert await cache.read(key, T0, late, 3, newest=True) == HotRows(
        rows[-3:], T0 + 697 * HOUR_MS, end
    )
    assert await cache.read(key, end + 1, late, 3, newest=True) == HotRows([], None, None)


async def test_a_load_is_refused_after_an_update(cache: HotCache) -> None:
    seen = await cache.generation(KEY)
    await cache.update(KEY, [T0 + 5 * M], [row(T0 + 5 * M, "new")], T0 + 6 * M)
    assert await cache.generation(KEY) != seen
    opens = minutes(0, 60)
    assert not await cache.load(KEY, T0, T0 + 60 * M, opens, [row(t) for t in opens], seen)
    assert await cache.read(KEY, T0, T0 + 59 * M, 10, newest=False) is None
    await install(cache, KEY, T0, T0 + 60 * M, opens)
    assert await cache.read(KEY, T0, T0 + 59 * M, 10, newest=False) is not None


async def test_loads_merge_touching_spans_and_replace_disjoint_ones(cache: HotCache) -> None:
    first = await install(cache, KEY, T0, T0 + 30 * M, minutes(0, 30))
    second = await install(cache, KEY, T0 + 30 * M, T0 + 60 * M, minutes(30, 60), "b")
    whole = await cache.read(KEY, T0, T0 + 59 * M, 100, newest=False)
    assert whole == HotRows(first + second, T0, T0 + 59 * M)
    await install(cache, KEY, T0 + 100 * M, T0 + 110 * M, minutes(100, 110))
    assert await cache.read(KEY, T0, T0 + 59 * M, 100, newest=False) is None
    assert await cache.read(KEY, T0 + 100 * M, T0 + 109 * M, 100, newest=False) is not None


async def test_an_update_inside_the_span_replaces_and_inserts(cache: HotCache) -> None:
    rows = await install(cache, KEY, T0, T0 + 60 * M, minutes(0, 60, skip=[10]))
    changed = [T0 + 5 * M, T0 + 10 * M]
    await cache.update(KEY, changed, [row(t, "new") for t in changed], T0 + 11 * M)
    got = await cache.read(KEY, T0 + 5 * M, T0 + 10 * M, 100, newest=False)
    assert got == HotRows(
        [row(T0 + 5 * M, "new"), *rows[6:10], row(T0 + 10 * M, "new")], T0 + 5 * M, T0 + 10 * M
    )
    assert await cache.read(KEY, T0, T0 + 59 * M, 100, newest=False) is not None


async def test_an_update_extends_a_span_it_continues_and_no_other(cache: HotCache) -> None:
    rows = await install(cache, KEY, T0, T0 + 60 * M, minutes(0, 60))
    await cache.update(KEY, [T0 + 60 * M], [row(T0 + 60 * M)], T0 + 61 * M)
    got = await cache.read(KEY, T0 + 50 * M, T0 + 61 * M - 1, 100, newest=True)
    assert got == HotRows([*rows[50:], row(T0 + 60 * M)], T0 + 50 * M, T0 + 60 * M)
    # The span ends at minute 61, before this batch: minutes 61-62 may be missing.
    await cache.update(KEY, [T0 + 63 * M], [row(T0 + 63 * M)], T0 + 64 * M)
    assert await cache.read(KEY, T0 + 50 * M, T0 + 63 * M, 100, newest=True) is None
    assert await cache.read(KEY, T0 + 50 * M, T0 + 61 * M - 1, 100, newest=True) == got


async def test_retention_trims_old_rows_and_raises_lo(cache: HotCache) -> None:
    keep = KEEP_1M // M  # 300 minutes
    await install(cache, KEY, T0, T0 + keep * M, minutes(0, keep))
    assert await cache.read(KEY, T0, T0 + 9 * M, 100, newest=False) is not None
    later = minutes(keep, keep + 10)
    await cache.update(KEY, later, [row(t) for t in later], later[-1] + M)
    assert await cache.read(KEY, T0 + 9 * M - 1, T0 + 20 * M, 100, newest=False) is None
    kept = await cache.read(KEY, T0 + 9 * M, later[-1], 1000, newest=False)
    assert kept is not None
    assert (len(kept.rows), kept.first_open_ms) == (keep + 1, T0 + 9 * M)
    # A load longer than the retention keeps only its newest part.
    other = SeriesKey(Venue.BYBIT_SPOT, "BTCUSDT", M1)
    await install(cache, other, T0, T0 + 360 * M, minutes(0, 360))
    assert await cache.read(other, T0 + 59 * M - 1, T0 + 359 * M, 1000, newest=False) is None
    trimmed = await cache.read(other, T0 + 59 * M, T0 + 359 * M, 1000, newest=False)
    assert trimmed is not None
    assert (len(trimmed.rows), trimmed.first_open_ms) == (keep + 1, T0 + 59 * M)


async def test_invalidate_drops_all_a_venue_a_symbol_or_a_series(cache: HotCache) -> None:
    btc, eth, sol = "BTCUSDT", "ETHUSDT", "SOLUSDT"
    keys = {
        "a": SeriesKey(Venue.BINANCE, btc, M1),
        "b": SeriesKey(Venue.BINANCE, btc, H1),
        "c": SeriesKey(Venue.BINANCE, eth, M1),
        "d": SeriesKey(Venue.BYBIT_SPOT, btc, M1),
        "e": SeriesKey(Venue.BINANCE_USDM, btc, M1),
        "f": SeriesKey(Venue.BYBIT_LINEAR, sol, M1),
    }
    for key in keys.values():
        await install(cache, key, T0, T0 + 2 * HOUR_MS, [T0, T0 + HOUR_MS])

    async def cached() -> set[str]:
        found = set()
        for name, key in keys.items():
            if await cache.read(key, T0, T0 + HOUR_MS, 10, newest=False) is not None:
                found.add(name)
        return found

    generation = await cache.generation(keys["b"])
    assert await cache.invalidate(Venue.BINANCE, btc, H1) == 1
    assert await cached() == {"a", "c", "d", "e", "f"}
    assert await cache.generation(keys["b"]) == generation  # kept: see MemoryCache
    assert await cache.invalidate(Venue.BINANCE) == 2  # not binance-usdm
    assert await cached() == {"d", "e", "f"}
    assert await cache.invalidate(symbol=btc) == 2
    assert await cached() == {"f"}
    assert await cache.invalidate() == 1
    assert await cached() == set()
    assert (await cache.stats()).series == 0


async def test_stats_count_series_rows_and_bytes(cache: HotCache) -> None:
    one = await install(cache, KEY, T0, T0 + 60 * M, minutes(0, 60, skip=[3, 4]))
    other = SeriesKey(Venue.BINANCE, "ETHUSDT", H1)
    two = await install(cache, other, T0, T0 + 3 * HOUR_MS, [T0, T0 + HOUR_MS], "longer")
    stats = await cache.stats()
    assert (stats.series, stats.rows) == (2, len(one) + len(two))
    assert stats.bytes == sum(map(len, one + two))


def month(year: int, number: int) -> int:
    return days_from_civil(year, number, 1) * DAY_MS


async def test_a_calendar_month_series(cache: HotCache) -> None:
    key = SeriesKey(Venue.BINANCE, "BTCUSDT", MO1)
    opens = MO1.opens(month(2019, 1), month(2023, 12))
    rows = await install(cache, key, opens[0], month(2024, 1), opens)
    year = await cache.read(key, month(2023, 1), month(2023, 12), 100, newest=True)
    assert year == HotRows(rows[-12:], month(2023, 1), month(2023, 12))
    assert await cache.read(key, month(2018, 12), month(2019, 6), 100, newest=False) is None
    assert await cache.read(key, month(2023, 6), month(2024, 1), 100, newest=False) is None
    await cache.update(key, [month(2024, 1)], [row(month(2024, 1))], month(2024, 2))
    got = await cache.read(key, month(2019, 1), month(2024, 2) - 1, 2, newest=True)
    assert got == HotRows([rows[-1], row(month(2024, 1))], month(2023, 12), month(2024, 1))


# --- the property: random operations against a reference model -------------------------

SPAN_MINUTES = 420  # several 128-row Redis chunks and almost three retentions
PROPERTY_KEEP = 150 * M
PROPERTY_RETENTION = Retention({"1m": PROPERTY_KEEP})


@dataclass
class Model:
    """The Protocol's docstrings, as directly as they can be written."""

    gen: int = 0
    span: tuple[int, int] | None = None
    rows: dict[int, bytes] = field(default_factory=dict)

    def load(self, lo: int, hi: int, opens: list[int], rows: list[bytes], gen: int) -> bool:
        if gen != self.gen:
            return False
        if lo >= hi:
            return True
        new = {t: r for t, r in zip(opens, rows, strict=True) if lo <= t < hi}
        if self.span is not None and self.span[0] <= hi and lo <= self.span[1]:
            kept = {t: r for t, r in self.rows.items() if not lo <= t < hi}
            self.span = (min(lo, self.span[0]), max(hi, self.span[1]))
            self.rows = kept | new
        else:
            self.span, self.rows = (lo, hi), new
        self.trim()
        return True

    def update(self, opens: list[int], rows: list[bytes], through: int) -> None:
        self.gen += 1
        if self.span is None or not opens:
            return
        lo, hi = self.span
        if hi >= opens[0]:
            hi = max(hi, through)
        self.span = (lo, hi)
        self.rows |= {t: r for t, r in zip(opens, rows, strict=True) if lo <= t < hi}
        self.trim()

    def trim(self) -> None:
        assert self.span is not None
        if self.rows and max(self.rows) - PROPERTY_KEEP > self.span[0]:
            cutoff = max(self.rows) - PROPERTY_KEEP
            self.span = (cutoff, self.span[1])
            self.rows = {t: r for t, r in self.rows.items() if t >= cutoff}

    def read(self, start: int, end: int, limit: int, newest: bool) -> HotRows | None:
        if self.span is None or start < self.span[0] or end >= self.span[1]:
            return None
        chosen = sorted(t for t in self.rows if start <= t <= end)
        chosen = (chosen[-limit:] if newest else chosen[:limit]) if limit > 0 else []
        if not chosen:
            return HotRows([], None, None)
        return HotRows([self.rows[t] for t in chosen], chosen[0], chosen[-1])


@dataclass(frozen=True)
class Load:
    first: int  # minutes after T0
    length: int  # minutes
    holes: frozenset[int]  # minutes after T0 without a candle
    outage: tuple[int, int]  # and a run of them: first minute, length
    stale: bool  # pass a generation observed before the last update


@dataclass(frozen=True)
class Update:
    first: int | None  # the first row's minute after T0, or None: the span's end + `gap`
    gap: int  # minutes
    count: int  # rows, one a minute
    ahead: int  # through = the last row's close + `ahead` minutes


@dataclass(frozen=True)
class Read:
    start: int  # ms after T0, or after the span's lo when `near_edges`
    end: int  # ms after T0, or after the span's last ms (hi - 1) when `near_edges`
    limit: int
    newest: bool
    near_edges: bool  # aim at the span's bounds, where off-by-ones live


@dataclass(frozen=True)
class Invalidate:
    pass


Op = Load | Update | Read | Invalidate
minute = st.integers(0, SPAN_MINUTES)
limits = st.integers(1, 3) | st.integers(0, 400)
# Reads aim at the span's bounds (where off-by-ones live) more often than anywhere else.
edge = st.sampled_from([-1, 0, 1, M]) | st.integers(0, 100).map(lambda k: k * M)
anywhere = st.integers(-2 * M, SPAN_MINUTES * M)


def loads(stale: st.SearchStrategy[bool]) -> st.SearchStrategy[Load]:
    holes = st.frozensets(minute, max_size=20)
    outage = st.tuples(minute, st.integers(0, 200))
    return st.builds(Load, minute, st.integers(1, SPAN_MINUTES), holes, outage, stale)


operations = st.tuples(
    loads(st.just(False)),
    st.lists(
        st.one_of(
            loads(st.booleans()),
            st.builds(Update, st.none() | minute, st.integers(-3, 3), st.integers(0, 4), limits),
            st.builds(Update, st.none(), st.integers(-3, 3), st.integers(0, 4), limits),
            st.builds(Read, anywhere, anywhere, limits, st.booleans(), st.just(False)),
            st.builds(Read, edge, edge.map(lambda d: -d), limits, st.booleans(), st.just(True)),
            st.builds(Read, edge, edge.map(lambda d: -d), limits, st.booleans(), st.just(True)),
            st.just(Invalidate()),
        ),
        max_size=30,
    ),
).map(lambda first_and_rest: [first_and_rest[0], *first_and_rest[1]])


def window(op: Read, model: Model) -> tuple[int, int]:
    if op.near_edges and model.span is not None:
        return model.span[0] + op.start, model.span[1] - 1 + op.end
    return T0 + op.start, T0 + op.end


async def apply(cache: HotCache, model: Model, op: Op, tag: str) -> None:
    """Apply `op` to both; assert that they answer alike."""
    if isinstance(op, Load):
        stop = op.first + op.length
        down = range(op.outage[0], op.outage[0] + op.outage[1])
        opens = [T0 + k * M for k in range(op.first, stop) if k not in op.holes and k not in down]
        rows = [row(t, tag) for t in opens]
        lo, hi = T0 + op.first * M, T0 + stop * M
        seen, expected = await cache.generation(KEY), model.gen
        if op.stale and model.gen > 0:
            seen, expected = -1, -1
        done = await cache.load(KEY, lo, hi, opens, rows, seen)
        assert done == model.load(lo, hi, opens, rows, expected)
    elif isinstance(op, Update):
        if op.first is None and model.span is not None:
            first = model.span[1] + op.gap * M
        else:
            first = T0 + (op.first or 0) * M
        opens = [first + k * M for k in range(op.count)]
        rows = [row(t, tag) for t in opens]
        through = (opens[-1] if opens else first) + (1 + op.ahead) * M
        await cache.update(KEY, opens, rows, through)
        model.update(opens, rows, through)
    elif isinstance(op, Read):
        start, end = window(op, model)
        got = await cache.read(KEY, start, end, op.limit, newest=op.newest)
        assert got == model.read(start, end, op.limit, op.newest)
    else:
        assert await cache.invalidate() == (0 if model.span is None else 1)
        model.span, model.rows = None, {}


async def check_against_model(cache: HotCache, ops: list[Op]) -> None:
    model = Model()
    for number, op in enumerate(ops):
        await apply(cache, model, op, str(number))
    if model.span is not None:  # finally, everything the model covers
        lo, hi = model.span
        everything = await cache.read(KEY, lo, hi - 1, 10_000, newest=False)
        assert everything == model.read(lo, hi - 1, 10_000, False)


PROPERTY = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@settings(PROPERTY, max_examples=200)
@given(ops=operations)
async def test_memory_engine_matches_the_model(ops: list[Op]) -> None:
    await check_against_model(MemoryCache(PROPERTY_RETENTION), ops)


@pytest.mark.redis
@pytest.mark.parametrize("chunk_rows", [128, 5])
@settings(PROPERTY, max_examples=60)
@given(ops=operations)
async def test_redis_engine_matches_the_model(
    ops: list[Op], chunk_rows: int, redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    # The fixtures live across examples, so each example takes a fresh sub-prefix; and
    # small chunks, so that a few rows already cross many chunk boundaries.
    prefix = f"{redis_prefix}{uuid.uuid4().hex[:8]}:"
    cache = RedisCache(redis_client, PROPERTY_RETENTION, prefix, chunk_rows=chunk_rows)
    await check_against_model(cache, ops)


@pytest.mark.redis
async def test_a_redis_reader_never_serves_its_copy_after_another_process_wrote(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    """Two API replicas on one Redis: each keeps the chunks it read, checked against the
    entry's version once its trust period is over (0 here: every read); a write by the
    other then shows at once."""
    reader = RedisCache(redis_client, RETENTION, redis_prefix, trust_s=0.0)
    writer = RedisCache(redis_client, RETENTION, redis_prefix)
    opens = minutes(0, 120)
    rows = await install(writer, KEY, opens[0], opens[-1] + M, opens)
    first = await reader.read(KEY, opens[0], opens[-1], 500, newest=True)
    assert first == HotRows(rows, opens[0], opens[-1])
    again = await reader.read(KEY, opens[0], opens[-1], 500, newest=True)  # from its copy
    assert again == first
    fixed = opens[60]
    await writer.update(KEY, [fixed], [row(fixed, "corrected")], opens[-1] + M)
    after = await reader.read(KEY, opens[0], opens[-1], 500, newest=True)
    assert after is not None
    assert after.rows[60] == row(fixed, "corrected")
    assert after.rows[:60] == rows[:60]
    await writer.invalidate(KEY.venue, KEY.symbol, KEY.tf)
    assert await reader.read(KEY, opens[0], opens[-1], 500, newest=True) is None


@pytest.mark.redis
async def test_a_redis_cache_sees_its_own_writes_at_once(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    """Within its trust period a copy is served without asking Redis, but never across
    the process's own update, load or invalidation."""
    cache = RedisCache(redis_client, RETENTION, redis_prefix, trust_s=3600.0)
    opens = minutes(0, 60)
    rows = await install(cache, KEY, opens[0], opens[-1] + M, opens)
    assert await cache.read(KEY, opens[0], opens[-1], 100, newest=False) == HotRows(
        rows, opens[0], opens[-1]
    )
    fixed = opens[10]
    await cache.update(KEY, [fixed], [row(fixed, "corrected")], opens[-1] + M)
    after = await cache.read(KEY, opens[0], opens[-1], 100, newest=False)
    assert after is not None
    assert after.rows[10] == row(fixed, "corrected")
    await cache.invalidate()
    assert await cache.read(KEY, opens[0], opens[-1], 100, newest=False) is None
