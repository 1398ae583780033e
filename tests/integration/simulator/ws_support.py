"""Shared by the simulator's WebSocket tests: a fast world on 127.0.0.1:0 and a reader.

`Feed` reads one connection in a task it owns (started and cancelled by `feed`), keeping
every text frame decoded, so a test waits with `eventually` on what arrived instead of
sleeping. `recorded_frame` takes a real frame from ../shared/fixtures to compare key
order and value types against.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from candlevault.domain.times import parse_time_ms
from candlevault.simulator.server import SimServer
from candlevault.simulator.world import SimConfig, SimWorld
from candlevault.simulator.ws_hub import WsTimings
from tests.contract.recorded import fixtures_dir

START_MS = parse_time_ms("2024-01-15T12:34:56.789Z")
SPEED = 120.0  # two sim minutes per wall second


@dataclass(frozen=True)
class WsSim:
    """A running simulator and a client session for it."""

    world: SimWorld
    server: SimServer
    session: aiohttp.ClientSession

    @property
    def http(self) -> str:
        """Return the base http:// URL."""
        return self.server.url

    @property
    def ws(self) -> str:
        """Return the base ws:// URL."""
        return "ws" + self.server.url.removeprefix("http")


@contextlib.asynccontextmanager
async def running(
    *, speed: float = SPEED, timings: WsTimings | None = None, **config: Any
) -> AsyncIterator[WsSim]:
    """Serve a world at START_MS running `speed` times faster than the wall."""
    config.setdefault("start_ms", START_MS)
    config.setdefault("symbols", ("BTCUSDT", "ETHUSDT"))
    world = SimWorld(SimConfig(speed=speed, **config))
    async with SimServer(world, ws_timings=timings) as server, aiohttp.ClientSession() as session:
        yield WsSim(world, server, session)


@dataclass
class Feed:
    """Every text frame one connection received, decoded, and the close if it came.

    `pongs` counts the pongs seen, which aiohttp only hands over with `autoping=False`.
    """

    ws: aiohttp.ClientWebSocketResponse
    frames: list[Any] = field(default_factory=list)
    closed: bool = False
    pongs: int = 0

    async def send(self, message: object) -> None:
        """Send one JSON message."""
        await self.ws.send_str(json.dumps(message))

    def replies(self) -> list[Any]:
        """Return the frames that answer a request (they carry an "id")."""
        return [f for f in self.frames if isinstance(f, dict) and "id" in f]

    def events(self, kind: str) -> list[Any]:
        """Return the payloads of kind `kind` ("aggTrade", "trade", "kline"), unwrapped."""
        out = []
        for f in self.frames:
            data = f.get("data", f) if isinstance(f, dict) and "stream" in f else f
            if isinstance(data, dict) and data.get("e") == kind:
                out.append(data)
        return out


async def _read(feed: Feed) -> None:
    async for msg in feed.ws:
        if msg.type is aiohttp.WSMsgType.TEXT:
            feed.frames.append(orjson.loads(msg.data))
        elif msg.type is aiohttp.WSMsgType.PONG:
            feed.pongs += 1
    feed.closed = True


@contextlib.asynccontextmanager
async def feed(
    session: aiohttp.ClientSession, url: str, *, autoping: bool = True
) -> AsyncIterator[Feed]:
    """Connect to `url` and read it in a task until the block ends."""
    async with session.ws_connect(url, autoping=autoping) as ws:
        reader = Feed(ws)
        task = asyncio.create_task(_read(reader))
        try:
            yield reader
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def recorded_frame(path: str, contains: str) -> Any:
    """Return the first recorded frame (inner JSON) in a cryptofeed `.jsonl` containing text."""
    with (fixtures_dir() / path).open() as lines:
        for line in lines:
            entry = json.loads(line)
            if entry.get("t") == "recv" and contains in entry["data"]:
                return json.loads(entry["data"])
    raise AssertionError(f"no recorded frame with {contains!r} in {path}")


def shape(value: Any) -> Any:
    """Return a JSON value's shape: keys in order with their value types, recursively."""
    if isinstance(value, dict):
        return [(key, shape(item)) for key, item in value.items()]
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__
