"""The one write path against a real SQLite file: derived timeframes stay exact."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from candlevault.aggregation import aggregate
from candlevault.domain.candles import Candle, kline_row
from candlevault.domain.columns import CandleColumns, columns_from
from candlevault.domain.decimals import BINANCE_SPOT
from candlevault.domain.timeframes import D1, H1, M1, M5, M15, MINUTE_MS, MO1, W1, Timeframe
from candlevault.domain.venues import Venue
from candlevault.ingest.derive import DERIVATION
from candlevault.ingest.writer import Ingestor
from candlevault.storage.sqlite import SqliteStore
from tests.contract.recorded import csv_rows, fixtures_dir, spot_candles
from tests.unit.strategies import minute_candle

ETH = ("ETHUSDT-1m-2022-08-14.zip", "ETHUSDT-1m-2022-08-15.zip")
V = Venue.BINANCE


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    opened = await SqliteStore.open(tmp_path / "candles.sqlite3")
    try:
        yield opened
    finally:
        await opened.aclose()


async def _all(store: SqliteStore, tf: Timeframe, symbol: str = "ETHUSDT") -> list[Candle]:
    return list((await store.read(V, symbol, tf)).candles())


@pytest.mark.parametrize(
    ("tf", "recording"),
    [
        (M5, "ETHUSDT-5m-2022-08-14_to_15.csv"),
        (H1, "ETHUSDT-1h-2022-08.csv"),
        (D1, "ETHUSDT-1d-2022-08.csv"),
    ],
)
async def test_derived_timeframes_equal_the_exchanges_own(
    store: SqliteStore, tf: Timeframe, recording: str
) -> None:
    minutes = spot_candles(*ETH)
    await Ingestor(store).ingest(V, "ETHUSDT", columns_from(minutes), inception_ms=None)
    expected = {int(r[0]): r for r in csv_rows(fixtures_dir() / "binance" / "klines" / recording)}
    derived = await _all(store, tf)
    assert len(derived) == {M5: 576, H1: 48, D1: 2}[tf]
    for candle in derived:
        assert [str(x) for x in kline_row(candle, BINANCE_SPOT)] == expected[candle.open_time_ms]
        assert candle.complete


async def test_every_timeframe_is_written_and_equals_direct_aggregation(
    store: SqliteStore,
) -> None:
    rng = random.Random(4)
    listed = 1_650_000_000_000 - 1_650_000_000_000 % 86_400_000 + 5 * 3_600_000
    candles, prev = [], 1000
    for i in range(4 * 1440):
        candle = minute_candle(rng, listed + i * MINUTE_MS, prev, zero=rng.random() < 0.2)
        candles.append(candle)
        prev = candle.close
    report = await Ingestor(store).ingest(V, "XUSDT", columns_from(candles), inception_ms=listed)
    assert report.minutes.inserted == len(candles)
    assert set(report.written) == {M1.code} | {t.code for t, _ in DERIVATION}
    for target, _ in DERIVATION:
        direct = aggregate(candles, target, inception_ms=listed)
        assert await _all(store, target, "XUSDT") == direct, target.code


async def test_batches_in_any_order_give_the_same_history(store: SqliteStore) -> None:
    minutes = spot_candles(*ETH)
    shuffled = minutes[:]
    random.Random(1).shuffle(shuffled)
    ingest = Ingestor(store)
    for i in range(0, len(shuffled), 333):
        part = sorted(shuffled[i : i + 333], key=lambda c: c.open_time_ms)
        await ingest.ingest(V, "ETHUSDT", columns_from(part), inception_ms=None)
    await ingest.ingest(V, "ETHUSDT", columns_from(minutes[:100]), inception_ms=None)  # again
    assert await _all(store, M1) == minutes
    for target, _ in DERIVATION[:11]:  # 3d, 1w and 1M need the inception
        assert await _all(store, target) == aggregate(minutes, target), target.code


@pytest.mark.parametrize("window", [1000, 1440, 7 * 1440 + 13])
@pytest.mark.parametrize("newest_first", [False, True])
async def test_windows_that_cut_buckets_anywhere_give_exact_buckets(
    store: SqliteStore, window: int, newest_first: bool
) -> None:
    """Bootstrap writes 1000-minute windows (Binance oldest first, Bybit newest first):
    their ends cut buckets of every timeframe, which must come out as if written at once."""
    rng = random.Random(window)
    listed = 1_650_000_000_000 - 1_650_000_000_000 % 86_400_000 + 5 * 3_600_000 + 17 * 60_000
    candles, prev = [], 1000
    for i in range(24 * 1440):  # past a month's end (2022-05-01), weeks and 3d buckets
        candle = minute_candle(rng, listed + i * MINUTE_MS, prev, zero=rng.random() < 0.05)
        candles.append(candle)
        prev = candle.close
    starts = list(range(0, len(candles), window))
    ingest = Ingestor(store)
    for i in reversed(starts) if newest_first else starts:
        part = columns_from(candles[i : i + window])
        await ingest.ingest(V, "XUSDT", part, inception_ms=listed)
    for target, _ in DERIVATION:
        direct = aggregate(candles, target, inception_ms=listed)
        assert await _all(store, target, "XUSDT") == direct, target.code


async def test_filling_a_gap_completes_the_buckets_around_it(store: SqliteStore) -> None:
    minutes = spot_candles(*ETH)
    hole = minutes[700:760]
    rest = minutes[:700] + minutes[760:]
    ingest = Ingestor(store)
    await ingest.ingest(V, "ETHUSDT", columns_from(rest), inception_ms=None)
    hour_of_hole = H1.bucket_open(hole[0].open_time_ms)
    before = {c.open_time_ms: c for c in await _all(store, H1)}
    assert not before[hour_of_hole].complete
    report = await ingest.ingest(V, "ETHUSDT", columns_from(hole), inception_ms=None)
    after = {c.open_time_ms: c for c in await _all(store, H1)}
    assert after[hour_of_hole].complete
    assert report.written[H1.code].corrected >= 1
    assert list(after.values()) == aggregate(minutes, H1)


async def test_a_corrected_minute_corrects_every_bucket_above_it(store: SqliteStore) -> None:
    minutes = spot_candles(*ETH)
    ingest = Ingestor(store)
    await ingest.ingest(V, "ETHUSDT", columns_from(minutes), inception_ms=None)
    old = minutes[10]
    top = max(c.high for c in minutes) + 1
    fixed = Candle(**{**{f: getattr(old, f) for f in old.__struct_fields__}, "high": top})
    report = await ingest.ingest(V, "ETHUSDT", columns_from([fixed]), inception_ms=None)
    assert report.minutes.corrected == 1
    for tf in (M5, M15, H1, D1, W1, MO1):
        assert report.written[tf.code].corrected == 1, tf.code
    assert (await _all(store, D1))[0].high == top
    untouched = await ingest.ingest(V, "ETHUSDT", columns_from([fixed]), inception_ms=None)
    assert set(untouched.written) == {M1.code}  # nothing changed: nothing derived again


async def test_listeners_hear_every_write(store: SqliteStore) -> None:
    heard: list[tuple[str, int]] = []

    async def listen(venue: Venue, symbol: str, tf: Timeframe, rows: CandleColumns) -> None:
        heard.append((tf.code, len(rows)))

    minutes = spot_candles(ETH[0])[:120]
    await Ingestor(store, [listen]).ingest(V, "ETHUSDT", columns_from(minutes), inception_ms=None)
    assert heard[0] == ("1m", 120)
    assert ("5m", 24) in heard
    assert ("1h", 2) in heard
    assert "3d" not in {code for code, _ in heard}  # no listing day known: no 3d yet


async def test_bybit_candles_keep_absent_fields_absent(store: SqliteStore) -> None:
    base = 1_690_000_000_000 - 1_690_000_000_000 % 3_600_000
    minutes = [
        Candle(base + i * MINUTE_MS, 100, 110, 90, 105, 7, base + i * MINUTE_MS + 59_999, 700)
        for i in range(60)
    ]
    await Ingestor(store).ingest(
        Venue.BYBIT_LINEAR, "BTCUSDT", columns_from(minutes), inception_ms=base
    )
    rows = await store.read(Venue.BYBIT_LINEAR, "BTCUSDT", H1)
    assert rows.trades is None
    assert rows.candle(0).volume == 420
    assert rows.candle(0).complete


async def test_the_ledger_learns_what_is_present_and_survives_a_restart(tmp_path: Path) -> None:
    minutes = spot_candles(*ETH)
    path = tmp_path / "candles.sqlite3"
    first = await SqliteStore.open(path)
    try:
        await Ingestor(first).ingest(
            V, "ETHUSDT", columns_from(minutes[:100]), inception_ms=minutes[0].open_time_ms
        )
        await Ingestor(first).ingest(
            V, "ETHUSDT", columns_from(minutes[200:300]), inception_ms=None
        )
    finally:
        await first.aclose()
    again = await SqliteStore.open(path)
    try:
        coverage = await Ingestor(again).coverage(V, "ETHUSDT")
        assert coverage.inception_ms == minutes[0].open_time_ms
        t0 = minutes[0].open_time_ms
        assert coverage.present.to_pairs() == [
            [t0, t0 + 100 * MINUTE_MS],
            [t0 + 200 * MINUTE_MS, t0 + 300 * MINUTE_MS],
        ]
        assert await _all(again, M1) == minutes[:100] + minutes[200:300]
    finally:
        await again.aclose()


async def test_spans_confirmed_empty_in_the_ledger_count_as_outages(store: SqliteStore) -> None:
    minutes = spot_candles(ETH[0])
    kept = minutes[:600] + minutes[660:]  # an hour the exchange had nothing for
    ingest = Ingestor(store)
    dark = (minutes[600].open_time_ms, minutes[660].open_time_ms)
    await ingest.update_coverage(
        V, "ETHUSDT", lambda c: c.with_empty(dark, now_ms=dark[1] + 86_400_000)
    )
    await ingest.ingest(V, "ETHUSDT", columns_from(kept), inception_ms=None)
    (day,) = await _all(store, D1)
    assert day.complete
    hours = {c.open_time_ms: c for c in await _all(store, H1)}
    assert dark[0] not in hours  # an outage is missing rows, not an invented candle


async def test_overlapping_ingests_of_one_symbol_lose_nothing(store: SqliteStore) -> None:
    minutes = spot_candles(*ETH)
    ingest = Ingestor(store)
    halves = (minutes[: len(minutes) // 2 + 50], minutes[len(minutes) // 2 - 50 :])
    await asyncio.gather(
        *(ingest.ingest(V, "ETHUSDT", columns_from(h), inception_ms=None) for h in halves)
    )
    assert await _all(store, M1) == minutes
    assert await _all(store, H1) == aggregate(minutes, H1)
    present = (await ingest.coverage(V, "ETHUSDT")).present
    t0, t1 = minutes[0].open_time_ms, minutes[-1].open_time_ms + MINUTE_MS
    assert present.to_pairs() == [[t0, t1]]  # neither ledger write dropped the other's


async def test_a_failed_write_leaves_neither_candles_nor_ledger(store: SqliteStore) -> None:
    minutes = spot_candles(ETH[0])[:120]
    broken = columns_from(minutes[:60])
    broken.high = broken.high[:-1]  # one value short: cannot be packed
    with pytest.raises(ValueError, match="values for 60 candles"):
        await store.write(V, "ETHUSDT", [(M1, columns_from(minutes)), (H1, broken)], ledger=b"{}")
    assert await store.count(V, "ETHUSDT", M1) == 0
    assert await store.load_ledger(V, "ETHUSDT") is None
