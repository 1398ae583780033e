"""The Redis hot cache: each series' rows packed in a few binary chunks of one hash.

Keys (every key of the cache; each carries the symbol's hash tag so that Redis Cluster
keeps a symbol's keys in one slot, ARCHITECTURE.md):

    {prefix}hot:{venue:SYMBOL}:TF:d  hash: lo, hi, last (newest open), ver, "<n>": chunk n
    {prefix}hot:{venue:SYMBOL}:TF:g  string: the series' generation (INCR)

Chunk n holds the rows opening in [n*S, (n+1)*S), S = 128 x tf.duration_ms (31 days for
1M, so a chunk holds up to ~140 months and months need no calendar logic); its binary
form is in `redis_chunks`. Why chunks: a key per candle costs ~100 B of overhead per row
and 500 values per read; one blob per series would make each closed candle rewrite a
day of rows. 128-row chunks (~20 KB) keep a write to one chunk and a 500-row read to 5.
A read is ONE round trip: a single HMGET of the span fields and of the chunks that the
window and `limit` need (computed from the window, so atomic and free of Lua), decoded
without per-row Python work; only gaps in those chunks (an exchange outage) cost more.
Repeated reads of a series cost less: the process keeps the chunks it read (`_Copy`),
serves them for `trust_s` (0.25 s) without a round trip, then while Redis reports the
same write token (`ver`) for four small fields instead of ~100 KB.
Writes fetch what they change, merge in Python and commit with Lua compare-and-sets on
the generation and on `ver`, a random token per write, so that a recreated entry cannot
pass for an old one. The generation has a key of its own so that `invalidate` (a DEL of
the hash) keeps it; every key expires a little after its timeframe's retention.

Degradation: a failed command makes the cache unhealthy; reads miss, writes are dropped,
and it probes at most once a second. Dropped writes may leave entries stale, so recovery
deletes every key of the cache before serving again and bumps a local epoch kept in the
generation's high bits, so that no load that observed a generation before the outage
lands after it.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Sequence
from typing import cast

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError, RedisError

from candlevault.cache.memory import load_span, trim
from candlevault.cache.ports import CacheStats, HotRows, SeriesKey
from candlevault.cache.redis_chunks import (
    COMMIT_LUA,
    FETCH_LUA,
    LOAD_LUA,
    MAX_CHUNKS_PER_READ,
    META,
    Reply,
    check_rows,
    collect,
    decode_span,
    plan_update,
    read_on,
    span_fields,
    unlink_matching,
)
from candlevault.cache.retention import Retention
from candlevault.domain.timeframes import Timeframe
from candlevault.domain.venues import Venue

log = logging.getLogger("candlevault.cache.redis")

CHUNK_ROWS = 128
PROBE_INTERVAL_S = 1.0
CAS_ATTEMPTS = 3
MAX_COPIES = 4096  # series whose chunks a process keeps between reads (see `_Copy`)
TRUST_S = 0.25  # how long a kept copy serves before Redis is asked whether it changed


class _Copy:
    """Chunks this process read, with the entry's span fields (lo, hi, last, ver).

    A repeated hot read would fetch ~100 KB of chunks every time. A copy serves reads
    without any round trip for `trust_s`, then for as long as Redis reports the same
    `ver` (every write, load or invalidation changes or removes it) at the cost of
    asking for four small fields. This process's own writes drop its copy at once; a
    write by another process (another API replica) shows within `trust_s`; any Redis
    error drops every copy."""

    __slots__ = ("checked_s", "chunks", "meta")

    def __init__(self, meta: Reply, chunks: dict[int, bytes | None], checked_s: float) -> None:
        self.meta, self.chunks, self.checked_s = meta, chunks, checked_s


EPOCH_SHIFT = 40  # generation() = local outage epoch << 40 | the counter in Redis
MAX_TTL_MS = 400 * 86_400_000
_ERRORS = (RedisError, OSError)  # OSError covers TimeoutError and refused connections
_COUNTER = (1 << EPOCH_SHIFT) - 1
_Raw = dict[bytes, bytes]


async def open_redis_cache(
    url: str, retention: Retention, prefix: str = "cv:", *, trust_s: float = TRUST_S
) -> RedisCache:
    """Build a RedisCache on its own client, with 1 s timeouts so that a dead Redis
    cannot hang a request. Connects lazily: a Redis that is down at start degrades."""
    client = aioredis.Redis.from_url(
        url,
        socket_timeout=1.0,
        socket_connect_timeout=1.0,
        # One immediate retry replaces a pooled connection that a restart closed; a
        # timeout is not retried, so no command outlives its second by much.
        retry=Retry(NoBackoff(), 1, supported_errors=(ConnectionError,)),
        decode_responses=False,
    )
    return RedisCache(client, retention, prefix, owns_client=True, trust_s=trust_s)


class RedisCache:
    """`HotCache` in Redis (see the module docstring for the layout)."""

    engine = "redis"

    def __init__(
        self,
        client: aioredis.Redis,
        retention: Retention,
        prefix: str = "cv:",
        *,
        owns_client: bool = False,
        chunk_rows: int = CHUNK_ROWS,
        trust_s: float = TRUST_S,
    ) -> None:
        """`chunk_rows` is part of the layout: every cache on a prefix must use the same
        (tests shrink it to cross many chunk boundaries with few rows)."""
        if "{" in prefix or "}" in prefix:
            raise ValueError("the prefix may not contain braces: they would move the hash tag")
        self._client, self._retention, self._owns = client, retention, owns_client
        self._chunk_rows = chunk_rows
        self._root = f"{prefix}hot:"
        self._names: dict[SeriesKey, tuple[str, str, int]] = {}
        self._fetch = client.register_script(FETCH_LUA)
        self._commit = client.register_script(COMMIT_LUA)
        self._load = client.register_script(LOAD_LUA)
        self._healthy, self._epoch, self._next_probe = True, 0, 0.0
        self._errors, self._writing = 0, 0
        self._last_error: str | None = None
        self._degraded_since_ms: int | None = None
        self._copies: dict[str, _Copy] = {}
        self._trust_s = trust_s

    async def read(
        self, key: SeriesKey, start_ms: int, end_ms: int, limit: int, *, newest: bool
    ) -> HotRows | None:
        """Return the rows opening in [start_ms, end_ms], or None when not covered.

        One HMGET of the span and of the chunks that `limit` rows need from the side
        read first; only gaps in those chunks (an exchange outage) cost another."""
        if not self._healthy and not await self._recovered():
            return None
        data, _, width = self._name(key)
        bottom, upper = start_ms // width, end_ms // width
        want = max(0, min(upper - bottom + 1, limit // self._chunk_rows + 2, MAX_CHUNKS_PER_READ))
        chunks = range(upper, upper - want, -1) if newest else range(bottom, bottom + want)
        try:
            copy = self._copies.get(data)
            if copy is not None and all(c in copy.chunks for c in chunks):
                now = time.monotonic()
                fresh = now - copy.checked_s < self._trust_s
                if not fresh:  # ask only whether the entry changed
                    meta = cast(Reply, await self._client.hmget(data, META))
                    fresh = meta[3] is not None and meta[3] == copy.meta[3]
                    if fresh:
                        copy.checked_s, copy.meta = now, meta
                if fresh:
                    got = [*copy.meta, *(copy.chunks[c] for c in chunks)]
                    return await self._found(data, width, got, start_ms, end_ms, limit, newest)
            got = cast(Reply, await self._client.hmget(data, META, *chunks))
            self._keep(data, got, chunks)
            return await self._found(data, width, got, start_ms, end_ms, limit, newest)
        except _ERRORS as e:
            self._failed(e)
            return None

    async def _found(
        self,
        data: str,
        width: int,
        got: Reply,
        start_ms: int,
        end_ms: int,
        limit: int,
        newest: bool,
    ) -> HotRows | None:
        """The rows of a read's reply (span fields, then the chunks in reading order)."""
        if got[0] is None or got[1] is None or start_ms < int(got[0]) or end_ms >= int(got[1]):
            return None
        found = collect(got[4:], start_ms, end_ms, limit, newest=newest)
        bottom, upper = start_ms // width, end_ms // width
        if len(found.rows) < limit and len(got) - 4 < upper - bottom + 1 and got[2] is not None:
            query = (start_ms, end_ms, limit, newest)
            return await read_on(self._client, data, width, query, got)
        return found

    def _keep(self, data: str, got: Reply, chunks: range) -> None:
        """Remember the chunks read with the entry's span fields (see `_Copy`)."""
        ver = got[3]
        if ver is None:
            return
        held = self._copies.pop(data, None)
        kept = held.chunks if held is not None and held.meta[3] == ver else {}
        kept.update(zip(chunks, got[4:], strict=True))
        self._copies[data] = _Copy(list(got[:4]), kept, time.monotonic())  # newest last
        while len(self._copies) > MAX_COPIES:
            del self._copies[next(iter(self._copies))]

    async def generation(self, key: SeriesKey) -> int:
        """Return the series' update counter, tagged with the local outage epoch."""
        if not self._healthy and not await self._recovered():
            return -1
        try:
            value = await self._client.get(self._name(key)[1])
        except _ERRORS as e:
            self._failed(e)
            return -1
        return self._epoch << EPOCH_SHIFT | int(value or 0)

    async def load(
        self,
        key: SeriesKey,
        lo_ms: int,
        hi_ms: int,
        opens: Sequence[int],
        rows: Sequence[bytes],
        generation: int,
    ) -> bool:
        """Install the store's rows of [lo_ms, hi_ms) unless an update came since."""
        check_rows(opens, rows)
        self._copies.pop(self._name(key)[0], None)
        if lo_ms >= hi_ms:  # nothing to install
            return await self.generation(key) == generation
        if not self._healthy and not await self._recovered():
            return False
        if generation < 0 or generation >> EPOCH_SHIFT != self._epoch:
            return False
        data, gen, width = self._name(key)
        keep, ttl = self._retention.ms(key.tf), self._ttl(key.tf)
        self._writing += 1
        try:
            for _ in range(CAS_ATTEMPTS):
                raw = cast(_Raw, await self._client.hgetall(data))
                span = load_span(decode_span(raw) if raw else None, lo_ms, hi_ms, opens, rows)
                trim(span, keep)
                pairs = span_fields(span, width)
                ver = raw.get(b"ver", b"")
                args = [generation & _COUNTER, ver, _token(), ttl, *pairs]
                done = await self._load(keys=(data, gen), args=args)
                if done >= 0:
                    return bool(done)
        except _ERRORS as e:
            self._failed(e)
        finally:
            self._writing -= 1
        return False

    async def update(
        self, key: SeriesKey, opens: Sequence[int], rows: Sequence[bytes], through_ms: int
    ) -> None:
        """Apply written rows inside the span; dropped (not raised) while Redis is down."""
        check_rows(opens, rows)
        self._copies.pop(self._name(key)[0], None)
        if not self._healthy and not await self._recovered():
            return
        data, gen, width = self._name(key)
        chunks = sorted({t // width for t in opens})
        keep, ttl = self._retention.ms(key.tf), self._ttl(key.tf)
        self._writing += 1
        try:
            for _ in range(CAS_ATTEMPTS):
                got = await self._fetch(keys=(data, gen), args=[ttl, *chunks])
                if got[3] is None:
                    return  # no entry: moving the generation was all there was to do
                lo, hi, last = int(got[0]), int(got[1]), int(got[2]) if got[2] else None
                blobs = dict(zip(chunks, got[4:], strict=True))
                plan = plan_update(lo, hi, last, blobs, opens, rows, through_ms, width, keep)
                if plan is None:
                    return
                floor, pairs = plan
                args = [got[3], _token(), ttl, floor, *pairs]
                if await self._commit(keys=(data,), args=args):
                    return
            await self._client.delete(data)  # lost every race: drop rather than go stale
        except _ERRORS as e:
            self._failed(e)
        finally:
            self._writing -= 1

    async def invalidate(
        self, venue: Venue | None = None, symbol: str | None = None, tf: Timeframe | None = None
    ) -> int:
        """Drop the named entries (generations stay); return how many."""
        self._copies.clear()
        if not self._healthy and not await self._recovered():
            return 0  # recovery drops everything anyway
        parts = [_glob(p) if p else "*" for p in (venue and venue.value, symbol, tf and tf.code)]
        pattern = f"{_glob(self._root)}{{{parts[0]}:{parts[1]}}}:{parts[2]}:d"
        try:
            return await unlink_matching(self._client, pattern)
        except _ERRORS as e:
            self._failed(e)
            return 0

    async def stats(self) -> CacheStats:
        """Return health, and series/rows/bytes counted by SCAN (not a hot path)."""
        found = CacheStats(engine=self.engine)
        if self._healthy or await self._recovered():
            try:
                async for name in self._client.scan_iter(f"{_glob(self._root)}*:d", count=500):
                    raw = cast(_Raw, await self._client.hgetall(name))
                    if raw:
                        span = decode_span(raw)
                        found.series += 1
                        found.rows += len(span.opens)
                        found.bytes += sum(map(len, span.rows))
            except _ERRORS as e:
                self._failed(e)
        if not self._healthy:
            found = CacheStats(engine=self.engine, healthy=False)
        found.degraded_since_ms = self._degraded_since_ms
        found.errors, found.last_error = self._errors, self._last_error
        return found

    async def aclose(self) -> None:
        """Close the client if this cache opened it."""
        if self._owns:
            await self._client.aclose()

    def _name(self, key: SeriesKey) -> tuple[str, str, int]:
        names = self._names.get(key)
        if names is None:
            base = f"{self._root}{{{key.venue.value}:{key.symbol}}}:{key.tf.code}"
            width = self._chunk_rows * key.tf.duration_ms
            names = self._names[key] = (f"{base}:d", f"{base}:g", width)
        return names

    def _ttl(self, tf: Timeframe) -> int:
        keep = self._retention.ms(tf)
        return min(keep + keep // 10 + 3_600_000, MAX_TTL_MS)

    def _failed(self, error: Exception) -> None:
        self._copies.clear()
        self._errors += 1
        self._last_error = f"{type(error).__name__}: {error}"
        if self._healthy:
            self._healthy, self._epoch = False, self._epoch + 1
            self._degraded_since_ms = int(time.time() * 1000)
            self._next_probe = time.monotonic() + PROBE_INTERVAL_S
            log.warning("Redis hot cache unavailable, serving misses: %s", self._last_error)

    async def _recovered(self) -> bool:
        """Probe (at most once a second); if Redis answers, drop every key and serve again.

        Waits for writes started before the outage to end, so that none lands after the
        keys are dropped."""
        now = time.monotonic()
        if now < self._next_probe or self._writing:
            return False
        self._next_probe = now + PROBE_INTERVAL_S  # also keeps concurrent callers out
        errors = self._errors
        try:
            await self._client.ping()
            dropped = await unlink_matching(self._client, f"{_glob(self._root)}*")
        except _ERRORS as e:
            self._failed(e)
            return False
        if self._errors != errors:  # something else failed meanwhile
            return False
        log.info("Redis hot cache is back; dropped %d possibly stale keys", dropped)
        self._healthy, self._degraded_since_ms = True, None
        return True


def _token() -> str:
    return secrets.token_hex(8)


def _glob(text: str) -> str:
    """Escape `text` for a SCAN MATCH pattern."""
    return "".join("\\" + ch if ch in "\\*?[]" else ch for ch in text)
