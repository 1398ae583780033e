"""One GET to a venue, the way every request must go: through the limiter, retried only
when retrying is right, and every failure turned into one of the domain's errors.

- Before sending: the venue's limiter admits the request's weight (or waits).
- Every reply: the used-weight header, when the venue sends one, corrects the limiter.
- 429 (Binance): the limiter pauses for `Retry-After` and the request is retried; the
  limiter keeps every other request of the venue back too, so a 429 never becomes a 418.
- 418 (Binance) or 403 "access too frequent" (Bybit): the limiter bans the venue until
  the ban ends and `Banned` (with `retry_after`) is raised: a ban can last days, so
  whether to wait is the caller's call.
- 5xx, time-outs, dropped connections: retried with jittered exponential backoff, at
  most `attempts` times, then `ExchangeUnavailable`.
- Other 4xx: `ExchangeRejected` with the venue's code and message (an unknown symbol is
  not retried).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import aiohttp
import orjson

from candlevault.domain.errors import Banned, ExchangeRejected, ExchangeUnavailable, RateLimited
from candlevault.exchanges.ratelimit import RateLimiter, epoch_ms

Sleep = Callable[[float], Awaitable[None]]


@dataclass
class Retry:
    """Jittered exponential backoff: attempt n waits up to min(cap, base * 2**n)."""

    attempts: int = 5
    base_s: float = 0.25
    cap_s: float = 10.0
    sleep: Sleep = asyncio.sleep
    jitter: Callable[[], float] = random.random

    def delay_s(self, attempt: int) -> float:
        """Return the wait before retry number `attempt` (0-based), "full jitter"."""
        return float(self.jitter() * min(self.cap_s, self.base_s * 2**attempt))


@dataclass
class HttpCounts:
    """Every request sent to a venue (retries included), for metrics: how many and
    their weight per path, and the replies per HTTP status (429s and 418s among them)."""

    requests: dict[str, int] = field(default_factory=dict)
    weight: dict[str, int] = field(default_factory=dict)
    statuses: dict[int, int] = field(default_factory=dict)

    def sent(self, path: str, weight: int) -> None:
        """Count one request of `weight` to `path`."""
        self.requests[path] = self.requests.get(path, 0) + 1
        self.weight[path] = self.weight.get(path, 0) + weight


@dataclass
class VenueHttp:
    """GETs against one venue's base URL, limited by `limiter`."""

    session: aiohttp.ClientSession
    base_url: str
    limiter: RateLimiter
    venue_name: str
    weight_header: str | None = None  # Binance: X-MBX-USED-WEIGHT-1M
    ban_s: float = 600.0  # Bybit's lock-out; Binance says how long in Retry-After
    retry: Retry = field(default_factory=Retry)
    timeout: aiohttp.ClientTimeout = field(
        default_factory=lambda: aiohttp.ClientTimeout(total=30, sock_connect=10)
    )
    wall_ms: Callable[[], float] = epoch_ms  # bans are wall time, read as the limiter does
    counts: HttpCounts = field(default_factory=lambda: HttpCounts())

    async def get(self, path: str, params: Mapping[str, str | int], weight: int) -> bytes:
        """Return the body of a 200 reply to GET `path`; raise the domain error else."""
        url = self.base_url.rstrip("/") + path
        query = {k: str(v) for k, v in params.items()}
        failure = ""
        for attempt in range(self.retry.attempts):
            back_off = True
            async with self.limiter.sending(weight) as permit:
                self.counts.sent(path, weight)
                try:
                    async with self.session.get(url, params=query, timeout=self.timeout) as reply:
                        body = await reply.read()
                        status, headers = reply.status, reply.headers
                except (aiohttp.ClientError, TimeoutError) as e:
                    failure = f"{type(e).__name__}: {e}"
                else:
                    self.limiter.observe(self._used_weight(headers), permit)
                    self.counts.statuses[status] = self.counts.statuses.get(status, 0) + 1
                    if status == 200:
                        return body
                    failure, back_off = self._refused(status, headers, body, attempt)
            if back_off:
                await self.retry.sleep(self.retry.delay_s(attempt))
        raise ExchangeUnavailable(
            f"{self.venue_name} {path}: gave up after {self.retry.attempts} attempts ({failure})"
        )

    def _used_weight(self, headers: Mapping[str, str]) -> int | None:
        used = None if self.weight_header is None else headers.get(self.weight_header)
        return int(used) if used is not None and used.isdigit() else None

    def _refused(
        self, status: int, headers: Mapping[str, str], body: bytes, attempt: int
    ) -> tuple[str, bool]:
        """Act on a non-200 reply: return why and whether to back off before retrying;
        raise when retrying is wrong."""
        retry_after = _retry_after_s(headers)
        if status == 429:  # the limiter's pause holds every request of the venue back
            wait = retry_after if retry_after is not None else self.retry.delay_s(attempt)
            self.limiter.pause(wait)
            if attempt + 1 == self.retry.attempts:
                raise RateLimited(f"{self.venue_name}: 429 {_text(body)}", retry_after=wait)
            return f"429, paused {wait:.1f} s", False
        if status == 418 or (status == 403 and b"too frequent" in body.lower()):
            wait = retry_after if retry_after is not None else self.ban_s
            self.limiter.ban(self.wall_ms() + wait * 1000)
            raise Banned(f"{self.venue_name}: {status} {_text(body)}", retry_after=wait)
        if status >= 500:
            return f"{status} {_text(body)}", True
        raise ExchangeRejected(f"{self.venue_name}: {status} {_text(body)}")


def _retry_after_s(headers: Mapping[str, str]) -> float | None:
    value = headers.get("Retry-After")
    try:
        return None if value is None else max(0.0, float(value))
    except ValueError:
        return None


def _text(body: bytes) -> str:
    """The venue's error in a line: its JSON message when it sends one, else the text."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:200].decode(errors="replace").strip()
    if isinstance(doc, dict):
        code = doc.get("code", doc.get("retCode"))
        msg = doc.get("msg", doc.get("retMsg"))
        if msg is not None:
            return f"{msg} (code {code})"
    return body[:200].decode(errors="replace")
