"""Rate limiters of the cold layer: spend each venue's per-IP budget by weight, not guesswork.

One limiter per venue and IP, shared by every task that talks to the venue; concurrency
is whatever the budget allows, with no separate cap.

**Binance** (https://developers.binance.com/docs/binance-spot-api-docs/rest-api/limits;
USD-M alike, developers.binance.com/docs/derivatives/usds-margined-futures/general-info):
weight per IP, counted in fixed one-minute windows aligned to wall-clock minutes ("Request
submitted at 00:01:23.456 counts towards the 00:01:00 minute's limit", web-socket-api.md)
and reported on every reply in `X-MBX-USED-WEIGHT-1M`, refused requests included. Past the
limit: 429 with `Retry-After`; a client that keeps going gets 418 ("IP banned until <ms>"),
2 minutes up to 3 days. The limit is exchangeInfo's `REQUEST_WEIGHT` (spot 6000, USD-M
2400 a minute), which the client hands to `set_limit`. Spot's `RAW_REQUESTS` (61000 per 5
minutes) is out of reach of requests weighing 1 or more, so it is not modelled.

The server counts a request in the window it *arrives* in, which the client never sees:
between sending and the reply, give or take `skew_ms` between the two clocks. So
`WeightLimiter`
- counts every request in flight against every window it checks;
- reads a reply's header as the server's count of the one window the request can have
  arrived in, keeping the highest: replies overtake each other, a lower header is stale;
- when a request may have arrived in either of two windows (sent before a boundary,
  answered after), ignores its header and charges its weight to each window still open;
- sends one request alone (a probe) until a header of the current window is read, so
  weight that others on the IP spent is learned before a burst, not from a 429.
A request is admitted when no window it may land in would pass the limit.

**Bybit** (https://bybit-exchange.github.io/docs/v5/rate-limit): "600 requests within a
5-second window per IP", rolling (older pages: "in *any* 5-second window"); past it a
plain-text "403, access too frequent" and a lock-out of at least 10 minutes. No header
reports the count, so `RollingLimiter` charges each request from sending until a window
after its reply, the latest it can have arrived: never more than `limit` in any window.

Windows and bans are wall time, never candle time (ARCHITECTURE.md), read from an injected
clock in epoch ms with an injected async sleep, so tests run on a fake clock. Waiters are
served first come, first served; one cancelled while waiting has taken nothing.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import heapq
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final

WallMs = Callable[[], float]  # a wall clock in epoch milliseconds
Sleep = Callable[[float], Awaitable[None]]  # an async sleep in seconds, like asyncio.sleep

USED_WEIGHT_HEADER: Final = "X-MBX-USED-WEIGHT-1M"  # lower case on USD-M's host
BINANCE_WINDOW_MS: Final = 60_000
BINANCE_SPOT_LIMIT: Final = 6000  # until exchangeInfo says otherwise
BINANCE_USDM_LIMIT: Final = 2400
BYBIT_LIMIT: Final = 600
BYBIT_WINDOW_MS: Final = 5_000
BYBIT_LOCKOUT_MS: Final = 600_000  # "wait for at least 10 minutes"
_INTERVAL_MS: Final = {"SECOND": 1000, "MINUTE": 60_000, "HOUR": 3_600_000, "DAY": 86_400_000}


def epoch_ms() -> float:
    """Return the wall clock in epoch milliseconds."""
    return time.time() * 1000


def interval_ms(interval: str, interval_num: int = 1) -> int:
    """Return the window of an exchangeInfo `rateLimits` entry ("MINUTE", 1) in ms."""
    if interval not in _INTERVAL_MS or interval_num < 1:
        raise ValueError(f"unknown rate-limit interval {interval_num} x {interval!r}")
    return _INTERVAL_MS[interval] * interval_num


@dataclass(eq=False, slots=True)
class Permit:
    """Leave to send one request of `weight`, granted at wall time `sent_ms`.

    Settle it with `observe` (a reply came) or `release` (none did); settling twice is a
    no-op, so `release` can sit in a `finally`.
    """

    weight: int
    sent_ms: float
    settled: bool = False


@dataclass(frozen=True, slots=True)
class LimiterStats:
    """A limiter's state for progress and metrics.

    `used`: weight charged to the current window, in flight aside (Binance: the server's
    count as far as known; Bybit: requests in the rolling window). `pauses`, `bans`: the
    calls that extended the block, which ends at `blocked_until_ms` (0: none).
    `waited_s`: every acquirer's wait, summed.
    """

    limit: int
    window_ms: int
    budget: int
    used: int
    in_flight: int
    waiting: int
    waited_s: float
    pauses: int
    bans: int
    blocked_until_ms: float


@dataclass(eq=False, slots=True)
class _Waiter:
    weight: int
    woken: asyncio.Event = field(default_factory=asyncio.Event)


class RateLimiter(abc.ABC):
    """What both venues' limiters share: a FIFO of waiters, pauses, bans and stats.

    Nothing is granted from another task: a change (a reply, a pause, a timer) only wakes
    the head of the queue, which re-checks when it runs. So a client calling `observe`
    and `pause` for one 429 with no `await` between never lets a waiter slip in.
    """

    def __init__(
        self, limit: int, window_ms: int, *, headroom: float, wall_ms: WallMs, sleep: Sleep
    ) -> None:
        if not 0 <= headroom < 1:
            raise ValueError(f"headroom must be in [0, 1), not {headroom}")
        self._headroom = headroom
        self._wall_ms = wall_ms
        self._sleep = sleep
        self._limit, self._window_ms, self._budget = self._checked(limit, window_ms)
        self._queue: deque[_Waiter] = deque()
        self._in_flight = 0
        self._blocked_until_ms = 0.0
        self._waited_s = 0.0
        self._pauses = self._bans = 0

    async def acquire(self, weight: int = 1) -> Permit:
        """Wait until a request of `weight` cannot take any window past the limit."""
        if not 1 <= weight <= self._budget:
            raise ValueError(f"weight must be in [1, {self._budget}], not {weight}")
        now = self._wall_ms()
        if not self._queue and self._open(weight, now):
            return self._grant(weight, now)
        waiter = _Waiter(weight)
        self._queue.append(waiter)
        try:
            return await self._wait(waiter)
        finally:
            if waiter in self._queue:  # cancelled or failed while waiting: took nothing
                was_head = self._queue[0] is waiter
                self._queue.remove(waiter)
                if was_head:
                    self._wake_head()
            self._waited_s += max(0.0, self._wall_ms() - now) / 1000

    @contextlib.asynccontextmanager
    async def sending(self, weight: int = 1) -> AsyncIterator[Permit]:
        """Hold a permit for the block; release it on exit unless `observe` settled it."""
        permit = await self.acquire(weight)
        try:
            yield permit
        finally:
            self.release(permit)

    def observe(self, used_weight: int | None, permit: Permit) -> None:
        """Settle `permit`: its reply came, with this used-weight header (None: none)."""
        self._settle_once(permit, used_weight, replied=True)

    def release(self, permit: Permit) -> None:
        """Settle `permit` without a reply (error, time-out): its weight stays charged."""
        self._settle_once(permit, None, replied=False)

    def pause(self, seconds: float) -> None:
        """Send nothing for `seconds`: a 429's `Retry-After`."""
        if self._block(self._wall_ms() + max(0.0, seconds) * 1000):
            self._pauses += 1

    def ban(self, until_wall_ms: float) -> None:
        """Send nothing until `until_wall_ms`: a 418's "banned until", a 403 lock-out's end."""
        if self._block(until_wall_ms):
            self._bans += 1

    def set_limit(self, limit: int, window_ms: int | None = None) -> None:
        """Take the venue's limit (from exchange info): `limit` per `window_ms`."""
        window = self._window_ms if window_ms is None else window_ms
        self._limit, self._window_ms, self._budget = self._checked(limit, window)
        self._wake_head()

    def stats(self) -> LimiterStats:
        """Return the state for progress reports and metrics."""
        now = self._wall_ms()
        return LimiterStats(
            limit=self._limit,
            window_ms=self._window_ms,
            budget=self._budget,
            used=self._used(now),
            in_flight=self._in_flight,
            waiting=len(self._queue),
            waited_s=self._waited_s,
            pauses=self._pauses,
            bans=self._bans,
            blocked_until_ms=self._blocked_until_ms if self._blocked_until_ms > now else 0.0,
        )

    @abc.abstractmethod
    def _admits(self, weight: int, now: float) -> bool:
        """Whether a request of `weight` sent at `now` keeps every window within budget."""

    @abc.abstractmethod
    def _retry_at_ms(self, now: float) -> float | None:
        """When time alone may let the head through (None: only a reply can)."""

    @abc.abstractmethod
    def _settle(self, permit: Permit, used_weight: int | None, replied: bool, now: float) -> None:
        """Charge a settled request's weight, learning from its header if it has one."""

    @abc.abstractmethod
    def _used(self, now: float) -> int:
        """Return the weight charged to the current window, in flight aside."""

    def _checked(self, limit: int, window_ms: int) -> tuple[int, int, int]:
        if limit < 1 or window_ms < 1:
            raise ValueError(f"need limit >= 1 and window_ms >= 1, not {limit}, {window_ms}")
        return limit, window_ms, max(1, math.floor(limit * (1 - self._headroom)))

    def _open(self, weight: int, now: float) -> bool:
        return now >= self._blocked_until_ms and self._admits(weight, now)

    def _grant(self, weight: int, now: float) -> Permit:
        self._in_flight += weight
        return Permit(weight, now)

    async def _wait(self, waiter: _Waiter) -> Permit:
        while True:
            if self._queue[0] is not waiter:
                await waiter.woken.wait()
                waiter.woken.clear()
                continue
            if waiter.weight > self._budget:  # set_limit shrank the budget below it
                raise ValueError(f"weight {waiter.weight} exceeds the budget {self._budget}")
            now = self._wall_ms()
            if self._open(waiter.weight, now):
                self._queue.popleft()
                self._wake_head()
                return self._grant(waiter.weight, now)
            waiter.woken.clear()
            blocked = now < self._blocked_until_ms
            await self._nap(waiter, self._blocked_until_ms if blocked else self._retry_at_ms(now))

    async def _nap(self, waiter: _Waiter, until_ms: float | None) -> None:
        """Sleep until `until_ms` on the injected clock, or until woken, whichever first."""
        if until_ms is None:
            await waiter.woken.wait()
            return
        timer = asyncio.ensure_future(self._sleep(max(0.0, until_ms - self._wall_ms()) / 1000))

        def ring(done: asyncio.Future[None]) -> None:
            if not done.cancelled():  # a cancelled timer's ring would wake the next nap
                waiter.woken.set()

        timer.add_done_callback(ring)
        try:
            await waiter.woken.wait()
        finally:
            timer.cancel()

    def _wake_head(self) -> None:
        if self._queue:
            self._queue[0].woken.set()

    def _block(self, until_ms: float) -> bool:
        if until_ms <= self._blocked_until_ms:
            return False
        self._blocked_until_ms = until_ms
        self._wake_head()
        return True

    def _settle_once(self, permit: Permit, used_weight: int | None, *, replied: bool) -> None:
        if permit.settled:
            return
        permit.settled = True
        self._in_flight -= permit.weight
        self._settle(permit, used_weight, replied, self._wall_ms())
        self._wake_head()


