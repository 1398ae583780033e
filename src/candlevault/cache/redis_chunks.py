"""The Redis hot cache's chunk format: its codec, the Lua of its writes, and reads.

A chunk holds the rows of one series opening in [n*S, (n+1)*S) (`redis.py` chooses S
and the keys) as

    <u32 count> <count x i64 open times> <count x u32 row ends> <rows joined by "\n">

all little-endian. A read decodes only what it returns: `array.frombytes` of the open
times, two `bisect`s, the row ends of the two boundary rows, one slice of the bytes and
one `bytes.split` (a rendered row never holds a newline, see `cache.rows`), so it does
no per-row Python work. Reads use no Lua: moving a 20 KB string through Redis's Lua
costs ~30 us of server time (measured), more than the whole read's Python side. Writes
merge in Python (`plan_update`, `span_fields`) and commit through Lua scripts that
check the generation and the entry's `ver` (compare-and-set), since a merge needs the
old rows and is not on the hot path.
"""

from __future__ import annotations

import struct
import sys
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from itertools import chain
from typing import Any, cast

import redis.asyncio as aioredis

from candlevault.cache.memory import Span
from candlevault.cache.ports import HotRows

_U32 = struct.Struct("<I")
_SWAP = sys.byteorder != "little"
META = (b"lo", b"hi", b"last", b"ver")
MAX_CHUNKS_PER_READ = 64
Reply = list[bytes | None]

# Bumping the generation before the data changes is safe: it only refuses more loads.
FETCH_LUA = """
redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
return redis.call('HMGET', KEYS[1], 'lo', 'hi', 'last', 'ver', unpack(ARGV, 2))
"""

