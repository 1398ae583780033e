"""A per-test slice of a shared Redis: one client and one unique key prefix.

The default test server is the developer's own Redis, so cleanup deletes only the keys
under the test's prefix (SCAN + DEL) and never flushes the DB. The prefix is built from
`[A-Za-z0-9_.:]` only, so it is safe inside a SCAN glob and carries no `{hash tag}`.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import redis.asyncio as aioredis

PREFIX_ROOT = "cvtest"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.]+")


@dataclass(frozen=True)
class RedisNamespace:
    """An async client plus the key prefix that this test owns."""

    client: aioredis.Redis
    prefix: str

    def key(self, *parts: str | int) -> str:
        """Return the key `prefix + "part1:part2:…"` inside this namespace."""
        return self.prefix + ":".join(str(part) for part in parts)

    async def keys(self) -> list[bytes]:
        """Return every key currently under this namespace's prefix."""
        return [key async for key in self.client.scan_iter(match=f"{self.prefix}*", count=500)]

    async def cleanup(self) -> int:
        """Delete every key under this namespace's prefix; return how many went."""
        deleted = 0
        batch: list[bytes] = []
        async for key in self.client.scan_iter(match=f"{self.prefix}*", count=500):
            batch.append(key)
            if len(batch) >= 500:
                deleted += await self.client.delete(*batch)
                batch.clear()
        if batch:
            deleted += await self.client.delete(*batch)
        return deleted


def unique_prefix(label: str = "") -> str:
    """Return a fresh `cvtest:<label>:<random>:` prefix; `label` is sanitized and cut."""
    safe = _UNSAFE.sub("_", label).strip("_")[:48] or "anon"
    return f"{PREFIX_ROOT}:{safe}:{uuid.uuid4().hex[:12]}:"


@contextlib.asynccontextmanager
async def open_namespace(url: str, *, label: str = "") -> AsyncIterator[RedisNamespace]:
    """Connect to `url` under a fresh prefix; on exit delete its keys and close the client."""
    client = aioredis.Redis.from_url(url, decode_responses=False)
    try:
        namespace = RedisNamespace(client=client, prefix=unique_prefix(label))
        try:
            yield namespace
        finally:
            await namespace.cleanup()
    finally:
        await client.aclose()
