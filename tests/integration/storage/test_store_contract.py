"""The `CandleStore` contract: what every engine does, run against each one (conftest.py).

Candles are built as values and compared as values, so an engine passes only if it gives
back exactly what it was given: decimal integers past int64 included, absent fields
absent, flags kept. Windows are inclusive at both ends, as Binance bounds open times.
"""

from __future__ import annotations

from candlevault.domain.candles import Candle
from candlevault.domain.columns import CandleColumns, columns_from
from candlevault.domain.timeframes import D1, H1, M1, MO1, W1, Timeframe
from candlevault.domain.venues import Venue
from candlevault.storage.ports import CandleStore, UpsertResult

MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR
T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z: a UTC day (and chunk) boundary
BIG = 10**25  # past int64 (9.2e18): quote volumes of long buckets get there
V, S = Venue.BINANCE, "BTCUSDT"


def candle(
    t: int,
    tf: Timeframe = M1,
    *,
    seed: int = 0,
    optional: bool = True,
    big: bool = False,
    closed: bool = True,
    complete: bool = True,
) -> Candle:
    """Return a sane candle opening at `t`; `seed` changes its prices (a correction)."""
    price = 4_200_000_000 + (t // MINUTE) % 997 * 1_000 + seed
    volume = 12_345_678 + (t // MINUTE) % 101
    quote = BIG + t if big else price * volume // 100
    return Candle(
        open_time_ms=t,
        open=price,
        high=price + 500,
        low=price - 500,
        close=price + 100,
        volume=volume,
        close_time_ms=tf.close_time(t),
        quote_volume=quote,
        trades=100 + t // MINUTE % 50 if optional else None,
        taker_buy_base=volume // 2 if optional else None,
        taker_buy_quote=quote // 2 if optional else None,
        closed=closed,
        complete=complete,
    )


def minutes(start: int, count: int, *, optional: bool = True, big: bool = False) -> list[Candle]:
    """Return `count` consecutive 1m candles from `start`."""
    return [candle(start + i * MINUTE, optional=optional, big=big) for i in range(count)]


def rows(columns: CandleColumns) -> list[Candle]:
    return list(columns.candles())


async def put(store: CandleStore, candles: list[Candle], tf: Timeframe = M1) -> UpsertResult:
    return await store.upsert(V, S, tf, columns_from(candles))


async def everything(store: CandleStore, tf: Timeframe = M1) -> list[Candle]:
    return rows(await store.read(V, S, tf))


async def test_upsert_then_read_back_exactly(store: CandleStore) -> None:
    batch = minutes(T0, 30) + minutes(T0 + 30 * MINUTE, 10, big=True)
    batch[-1] = candle(batch[-1].open_time_ms, closed=False, complete=False)

    assert await put(store, batch) == UpsertResult(inserted=40)

    assert await everything(store) == batch
    got = await store.read(V, S, M1)
    assert got.quote_volume[30] == BIG + T0 + 30 * MINUTE


async def test_empty_store_reads_nothing(store: CandleStore) -> None:
    assert len(await store.read(V, S, M1)) == 0
    assert len(await store.latest(V, S, M1, 10)) == 0
    assert await store.bounds(V, S, M1) is None
    assert await store.count(V, S, M1) == 0
    assert await store.delete(V, S, M1, T0, T0 + DAY) == 0
    assert await store.upsert(V, S, M1, columns_from([])) == UpsertResult()


async def test_same_batch_twice_is_the_same_rows(store: CandleStore) -> None:
    batch = minutes(T0 - 5 * MINUTE, 20)  # across a day boundary
    await put(store, batch)

    assert await put(store, batch) == UpsertResult(unchanged=20)

    assert await everything(store) == batch
    assert await store.count(V, S, M1) == 20


async def test_upsert_counts_inserted_corrected_unchanged(store: CandleStore) -> None:
    await put(store, minutes(T0, 10))
    again = minutes(T0 + 5 * MINUTE, 3)  # identical
    changed = [candle(T0 + (8 + i) * MINUTE, seed=7) for i in range(2)]  # corrections
    new = minutes(T0 + 10 * MINUTE, 4)

    assert await put(store, again + changed + new) == UpsertResult(
        inserted=4, corrected=2, unchanged=3
    )
    assert await store.count(V, S, M1) == 14


async def test_a_changed_candle_replaces_the_old_one(store: CandleStore) -> None:
    batch = minutes(T0, 5)
    await put(store, batch)
    fixed = candle(T0 + 2 * MINUTE, seed=42)

    assert await put(store, [fixed]) == UpsertResult(corrected=1)

    assert await everything(store) == [*batch[:2], fixed, *batch[3:]]


async def test_reads_across_chunk_boundaries(store: CandleStore) -> None:
    batch = minutes(T0 + DAY - 30 * MINUTE, 24 * 60 + 60)  # three UTC days
    await put(store, batch)
    start, end = T0 + DAY - 10 * MINUTE, T0 + 2 * DAY + 10 * MINUTE

    got = rows(await store.read(V, S, M1, start_ms=start, end_ms=end))

    assert got == [c for c in batch if start <= c.open_time_ms <= end]
    assert len(got) == 24 * 60 + 21


async def test_batches_in_any_order_read_ascending(store: CandleStore) -> None:
    later, earlier = minutes(T0 + 2 * DAY, 5), minutes(T0, 5)
    await put(store, later)
    await put(store, earlier)

    assert await everything(store) == earlier + later


async def test_a_batch_out_of_order_is_stored_in_order(store: CandleStore) -> None:
    batch = minutes(T0 + DAY - 2 * MINUTE, 4)  # across a day boundary
    shuffled = [batch[2], batch[0], batch[3], batch[1]]

    assert await put(store, shuffled) == UpsertResult(inserted=4)
    assert await everything(store) == batch


async def test_a_repeated_open_time_in_one_batch_keeps_the_last(store: CandleStore) -> None:
    batch = minutes(T0, 3)
    newer = candle(T0 + MINUTE, seed=9)

    assert await put(store, [*batch, newer]) == UpsertResult(inserted=3)
    assert await everything(store) == [batch[0], newer, batch[2]]


async def test_window_is_inclusive_at_both_ends(store: CandleStore) -> None:
    batch = minutes(T0, 10)
    await put(store, batch)
    t3, t6 = batch[3].open_time_ms, batch[6].open_time_ms

    assert rows(await store.read(V, S, M1, start_ms=t3, end_ms=t6)) == batch[3:7]
    assert rows(await store.read(V, S, M1, start_ms=t3, end_ms=t3)) == [batch[3]]
    assert rows(await store.read(V, S, M1, start_ms=t3 + 1, end_ms=t6 - 1)) == batch[4:6]
    assert rows(await store.read(V, S, M1, start_ms=t6)) == batch[6:]
    assert rows(await store.read(V, S, M1, end_ms=t3)) == batch[:4]
    assert len(await store.read(V, S, M1, start_ms=t3 + 1, end_ms=t3 + 2)) == 0
    assert len(await store.read(V, S, M1, start_ms=T0 + DAY)) == 0
    assert len(await store.read(V, S, M1, end_ms=T0 - 1)) == 0


async def test_limit_returns_the_oldest(store: CandleStore) -> None:
    batch = minutes(T0 + DAY - 3 * MINUTE, 10)  # across a day boundary
    await put(store, batch)

    assert rows(await store.read(V, S, M1, limit=5)) == batch[:5]
    start = batch[1].open_time_ms
    assert rows(await store.read(V, S, M1, start_ms=start, limit=4)) == batch[1:5]
    assert rows(await store.read(V, S, M1, limit=100)) == batch
    end = batch[2].open_time_ms
    assert rows(await store.read(V, S, M1, end_ms=end, limit=100)) == batch[:3]


async def test_latest_across_chunks(store: CandleStore) -> None:
    batch = minutes(T0 + DAY - 3 * MINUTE, 6) + minutes(T0 + 3 * DAY, 2)  # three chunks
    await put(store, batch)

    assert rows(await store.latest(V, S, M1, 1)) == batch[-1:]
    assert rows(await store.latest(V, S, M1, 5)) == batch[-5:]
    assert rows(await store.latest(V, S, M1, 100)) == batch


async def test_bounds(store: CandleStore) -> None:
    await put(store, minutes(T0 + 2 * DAY + 7 * MINUTE, 3))
    await put(store, minutes(T0 + 5 * MINUTE, 2))

    assert await store.bounds(V, S, M1) == (T0 + 5 * MINUTE, T0 + 2 * DAY + 9 * MINUTE)


async def test_count_with_and_without_a_window(store: CandleStore) -> None:
    await put(store, minutes(T0, 3 * 24 * 60))  # three whole days

    assert await store.count(V, S, M1) == 3 * 24 * 60
    start, end = T0 + 100 * MINUTE, T0 + 2 * DAY + 99 * MINUTE  # partial, whole, partial
    assert await store.count(V, S, M1, start_ms=start, end_ms=end) == 2 * 24 * 60
    assert await store.count(V, S, M1, start_ms=T0 + 2 * DAY) == 24 * 60
    assert await store.count(V, S, M1, end_ms=T0 + DAY - 1) == 24 * 60
    assert await store.count(V, S, M1, start_ms=start, end_ms=start) == 1
    assert await store.count(V, S, M1, start_ms=start + 1, end_ms=start + 2) == 0
    assert await store.count(V, S, M1, start_ms=T0 + 3 * DAY) == 0


async def test_delete_a_range(store: CandleStore) -> None:
    batch = minutes(T0, 3 * 24 * 60)
    await put(store, batch)
    start, end = T0 + 100 * MINUTE, T0 + 2 * DAY + 99 * MINUTE  # edges partly, middle whole

    assert await store.delete(V, S, M1, start, end) == 2 * 24 * 60

    kept = [c for c in batch if not start <= c.open_time_ms <= end]
    assert await everything(store) == kept
    assert await store.count(V, S, M1) == len(kept)
    assert await store.bounds(V, S, M1) == (T0, batch[-1].open_time_ms)
    assert await store.delete(V, S, M1, start, end) == 0
    assert rows(await store.latest(V, S, M1, 3)) == kept[-3:]


async def test_delete_the_ends_and_everything(store: CandleStore) -> None:
    batch = minutes(T0 + DAY - 5 * MINUTE, 10)
    await put(store, batch)

    assert await store.delete(V, S, M1, T0, batch[1].open_time_ms) == 2
    assert await store.delete(V, S, M1, batch[-1].open_time_ms, T0 + 9 * DAY) == 1
    assert await store.bounds(V, S, M1) == (batch[2].open_time_ms, batch[-2].open_time_ms)
    assert await store.delete(V, S, M1, 0, T0 + 9 * DAY) == 7
    assert await store.bounds(V, S, M1) is None
    assert await store.count(V, S, M1) == 0


async def test_a_deleted_range_can_be_written_again(store: CandleStore) -> None:
    batch = minutes(T0, 10)
    await put(store, batch)
    await store.delete(V, S, M1, batch[2].open_time_ms, batch[4].open_time_ms)

    assert await put(store, batch) == UpsertResult(inserted=3, unchanged=7)
    assert await everything(store) == batch


async def test_ledger_round_trip_and_replace(store: CandleStore) -> None:
    assert await store.load_ledger(V, S) is None
    blob = bytes(range(256)) * 3  # zero bytes and all

    await store.save_ledger(V, S, blob)
    assert await store.load_ledger(V, S) == blob

    await store.save_ledger(V, S, b"second")
    assert await store.load_ledger(V, S) == b"second"
    assert await store.load_ledger(V, "ETHUSDT") is None
    assert await store.load_ledger(Venue.BYBIT_SPOT, S) is None


async def test_series_are_isolated(store: CandleStore) -> None:
    batch = minutes(T0, 20)
    hours = [candle(T0 + i * HOUR, H1) for i in range(5)]
    others = [(V, "ETHUSDT"), (Venue.BINANCE_USDM, S), (Venue.BYBIT_SPOT, S)]
    await put(store, batch)
    await put(store, hours, H1)
    for venue, symbol in others:
        await store.upsert(venue, symbol, M1, columns_from(batch[:3]))

    assert await store.delete(V, S, M1, T0, T0 + DAY) == 20

    assert await store.bounds(V, S, M1) is None
    assert await everything(store, H1) == hours
    for venue, symbol in others:
        assert rows(await store.read(venue, symbol, M1)) == batch[:3]
        assert await store.count(venue, symbol, M1) == 3
    assert await store.count(V, S, D1) == 0


async def test_absent_optional_fields_stay_absent(store: CandleStore) -> None:
    bybit = minutes(T0, 5, optional=False)  # Bybit klines: no trades or taker volumes
    await store.upsert(Venue.BYBIT_LINEAR, S, M1, columns_from(bybit))

    got = await store.read(Venue.BYBIT_LINEAR, S, M1)

    assert (got.trades, got.taker_buy_base, got.taker_buy_quote) == (None, None, None)
    assert rows(got) == bybit
    assert rows(await store.latest(Venue.BYBIT_LINEAR, S, M1, 2)) == bybit[-2:]


async def test_a_large_batch_at_once(store: CandleStore) -> None:
    batch = minutes(T0 - 7 * MINUTE, 5 * 24 * 60 + 11)  # five days and change, six chunks

    assert await put(store, batch) == UpsertResult(inserted=len(batch))

    assert await everything(store) == batch
    assert await store.count(V, S, M1) == len(batch)
    assert rows(await store.latest(V, S, M1, 500)) == batch[-500:]
    assert await put(store, batch) == UpsertResult(unchanged=len(batch))


async def test_long_timeframes_keep_whole_histories(store: CandleStore) -> None:
    days = [candle(T0 + i * DAY, D1) for i in range(400)]  # more than a year of 1d
    weeks = [candle(T0 + i * 7 * DAY, W1, big=True) for i in range(60)]  # T0 is a Monday
    opens = MO1.opens(T0, T0 + 800 * DAY)
    months = [candle(t, MO1, big=True, complete=t != opens[-1]) for t in opens]
    for tf, batch in ((D1, days), (W1, weeks), (MO1, months)):
        await put(store, batch, tf)

    for tf, batch in ((D1, days), (W1, weeks), (MO1, months)):
        assert await everything(store, tf) == batch
        assert rows(await store.latest(V, S, tf, 3)) == batch[-3:]
        assert await store.bounds(V, S, tf) == (batch[0].open_time_ms, batch[-1].open_time_ms)
    mid = rows(await store.read(V, S, D1, start_ms=days[100].open_time_ms, limit=10))
    assert mid == days[100:110]
    assert await store.delete(V, S, MO1, opens[1], opens[2]) == 2
    assert await everything(store, MO1) == [months[0], *months[3:]]