@dataclass(slots=True)
class _Count:
    header: int = 0  # the highest used-weight header read for the window
    extra: int = 0  # weight charged with no header of this window to show for it
    seen: bool = False  # a reply of this window came: no more probing


class WeightLimiter(RateLimiter):
    """Binance: request weight per IP in fixed windows aligned to the wall clock.

    `headroom` keeps that fraction of the limit unused (for other clients on the IP);
    `skew_ms` bounds how far the server's clock may be from `wall_ms`.
    """

    def __init__(
        self,
        limit: int = BINANCE_SPOT_LIMIT,
        window_ms: int = BINANCE_WINDOW_MS,
        *,
        headroom: float = 0.0,
        skew_ms: float = 1000.0,
        wall_ms: WallMs = epoch_ms,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if skew_ms < 0:
            raise ValueError(f"skew_ms must be >= 0, not {skew_ms}")
        self._skew_ms = skew_ms
        self._counts: dict[int, _Count] = {}
        super().__init__(limit, window_ms, headroom=headroom, wall_ms=wall_ms, sleep=sleep)

    def set_limit(self, limit: int, window_ms: int | None = None) -> None:
        """Take the venue's limit; a new window length carries the count over, whole."""
        old = self._window_ms
        super().set_limit(limit, window_ms)
        if self._window_ms != old:  # window numbers change meaning
            carried = max((c.header + c.extra for c in self._counts.values()), default=0)
            self._counts = {self._window(self._wall_ms()): _Count(extra=carried)}

    def _window(self, t_ms: float) -> int:
        return math.floor(t_ms / self._window_ms)

    def _span(self, sent_ms: float, end_ms: float) -> range:
        """The windows the server may count a request in, sent then and settled by `end_ms`."""
        return range(
            self._window(sent_ms - self._skew_ms), self._window(end_ms + self._skew_ms) + 1
        )

    def _prune(self, now: float) -> int:
        oldest = self._window(now - self._skew_ms)
        for w in [w for w in self._counts if w < oldest]:
            del self._counts[w]
        return oldest

    def _load(self, window: int) -> int:
        count = self._counts.get(window)
        return self._in_flight + (count.header + count.extra if count else 0)

    def _admits(self, weight: int, now: float) -> bool:
        self._prune(now)
        current = self._counts.get(self._window(now))
        if self._in_flight and (current is None or not current.seen):
            return False  # the probe is out: wait for its header
        return all(self._load(w) + weight <= self._budget for w in self._span(now, now))

    def _retry_at_ms(self, now: float) -> float | None:
        # Then the oldest window a new request may land in leaves the span.
        return (self._window(now - self._skew_ms) + 1) * self._window_ms + self._skew_ms

    def _settle(self, permit: Permit, used_weight: int | None, replied: bool, now: float) -> None:
        oldest = self._prune(now)
        span = self._span(permit.sent_ms, now)
        if replied and len(span) == 1:
            count = self._counts.setdefault(span[0], _Count())
            count.seen = True
            if used_weight is not None:
                count.header = max(count.header, used_weight)
                return
        for w in span:
            if w >= oldest:
                self._counts.setdefault(w, _Count()).extra += permit.weight

    def _used(self, now: float) -> int:
        self._prune(now)
        return self._load(self._window(now)) - self._in_flight


class RollingLimiter(RateLimiter):
    """Bybit: requests per IP in any rolling window (weight 1 a request)."""

    def __init__(
        self,
        limit: int = BYBIT_LIMIT,
        window_ms: int = BYBIT_WINDOW_MS,
        *,
        headroom: float = 0.0,
        wall_ms: WallMs = epoch_ms,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._spent: list[tuple[float, int]] = []  # heap of (charged until, weight)
        self._spent_weight = 0
        super().__init__(limit, window_ms, headroom=headroom, wall_ms=wall_ms, sleep=sleep)

    def _prune(self, now: float) -> None:
        while self._spent and self._spent[0][0] <= now:
            self._spent_weight -= heapq.heappop(self._spent)[1]

    def _admits(self, weight: int, now: float) -> bool:
        self._prune(now)
        return self._spent_weight + self._in_flight + weight <= self._budget

    def _retry_at_ms(self, now: float) -> float | None:
        self._prune(now)
        return self._spent[0][0] if self._spent else None

    def _settle(self, permit: Permit, used_weight: int | None, replied: bool, now: float) -> None:
        # The server forgets an arrival a window after it, and the reply came after it.
        heapq.heappush(self._spent, (now + self._window_ms, permit.weight))
        self._spent_weight += permit.weight

    def _used(self, now: float) -> int:
        self._prune(now)
        return self._spent_weight
