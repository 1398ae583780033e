"""The engines the storage contract runs on: SQLite always, MongoDB when given a server.

`store` is parametrized over the engines and hands each test a fresh, empty store:
SQLite (with its chunk cache, and without) in a file under `tmp_path`; MongoDB in a
database of its own on the server at `CANDLEVAULT_MONGO_URL`, dropped afterwards
(skipped when the variable is not set, since no MongoDB server can be started here).
Engines are imported inside the fixture so that one engine's missing module or driver
does not stop the other from being tested.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from candlevault.storage.ports import CandleStore

MONGO_URL_ENV = "CANDLEVAULT_MONGO_URL"


@contextlib.asynccontextmanager
async def sqlite_store(tmp_path: Path, cache_mb: int = 256) -> AsyncIterator[CandleStore]:
    """Open a SQLite store in a fresh file; close it after."""
    from candlevault.storage.sqlite import SqliteStore

    store = await SqliteStore.open(tmp_path / "candles.sqlite3", cache_mb=cache_mb)
    try:
        yield store
    finally:
        await store.aclose()


@contextlib.asynccontextmanager
async def mongo_store(url: str, label: str) -> AsyncIterator[CandleStore]:
    """Open a MongoDB store in a database of its own; drop that database after."""
    from pymongo import AsyncMongoClient

    from candlevault.storage.mongo import MongoStore

    name = f"cvtest_{label[:24]}_{uuid.uuid4().hex[:12]}"
    store = await MongoStore.open(url, database=name)
    try:
        yield store
    finally:
        await store.aclose()
        client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
            url, serverSelectionTimeoutMS=5000
        )
        try:
            await client.drop_database(name)
        finally:
            await client.close()


@pytest.fixture(params=["sqlite", "sqlite-uncached", "mongo"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[CandleStore]:
    """Give the test an empty store of each engine in turn."""
    if request.param.startswith("sqlite"):  # uncached: every read through a reader thread
        async with sqlite_store(tmp_path, 0 if request.param.endswith("uncached") else 256) as s:
            yield s
        return
    url = os.environ.get(MONGO_URL_ENV)
    if not url:
        pytest.skip(f"{MONGO_URL_ENV} is not set")
    label = "".join(ch if ch.isalnum() else "_" for ch in request.node.name)
    async with mongo_store(url, label) as opened:
        yield opened
