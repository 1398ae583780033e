"""The MongoDB engine without a server: a dead or malformed URL is a clear `StorageError`.

No MongoDB server can run here, so this is the part of the engine that is tested on every
run: it fails within its server-selection timeout instead of hanging, and callers see
`StorageError` (chained to pymongo's error), never pymongo's own exception types.
"""

from __future__ import annotations

import gc
import socket
import warnings

import pytest
from pymongo.errors import PyMongoError

from candlevault.domain.errors import StorageError
from candlevault.storage.mongo import MongoStore


def free_port() -> int:
    """Return a local port that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def collect_leaked_sockets() -> None:
    """Collect, quietly and now, the socket pymongo may leave open when closing a client
    cancels a server monitor mid-connect (PYTHON-5867, pymongo 4.20), rather than let its
    ResourceWarning surface in whichever test the garbage collector happens to run in."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


async def test_a_dead_server_is_a_storage_error() -> None:
    url = f"mongodb://127.0.0.1:{free_port()}/candlevault"

    with pytest.raises(StorageError) as caught:
        await MongoStore.open(url, timeout_ms=300)

    assert isinstance(caught.value.__cause__, PyMongoError)
    del caught
    collect_leaked_sockets()


async def test_a_malformed_url_is_a_storage_error() -> None:
    with pytest.raises(StorageError) as caught:
        await MongoStore.open("http://127.0.0.1:1/")

    assert isinstance(caught.value.__cause__, PyMongoError)