COMMIT_LUA = """
if redis.call('HGET', KEYS[1], 'ver') ~= ARGV[1] then return 0 end
for k = 5, #ARGV, 2 do
  if ARGV[k + 1] == '' then redis.call('HDEL', KEYS[1], ARGV[k])
  else redis.call('HSET', KEYS[1], ARGV[k], ARGV[k + 1]) end
end
local floor = tonumber(ARGV[4])
for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
  local c = tonumber(f)
  if c and c < floor then redis.call('HDEL', KEYS[1], f) end
end
redis.call('HSET', KEYS[1], 'ver', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""

LOAD_LUA = """
if (redis.call('GET', KEYS[2]) or '0') ~= ARGV[1] then return 0 end
if (redis.call('HGET', KEYS[1], 'ver') or '') ~= ARGV[2] then return -1 end
redis.call('DEL', KEYS[1])
for k = 5, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[k], ARGV[k + 1]) end
redis.call('HSET', KEYS[1], 'ver', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
"""


def plan_update(
    lo: int,
    hi: int,
    last: int | None,
    blobs: dict[int, bytes | None],
    opens: Sequence[int],
    rows: Sequence[bytes],
    through_ms: int,
    width: int,
    keep_ms: int,
) -> tuple[int, list[Any]] | None:
    """Return (first chunk to keep, fields to set) for an update, or None if nothing
    changes; a field set to b"" is deleted."""
    new_hi = max(hi, through_ms) if opens and hi >= opens[0] else hi
    inside = [(t, r) for t, r in zip(opens, rows, strict=True) if lo <= t < new_hi]
    if not inside and new_hi == hi:
        return None
    newest = last
    if inside and (newest is None or inside[-1][0] > newest):
        newest = inside[-1][0]
    new_lo = max(lo, newest - keep_ms) if newest is not None else lo
    pairs: list[Any] = [b"lo", new_lo, b"hi", new_hi, b"last", b"" if newest is None else newest]
    grouped: dict[int, dict[int, bytes]] = {}
    for t, r in inside:
        merged = grouped.get(t // width)
        if merged is None:
            blob = blobs.get(t // width)
            merged = grouped[t // width] = chunk_dict(blob) if blob else {}
        merged[t] = r
    for c, merged in grouped.items():
        kept = sorted(t for t in merged if t >= new_lo)
        pairs += [c, encode_chunk(kept, [merged[t] for t in kept]) if kept else b""]
    return new_lo // width, pairs


def collect(
    blobs: Sequence[bytes | None], start_ms: int, end_ms: int, limit: int, *, newest: bool
) -> HotRows:
    """Return the rows of `blobs` (chunks in reading order: descending when `newest`)
    opening in [start_ms, end_ms], at most `limit` of them, ascending."""
    parts: list[list[bytes]] = []
    got, lo_open, hi_open = 0, None, None
    for blob in blobs:
        if not blob or got >= limit:
            continue
        (n,) = _U32.unpack_from(blob)
        opens = array("q")
        opens.frombytes(memoryview(blob)[4 : 4 + 8 * n])
        if _SWAP:
            opens.byteswap()
        i, j = bisect_left(opens, start_ms), bisect_right(opens, end_ms)
        if j - i > limit - got:
            i, j = (j - (limit - got), j) if newest else (i, i + (limit - got))
        if i >= j:
            continue
        area = 4 + 12 * n
        begin = _U32.unpack_from(blob, area - 4 * n + 4 * (i - 1))[0] + 1 if i else 0
        stop = _U32.unpack_from(blob, area - 4 * n + 4 * (j - 1))[0]
        parts.append(blob[area + begin : area + stop].split(b"\n"))
        got += j - i
        lo_open = opens[i] if lo_open is None or newest else lo_open
        hi_open = opens[j - 1] if hi_open is None or not newest else hi_open
    if newest:
        parts.reverse()
    rows = parts[0] if len(parts) == 1 else list(chain.from_iterable(parts))
    return HotRows(rows, lo_open, hi_open)


def check_rows(opens: Sequence[int], rows: Sequence[bytes]) -> None:
    """Refuse rows that the format cannot hold, before anything is written."""
    if len(opens) != len(rows):
        raise ValueError(f"{len(opens)} open times for {len(rows)} rows")
    if rows and b"\n".join(rows).count(b"\n") != len(rows) - 1:
        raise ValueError("a cached row may not contain a newline")


def encode_chunk(opens: Sequence[int], rows: Sequence[bytes]) -> bytes:
    """Pack ascending open times and their rows (checked by `check_rows`) into a chunk."""
    body = b"\n".join(rows)
    ends, at = array("I"), -1
    for row in rows:
        at += len(row) + 1
        ends.append(at)
    times = array("q", opens)
    if _SWAP:
        times.byteswap()
        ends.byteswap()
    return _U32.pack(len(rows)) + times.tobytes() + ends.tobytes() + body


def decode_chunk(blob: bytes) -> tuple[list[int], list[bytes]]:
    """Unpack a chunk into its open times and rows."""
    (n,) = _U32.unpack_from(blob)
    times = array("q")
    times.frombytes(blob[4 : 4 + 8 * n])
    if _SWAP:
        times.byteswap()
    return times.tolist(), blob[4 + 12 * n :].split(b"\n") if n else []


def chunk_dict(blob: bytes) -> dict[int, bytes]:
    """Unpack a chunk into {open time: row}, ready to merge into."""
    opens, rows = decode_chunk(blob)
    return dict(zip(opens, rows, strict=True))


def decode_span(raw: dict[bytes, bytes]) -> Span:
    """Rebuild a whole entry from its hash, keeping only the rows inside [lo, hi)."""
    lo, hi = int(raw[b"lo"]), int(raw[b"hi"])
    opens: list[int] = []
    rows: list[bytes] = []
    for field in sorted((f for f in raw if f not in META), key=int):
        chunk_opens, chunk_rows = decode_chunk(raw[field])
        opens += chunk_opens
        rows += chunk_rows
    a, b = bisect_left(opens, lo), bisect_left(opens, hi)
    return Span(lo, hi, opens[a:b], rows[a:b])


def span_fields(span: Span, width: int) -> list[Any]:
    """Return the hash fields (name, value, ...) of a whole entry, chunked by `width`."""
    pairs: list[Any] = [b"lo", span.lo, b"hi", span.hi]
    if span.opens:
        pairs += [b"last", span.opens[-1]]
    start = 0
    while start < len(span.opens):
        c = span.opens[start] // width
        stop = start
        while stop < len(span.opens) and span.opens[stop] // width == c:
            stop += 1
        pairs += [c, encode_chunk(span.opens[start:stop], span.rows[start:stop])]
        start = stop
    return pairs


async def read_on(
    client: aioredis.Redis, data: str, width: int, query: tuple[int, int, int, bool], got: Reply
) -> HotRows | None:
    """Fetch the rest of a window with gaps, as long as the entry's `ver` stays the
    same (else a miss, which is always safe)."""
    start_ms, end_ms, limit, newest = query
    blobs, ver, step = got[4:], got[3], MAX_CHUNKS_PER_READ
    top = min(end_ms, int(got[2] or 0)) // width  # the newest chunk holding rows
    bottom, upper = start_ms // width, end_ms // width
    if newest:
        todo = range(min(top, upper - len(blobs)), bottom - 1, -1)
    else:
        todo = range(bottom + len(blobs), top + 1)
    for at in range(0, len(todo), step):
        more = cast(Reply, await client.hmget(data, b"ver", *todo[at : at + step]))
        if more[0] != ver:
            return None
        blobs += more[1:]
        found = collect(blobs, start_ms, end_ms, limit, newest=newest)
        if len(found.rows) >= limit:
            return found
    return collect(blobs, start_ms, end_ms, limit, newest=newest)


async def unlink_matching(client: aioredis.Redis, pattern: str) -> int:
    """Delete every key matching `pattern` (SCAN, then UNLINK in batches)."""
    gone, batch = 0, []
    async for name in client.scan_iter(pattern, count=500):
        batch.append(name)
        if len(batch) >= 500:
            gone += await client.unlink(*batch)
            batch.clear()
    if batch:
        gone += await client.unlink(*batch)
    return gone
