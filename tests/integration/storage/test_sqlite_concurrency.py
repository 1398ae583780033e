"""SQLite: readers see whole transactions and are not held up by a writing bootstrap."""

from __future__ import annotations

import asyncio
from pathlib import Path

from candlevault.domain.candles import Candle
from candlevault.domain.columns import columns_from
from candlevault.domain.timeframes import M1
from candlevault.domain.venues import Venue
from candlevault.storage.sqlite import SqliteStore

DAY = 86_400_000
T0 = 1_600_000_000_000 - 1_600_000_000_000 % DAY


def _days(first: int, count: int) -> list[Candle]:
    return [
        Candle(t, 100, 110, 90, 105, 7, t + 59_999, 700, 3, 1, 100)
        for t in range(T0 + first * DAY, T0 + (first + count) * DAY, 60_000)
    ]


async def test_reads_during_a_big_write_see_before_or_after_never_half(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "candles.sqlite3")
    try:
        await store.upsert(Venue.BINANCE, "BTCUSDT", M1, columns_from(_days(0, 1)))
        write = asyncio.create_task(
            store.upsert(Venue.BINANCE, "BTCUSDT", M1, columns_from(_days(1, 60)))
        )
        seen_while_writing: list[int] = []
        while not write.done():
            count = await store.count(Venue.BINANCE, "BTCUSDT", M1)
            if not write.done():
                seen_while_writing.append(count)
        result = await write
        after = await store.count(Venue.BINANCE, "BTCUSDT", M1)
    finally:
        await store.aclose()
    assert result.inserted == 60 * 1440
    assert after == 61 * 1440
    assert seen_while_writing, "no read finished while the write was running"
    assert set(seen_while_writing) <= {1440, after}
    assert 1440 in seen_while_writing  # the old state stayed readable during the write
