"""SQLite: where files go, the first layout moved over, one writer and read-only readers."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from candlevault.domain.candles import Candle
from candlevault.domain.columns import columns_from
from candlevault.domain.errors import StorageError
from candlevault.domain.timeframes import M1
from candlevault.domain.venues import Venue
from candlevault.storage.codec import encode
from candlevault.storage.sqlite import FILE_NAME, SqliteStore

T0 = 1_600_041_600_000  # a UTC midnight


def _candles(count: int) -> list[Candle]:
    return [
        Candle(T0 + i * 60_000, 100 + i, 110 + i, 90, 105, 7, T0 + i * 60_000 + 59_999, 700)
        for i in range(count)
    ]


async def test_open_creates_missing_folders(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / FILE_NAME
    store = await SqliteStore.open(path)
    try:
        await store.upsert(Venue.BINANCE, "BTCUSDT", M1, columns_from(_candles(3)))
        assert await store.count(Venue.BINANCE, "BTCUSDT", M1) == 3
    finally:
        await store.aclose()
    assert path.is_file()


async def test_a_file_of_the_without_rowid_layout_is_migrated_intact(tmp_path: Path) -> None:
    path = tmp_path / FILE_NAME
    candles = _candles(100)
    with sqlite3.connect(path) as conn:
        conn.executescript(
            "CREATE TABLE chunks (venue TEXT NOT NULL, symbol TEXT NOT NULL, tf TEXT NOT NULL,"
            " start INTEGER NOT NULL, first INTEGER NOT NULL, last INTEGER NOT NULL,"
            " n INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (venue, symbol, tf, start))"
            " WITHOUT ROWID;"
            "CREATE TABLE ledgers (venue TEXT NOT NULL, symbol TEXT NOT NULL, data BLOB NOT NULL,"
            " PRIMARY KEY (venue, symbol)) WITHOUT ROWID;"
        )
        conn.execute(
            "INSERT INTO chunks VALUES ('binance', 'BTCUSDT', '1m', ?, ?, ?, ?, ?)",
            (T0, T0, candles[-1].open_time_ms, 100, encode(columns_from(candles))),
        )
        conn.execute("INSERT INTO ledgers VALUES ('binance', 'BTCUSDT', x'7b7d')")
    conn.close()

    store = await SqliteStore.open(path)
    try:
        back = await store.read(Venue.BINANCE, "BTCUSDT", M1)
        ledger = await store.load_ledger(Venue.BINANCE, "BTCUSDT")
        again = await store.upsert(Venue.BINANCE, "BTCUSDT", M1, columns_from(candles))
    finally:
        await store.aclose()
    assert list(back.candles()) == candles
    assert ledger == b"{}"
    assert (again.inserted, again.corrected, again.unchanged) == (0, 0, 100)
    with sqlite3.connect(path) as conn:
        (sql,) = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'chunks'").fetchone()
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    conn.close()
    assert "WITHOUT ROWID" not in sql.upper()
    assert "chunks_without_rowid" not in tables


async def test_a_second_writer_is_refused_and_a_reader_sees_the_writers_commits(
    tmp_path: Path,
) -> None:
    path = tmp_path / FILE_NAME
    writer = await SqliteStore.open(path)
    try:
        with pytest.raises(StorageError, match=f"pid {os.getpid()}"):
            await SqliteStore.open(path)
        reader = await SqliteStore.open(path, readonly=True)
        try:
            await writer.upsert(Venue.BINANCE, "BTCUSDT", M1, columns_from(_candles(3)))
            assert await reader.count(Venue.BINANCE, "BTCUSDT", M1) == 3
            await writer.upsert(Venue.BINANCE, "BTCUSDT", M1, columns_from(_candles(7)))
            latest = await reader.latest(Venue.BINANCE, "BTCUSDT", M1, 10)
            assert len(latest) == 7  # no cache in a reader: it follows the writer
            with pytest.raises(StorageError, match="read-only"):
                await reader.upsert(Venue.BINANCE, "BTCUSDT", M1, columns_from(_candles(1)))
        finally:
            await reader.aclose()
    finally:
        await writer.aclose()
    again = await SqliteStore.open(path)  # the lock went with the writer
    await again.aclose()


async def test_a_reader_needs_an_existing_store(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="no candle store"):
        await SqliteStore.open(tmp_path / FILE_NAME, readonly=True)
