"""Where the exchange's clock comes from: the venue's server time, or the simulator's.

Against a real venue, exchange time is the local monotonic clock plus the offset the
venue's `time` endpoint shows (its reply stamped at the midpoint of the round trip, so a
slow reply does not skew it by more than half its latency). Against `candlevault sim`,
time may run faster than the wall or stand still: `GET /_sim/clock` gives its time,
speed and whether it is paused, and the clock follows the same anchor-and-rate rule.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import aiohttp
import msgspec

from candlevault.domain.clock import AnchoredClock
from candlevault.domain.errors import ExchangeUnavailable
from candlevault.exchanges.ports import ExchangeClient


class _SimClockState(msgspec.Struct, frozen=True):
    time_ms: int
    speed: float
    paused: bool


_sim_clock = msgspec.json.Decoder(_SimClockState)


async def venue_clock(
    client: ExchangeClient, monotonic: Callable[[], float] = time.monotonic
) -> AnchoredClock:
    """Measure the venue's clock once through its `time` endpoint."""
    sent = monotonic()
    server_ms = await client.server_time_ms()
    got = monotonic()
    return AnchoredClock(server_ms, (sent + got) / 2, monotonic)


async def sim_clock(
    session: aiohttp.ClientSession, url: str, monotonic: Callable[[], float] = time.monotonic
) -> AnchoredClock:
    """Read the simulator's clock (`CANDLEVAULT_CLOCK_URL`, its `/_sim/clock`)."""
    sent = monotonic()
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=10)) as reply:
            body = await reply.read()
            status = reply.status
    except (aiohttp.ClientError, TimeoutError) as e:
        raise ExchangeUnavailable(f"simulator clock at {url}: {e}") from e
    if status != 200:
        raise ExchangeUnavailable(f"simulator clock at {url}: HTTP {status}")
    state = _sim_clock.decode(body)
    got = monotonic()
    return AnchoredClock(state.time_ms, (sent + got) / 2, monotonic, state.speed, state.paused)
